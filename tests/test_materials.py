"""Material uploads over HTTP: judged by content, limited to 5 MB, stored privately, readable by the owner only."""
import hashlib
import io
from pathlib import Path

import pytest
from sqlalchemy import select

from api.errors import ApiError
from api.extensions import db
from api.models import Material
from api.services.materials import MAX_BYTES, owned_materials
from tests import factories
from tests.lifecycle_helpers import person_headers

URL = "/api/v1/materials"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x11" * 300
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x22" * 300
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n%%EOF\n"


@pytest.fixture
def owner(clean_app):
    factories.load_policies()
    return factories.person("王建国")


def upload(client, person, content: bytes, filename="photo.jpg", kind="household_register",
           content_type="image/jpeg"):
    data = {"file": (io.BytesIO(content), filename, content_type)}
    if kind is not None:
        data["kind"] = kind
    return client.post(URL, data=data, content_type="multipart/form-data", headers=person_headers(person))


def stored_files(app) -> set[Path]:
    return {p for p in Path(app.config["UPLOAD_DIR"]).rglob("*") if p.is_file()}


def assert_error(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    assert response.json["error"]["code"] == code
    assert any("\u4e00" <= ch <= "\u9fff" for ch in response.json["error"]["message"])


@pytest.mark.parametrize("content, mimetype", [(JPEG, "image/jpeg"), (PNG, "image/png"), (PDF, "application/pdf")])
def test_jpeg_png_pdf_are_accepted_by_content_whatever_their_name(client, owner, content, mimetype):
    before = stored_files(client.application)
    # the name and the declared type lie; the bytes decide
    r = upload(client, owner, content, filename="scan.txt", content_type="text/plain")
    assert r.status_code == 201, r.json
    assert r.json["kind"] == "household_register" and r.json["size"] == len(content)
    assert r.json["sha256"] == hashlib.sha256(content).hexdigest()

    material = db.session.get(Material, r.json["id"])
    assert material.owner_person_id == owner.id and material.content_type == mimetype
    new = stored_files(client.application) - before
    assert len(new) == 1
    path = new.pop()
    assert path.read_bytes() == content and "scan" not in path.name
    assert path.stat().st_mode & 0o077 == 0  # readable by the service only

    got = client.get(f"{URL}/{r.json['id']}", headers=person_headers(owner))
    assert got.status_code == 200 and got.data == content and got.mimetype == mimetype
    assert got.headers["X-Content-Type-Options"] == "nosniff"


def test_text_named_jpg_is_refused_and_nothing_is_kept(client, owner):
    before = stored_files(client.application)
    assert_error(upload(client, owner, b"hello, I am not a picture\n" * 10, filename="id.jpg"), 415,
                 "UNSUPPORTED_MEDIA_TYPE")
    assert_error(upload(client, owner, b"GIF89a" + b"\x00" * 50, filename="id.gif"), 415, "UNSUPPORTED_MEDIA_TYPE")
    assert db.session.query(Material).count() == 0 and stored_files(client.application) == before


def test_five_megabytes_pass_and_one_byte_more_is_413(client, owner):
    before = stored_files(client.application)
    just = JPEG + b"\x00" * (MAX_BYTES - len(JPEG))
    assert upload(client, owner, just).status_code == 201
    assert_error(upload(client, owner, just + b"\x00"), 413, "PAYLOAD_TOO_LARGE")
    assert db.session.query(Material).count() == 1
    assert len(stored_files(client.application) - before) == 1  # the refused upload left no file behind


def test_a_body_over_the_request_limit_gets_our_413(client, owner):
    r = upload(client, owner, JPEG + b"\x00" * (7 * 1024 * 1024))  # beyond MAX_CONTENT_LENGTH: werkzeug refuses
    assert_error(r, 413, "PAYLOAD_TOO_LARGE")
    assert r.json["error"]["field"] is None  # werkzeug's refusal, before our own 5 MB check ran
    assert r.json["error"]["message"] == "提交的内容过大：上传的文件不能超过 5MB"


def test_upload_input_is_validated(client, owner):
    assert_error(upload(client, owner, JPEG, kind=None), 400, "INVALID_INPUT")
    r = upload(client, owner, JPEG, kind="selfie")
    assert_error(r, 400, "INVALID_INPUT")
    assert r.json["error"]["field"] == "kind"
    r = client.post(URL, data={"kind": "other"}, content_type="multipart/form-data", headers=person_headers(owner))
    assert_error(r, 400, "INVALID_INPUT")
    assert r.json["error"]["field"] == "file"
    assert_error(upload(client, owner, b""), 400, "FILE_EMPTY")
    assert_error(client.post(URL, data={"kind": "other", "file": (io.BytesIO(JPEG), "a.jpg")},
                             content_type="multipart/form-data"), 401, "UNAUTHORIZED")


def test_another_persons_material_is_404_like_a_missing_one(client, owner):
    stranger = factories.person("赵小明")
    material_id = upload(client, owner, PDF, kind="marriage_certificate").json["id"]
    theirs = client.get(f"{URL}/{material_id}", headers=person_headers(stranger))
    missing = client.get(f"{URL}/{'0' * 32}", headers=person_headers(stranger))
    assert_error(theirs, 404, "NOT_FOUND")
    assert (theirs.status_code, theirs.json) == (missing.status_code, missing.json)


def test_owned_materials_for_the_application_service(client, owner):
    stranger = factories.person("赵小明")
    mine = [upload(client, owner, c).json["id"] for c in (JPEG, PNG)]
    theirs = upload(client, stranger, PDF).json["id"]
    assert [m.id for m in owned_materials(owner, [mine[1], mine[0], mine[1]])] == [mine[1], mine[0]]
    assert owned_materials(owner, []) == []
    for ids in ([mine[0], theirs], ["nope"]):
        with pytest.raises(ApiError) as caught:
            owned_materials(owner, ids)
        assert (caught.value.code, caught.value.status, caught.value.field) == \
            ("MATERIAL_NOT_FOUND", 422, "material_ids")


def test_a_reviewer_reads_the_proof_attached_to_an_application_and_only_that(client, owner):
    from api.models import Application, AuditEvent
    from tests.lifecycle_helpers import run_worker, staff_headers
    child = factories.person("王小军", insurance_type="resident", balance_fen=None, region_code=owner.region_code)
    attached, private = upload(client, owner, PNG).json["id"], upload(client, owner, JPEG).json["id"]
    r = client.post("/api/v1/bindings/applications", headers=person_headers(owner), json={
        "beneficiary_name": child.name, "beneficiary_id_number": child.id_number, "relation": "child",
        "material_ids": [attached]})
    assert r.status_code == 202, r.json
    run_worker()  # the registry has no record of them: the proof goes to a reviewer
    detail = client.get(f"/api/v1/bindings/applications/{r.json['id']}", headers=person_headers(owner)).json
    assert detail["status"] == "manual_review" and detail["reason_code"] == "PROOF_UNDER_REVIEW"
    assert "人工审核" in detail["reason"] and "未上传" not in detail["reason"]

    reviewer = staff_headers()
    got = client.get(f"/api/v1/staff/materials/{attached}", headers=reviewer)
    assert got.status_code == 200 and got.data == PNG and got.mimetype == "image/png"
    assert got.headers["Cache-Control"] == "private, no-store"
    audit = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "material_read")).all()
    assert [(a.actor, a.target) for a in audit] == [("staff:reviewer1", attached)]
    # a material attached to no application stays its owner's; a clerk is not a reviewer; a person is not staff
    assert_error(client.get(f"/api/v1/staff/materials/{private}", headers=reviewer), 404, "NOT_FOUND")
    assert_error(client.get(f"/api/v1/staff/materials/{attached}", headers=staff_headers("clerk1", ("clerk",))),
                 403, "FORBIDDEN")
    assert client.get(f"/api/v1/staff/materials/{attached}", headers=person_headers(owner)).status_code == 403
    assert db.session.get(Application, r.json["id"]).status == "manual_review"  # reading decides nothing
    decided = client.post(f"/api/v1/staff/reviews/{r.json['id']}/decision", headers=reviewer,
                          json={"decision": "reject", "reason": "户口簿无法辨认"})
    assert decided.status_code == 200
    # once decided, the proof is its owner's again
    assert_error(client.get(f"/api/v1/staff/materials/{attached}", headers=reviewer), 404, "NOT_FOUND")
    assert client.get(f"/api/v1/materials/{attached}", headers=person_headers(owner)).data == PNG
