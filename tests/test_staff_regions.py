"""Reviewers belong to a region: a regional reviewer sees, decides and reads the proof of his province's insured only;
a national one (created without --region, deliberately) serves all."""
import datetime as dt

from sqlalchemy import select

from api.extensions import db
from api.models import Application, Material, StaffUser
from tests import factories
from tests.lifecycle_helpers import staff_headers


def _waiting(authorizer, beneficiary, proof_name):
    proof = Material(owner_person_id=authorizer.id, kind="household_register", content_type="image/png", size=3,
                     sha256="0" * 64, storage_name=proof_name)
    app = Application(authorizer_id=authorizer.id, beneficiary_id=beneficiary.id, relation="sibling",
                      channel="wechat", status="manual_review")
    app.materials = [proof]
    db.session.add(app)
    db.session.commit()
    return app, proof


def _reviewer(username, region):
    headers = staff_headers(username)
    db.session.scalar(select(StaffUser).where(StaffUser.username == username)).region_code = region
    db.session.commit()
    return headers


def test_a_regional_reviewer_serves_only_his_provinces_insured(client, clean_app):
    factories.load_policies()
    gd = factories.person("粤甲", region_code="440106")
    gd_sister = factories.person("粤乙", region_code="440106", male=False, birth=dt.date(1975, 1, 1))
    sx = factories.person("晋甲", region_code="140105")
    sx_sister = factories.person("晋乙", region_code="140105", male=False, birth=dt.date(1975, 1, 1))
    gd_app, gd_proof = _waiting(gd, gd_sister, "gd.png")
    sx_app, sx_proof = _waiting(sx, sx_sister, "sx.png")
    upload_dir = clean_app.config["UPLOAD_DIR"]
    import os
    os.makedirs(upload_dir, exist_ok=True)
    for name in ("gd.png", "sx.png"):
        with open(os.path.join(upload_dir, name), "wb") as fh:
            fh.write(b"\x89PNG")

    guangdong = _reviewer("gd-reviewer", "44")
    queue = client.get("/api/v1/staff/reviews", headers=guangdong).json["items"]
    assert [a["id"] for a in queue] == [gd_app.id]
    assert client.get(f"/api/v1/staff/materials/{gd_proof.id}", headers=guangdong).status_code == 200
    # the other province's: as if it did not exist
    assert client.get(f"/api/v1/staff/materials/{sx_proof.id}", headers=guangdong).status_code == 404
    r = client.post(f"/api/v1/staff/reviews/{sx_app.id}/decision", headers=guangdong,
                    json={"decision": "reject", "reason": "材料不清晰"})
    assert r.status_code == 404 and r.json["error"]["code"] == "NOT_FOUND"
    db.session.rollback()
    assert db.session.get(Application, sx_app.id).status == "manual_review"

    national = _reviewer("national-reviewer", None)
    assert {a["id"] for a in client.get("/api/v1/staff/reviews", headers=national).json["items"]} == \
        {gd_app.id, sx_app.id}
    r = client.post(f"/api/v1/staff/reviews/{sx_app.id}/decision", headers=national,
                    json={"decision": "reject", "reason": "材料不清晰"})
    assert r.status_code == 200, r.json


def test_staff_create_takes_a_region(runner, clean_app):
    r = runner.invoke(args=["staff", "create", "gd1", "--role", "reviewer", "--region", "44"], input="secret-pass-1\n")
    assert r.exit_code == 0, r.output
    assert "44" in r.output
    assert db.session.scalar(select(StaffUser.region_code).where(StaffUser.username == "gd1")) == "44"
    r = runner.invoke(args=["staff", "create", "nat1", "--role", "reviewer"], input="secret-pass-1\n")
    assert r.exit_code == 0 and "全国" in r.output
    assert db.session.scalar(select(StaffUser.region_code).where(StaffUser.username == "nat1")) is None
    r = runner.invoke(args=["staff", "create", "bad1", "--role", "reviewer", "--region", "4401"], input="x\n")
    assert r.exit_code == 1 and "两位" in r.output
