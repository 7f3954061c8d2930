"""申请材料: uploads judged by their content, stored under UPLOAD_DIR with random names, readable by their owner and,
while the application they prove awaits a reviewer, by the reviewers."""
from __future__ import annotations

import hashlib
import logging
import os
import secrets
from pathlib import Path
from typing import BinaryIO

from flask import current_app
from sqlalchemy import select

from api import policy
from api.errors import ApiError
from api.extensions import db
from api.models import Application, Material, Person, StaffUser, application_materials
from api.services import audit
from api.services.manual_reviews import review_queue
from api.services.tx import unit_of_work

log = logging.getLogger(__name__)
MAX_BYTES = 5 * 1024 * 1024
_CHUNK = 64 * 1024
# magic bytes → (content type, file extension); the name and the declared Content-Type are never trusted
_SIGNATURES = (
    (b"\xff\xd8\xff", "image/jpeg", "jpg"),
    (b"\x89PNG\r\n\x1a\n", "image/png", "png"),
    (b"%PDF-", "application/pdf", "pdf"),
)
EXTENSIONS = {content_type: ext for _, content_type, ext in _SIGNATURES}


def sniff(head: bytes) -> str | None:
    for magic, content_type, _ in _SIGNATURES:
        if head.startswith(magic):
            return content_type
    return None


def _upload_dir() -> Path:
    return Path(current_app.config["UPLOAD_DIR"])


def path_of(material: Material) -> Path:
    return _upload_dir() / material.storage_name


def _owner_filter(owner: Person | StaffUser):
    if isinstance(owner, StaffUser):
        return Material.uploaded_by_staff_id == owner.id
    return Material.owner_person_id == owner.id


def store(owner: Person | StaffUser, kind: str, stream: BinaryIO) -> Material:
    """Saves an upload: ≤ 5 MB (413 PAYLOAD_TOO_LARGE), JPEG/PNG/PDF by content (415 UNSUPPORTED_MEDIA_TYPE)."""
    if kind not in policy.MATERIAL_KINDS:
        raise ApiError("INVALID_INPUT", 400, "kind", "「kind」的取值不在允许范围内")
    head = _read_at_least(stream, 8)
    if not head:
        raise ApiError("FILE_EMPTY", 400, "file")
    content_type = sniff(head)
    if content_type is None:
        raise ApiError("UNSUPPORTED_MEDIA_TYPE", 415, "file")

    name = secrets.token_hex(16)
    storage_name = f"{name[:2]}/{name}"
    final = _upload_dir() / storage_name
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(name + ".part")
    digest, size = hashlib.sha256(), 0
    try:
        # 0600: the files are personal documents; nothing but this service should read them
        with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
            chunk = head
            while chunk:
                size += len(chunk)
                if size > MAX_BYTES:
                    raise ApiError("PAYLOAD_TOO_LARGE", 413, "file")
                digest.update(chunk)
                out.write(chunk)
                chunk = stream.read(_CHUNK)
        os.replace(partial, final)
        with unit_of_work():
            material = Material(kind=kind, content_type=content_type, size=size, sha256=digest.hexdigest(),
                                storage_name=storage_name)
            if isinstance(owner, StaffUser):
                material.uploaded_by_staff_id = owner.id
            else:
                material.owner_person_id = owner.id
            db.session.add(material)
    except BaseException:
        partial.unlink(missing_ok=True)
        final.unlink(missing_ok=True)
        raise
    return material


def _read_at_least(stream: BinaryIO, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = stream.read(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def owned_material(owner: Person | StaffUser, material_id: str) -> Material:
    """The owner's material; someone else's answers exactly like a missing one (404 NOT_FOUND)."""
    material = db.session.scalar(select(Material).where(Material.id == str(material_id)[:64],
                                                        _owner_filter(owner)))
    if material is None:
        raise ApiError("NOT_FOUND", 404)
    return material


def owned_file(owner: Person | StaffUser, material_id: str) -> tuple[Material, Path]:
    """The owner's material and its file; a file lost from the disk answers 404 too (and is logged)."""
    return material_file(owned_material(owner, material_id))


def file_for_review(reviewer: StaffUser, material_id: str) -> tuple[Material, Path]:
    """A proof attached to an application awaiting a reviewer (审核员) of its authorizer's region, for him to decide
    it; each reading is audited. Any other material (not attached, its application decided, another region's)
    answers 404, like a missing one."""
    awaiting = select(application_materials.c.material_id).where(
        application_materials.c.application_id.in_(review_queue(reviewer).with_only_columns(Application.id)))
    material = db.session.scalar(select(Material).where(Material.id == str(material_id)[:64],
                                                        Material.id.in_(awaiting)))
    if material is None:
        raise ApiError("NOT_FOUND", 404)
    found = material_file(material)
    with unit_of_work():
        audit.record(f"staff:{reviewer.username}", "material_read", material.id)
    return found


def material_file(material: Material) -> tuple[Material, Path]:
    """The material's file on disk; one lost from the disk answers 404 too (and is logged)."""
    path = path_of(material)
    if not path.is_file():
        log.error("material %s: file %s is missing from UPLOAD_DIR", material.id, material.storage_name)
        raise ApiError("NOT_FOUND", 404)
    return material, path


def owned_materials(owner: Person | StaffUser, ids: list[str]) -> list[Material]:
    """The materials named by `ids`, in that order; any id the caller does not own → 422 MATERIAL_NOT_FOUND."""
    wanted = list(dict.fromkeys(str(i) for i in ids))
    if not wanted:
        return []
    found = {m.id: m for m in db.session.scalars(
        select(Material).where(Material.id.in_(wanted), _owner_filter(owner)))}
    if len(found) != len(wanted):
        raise ApiError("MATERIAL_NOT_FOUND", 422, "material_ids")
    return [found[i] for i in wanted]


def uploaded_since(owner: Person, since) -> list[Material]:
    """The owner's uploads since `since` that no application holds yet, oldest first (what the bot takes as the
    proof uploaded in the mini-program while a WeChat conversation waited)."""
    attached = select(application_materials.c.material_id)
    return list(db.session.scalars(select(Material).where(
        _owner_filter(owner), Material.created_at >= since, Material.id.not_in(attached))
        .order_by(Material.created_at, Material.id)))
