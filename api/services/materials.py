"""申请材料: uploads judged by their content, stored under UPLOAD_DIR with random names, readable by their owner and,
while the application they prove awaits a reviewer, by the reviewers."""
from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import secrets
from pathlib import Path
from typing import BinaryIO

from flask import current_app
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError

from api import policy, settings
from api.errors import ApiError
from api.extensions import db, writing
from api.masking import mask_id
from api.models import Application, Material, Person, StaffUser, application_materials, utcnow
from api.services import audit
from api.services.manual_reviews import review_queue
from api.services.tx import unit_of_work
from api.timefmt import SHANGHAI

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


def daily_quota() -> tuple[int, int]:
    """(files, bytes) a person may upload per Asia/Shanghai day: UPLOAD_DAILY_COUNT, UPLOAD_DAILY_BYTES."""
    config = current_app.config
    return (int(config.get("UPLOAD_DAILY_COUNT", settings.env_int("UPLOAD_DAILY_COUNT", 30))),
            int(config.get("UPLOAD_DAILY_BYTES", settings.env_int("UPLOAD_DAILY_BYTES", 50 * 1024 * 1024))))


def _day_bounds(now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The Shanghai calendar day around `now`, as UTC instants [start, end)."""
    local = now.astimezone(SHANGHAI)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    end = start + dt.timedelta(days=1)  # no daylight saving in Shanghai: the next midnight
    return start.astimezone(dt.timezone.utc), end.astimezone(dt.timezone.utc)


def _check_quota(owner: Person, incoming: int, lock: bool) -> None:
    """429 UPLOAD_QUOTA_EXCEEDED when one more file of `incoming` bytes would pass the person's daily quota.

    Counted from the materials table (uploads later swept or attached count too: the quota is of work done
    today). With `lock`, the person's row is locked first (PostgreSQL; SQLite writers already take turns), so
    two uploads at once cannot both take the last place.
    """
    max_count, max_bytes = daily_quota()
    now = utcnow()
    start, end = _day_bounds(now)
    if lock:
        db.session.execute(select(Person.id).where(Person.id == owner.id).with_for_update())
    count, used = db.session.execute(
        select(func.count(Material.id), func.coalesce(func.sum(Material.size), 0))
        .where(Material.owner_person_id == owner.id, Material.created_at >= start, Material.created_at < end)).one()
    if count + 1 > max_count or int(used) + incoming > max_bytes:
        retry_after = max(1, int((end - now).total_seconds()) + 1)
        raise ApiError("UPLOAD_QUOTA_EXCEEDED", 429, "file", headers={"Retry-After": str(retry_after)},
                       msg=f"今日上传的材料已达上限（每天最多 {max_count} 份、共 {max_bytes // (1024 * 1024)} MB），"
                           f"请明天再试")


def store(owner: Person | StaffUser, kind: str, stream: BinaryIO) -> Material:
    """Saves an upload: ≤ 5 MB (413 PAYLOAD_TOO_LARGE), JPEG/PNG/PDF by content (415 UNSUPPORTED_MEDIA_TYPE),
    within a person's daily quota (429 UPLOAD_QUOTA_EXCEEDED; staff at the window have none)."""
    if kind not in policy.MATERIAL_KINDS:
        raise ApiError("INVALID_INPUT", 400, "kind", "「kind」的取值不在允许范围内")
    is_person = isinstance(owner, Person)
    if is_person:
        _check_quota(owner, 1, lock=False)  # refuse early, before reading the body; checked again below
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
            if is_person:
                _check_quota(owner, size, lock=True)
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
        application = db.session.scalar(select(Application).join(
            application_materials, application_materials.c.application_id == Application.id)
            .where(application_materials.c.material_id == material.id).limit(1))
        audit.record(f"staff:{reviewer.username}", "material_read", material.id,
                     {"person": mask_id(application.authorizer.id_number)} if application else None)
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


ORPHAN_AGE = dt.timedelta(days=1)
_SWEEP_BATCH = 500


def sweep_orphans(older_than: dt.timedelta = ORPHAN_AGE) -> int:
    """Deletes materials attached to no application and uploaded more than `older_than` ago, row and file.

    An upload that never became part of an application is a personal document kept for nothing. Rows go
    first, in their own transaction, and only rows still unattached at that moment (an application that takes
    one meanwhile keeps it; on PostgreSQL the delete of a row just attached fails and is skipped); the files
    are removed after the commit, so a failure never leaves a row without its file. Returns the rows deleted.
    """
    cutoff = utcnow() - older_than
    attached = select(application_materials.c.material_id)
    deleted = 0
    while True:
        candidates = db.session.execute(
            select(Material.id, Material.storage_name)
            .where(Material.created_at < cutoff, Material.id.not_in(attached))
            .order_by(Material.created_at).limit(_SWEEP_BATCH)).all()
        db.session.rollback()
        if not candidates:
            return deleted
        gone = _delete_unattached([c.id for c in candidates])
        for material_id, storage_name in candidates:
            if material_id in gone:
                try:
                    (_upload_dir() / storage_name).unlink(missing_ok=True)
                except OSError as exc:
                    log.error("material %s: could not delete its file: %s", material_id, type(exc).__name__)
        deleted += len(gone)
        if len(candidates) < _SWEEP_BATCH or not gone:
            return deleted


def _delete_unattached(ids: list[str]) -> set[str]:
    """Deletes those of `ids` still attached to no application; returns the ids deleted (committed)."""
    try:
        return _delete_now(ids)
    except IntegrityError:  # an application took one of them meanwhile (PostgreSQL): one by one, skip it
        db.session.rollback()
    gone: set[str] = set()
    for material_id in ids:
        try:
            gone |= _delete_now([material_id])
        except IntegrityError:
            db.session.rollback()
    return gone


def _delete_now(ids: list[str]) -> set[str]:
    with writing():
        gone = set(db.session.scalars(
            delete(Material).where(Material.id.in_(ids),
                                   Material.id.not_in(select(application_materials.c.material_id)))
            .returning(Material.id), execution_options={"synchronize_session": False}))
        db.session.commit()
    return gone


def uploaded_since(owner: Person, since) -> list[Material]:
    """The owner's uploads since `since` that no application holds yet, oldest first (what the bot takes as the
    proof uploaded in the mini-program while a WeChat conversation waited)."""
    attached = select(application_materials.c.material_id)
    return list(db.session.scalars(select(Material).where(
        _owner_filter(owner), Material.created_at >= since, Material.id.not_in(attached))
        .order_by(Material.created_at, Material.id)))
