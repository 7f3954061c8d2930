"""The offline window (F10): a clerk files 《医保家庭共济申请表》 for a person present, through the same rules and review
pipeline; the 回执单 on A4 and 80 mm; the audit trail of every staff action, read by admins, filtered and paginated."""
import datetime as dt
import io

import pytest
from pypdf import PdfReader
from werkzeug.security import generate_password_hash

from api.auth import issue_token
from api.extensions import db
from api.models import Application, AuditEvent, Notification, StaffUser
from tests import factories
from tests.lifecycle_helpers import pdf_text, run_worker

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
SEEN = ["id_card", "insurance_card"]


def staff(username: str, roles, region: str | None = None) -> dict:
    user = StaffUser(username=username, password_hash=generate_password_hash("password-1"), roles=list(roles),
                     region_code=region)
    db.session.add(user)
    db.session.commit()
    return {"Authorization": f"Bearer {issue_token('staff', user.id)[0]}"}


@pytest.fixture
def family(clean_app):
    factories.load_policies()
    husband = factories.person("王建国", region_code="440106", balance_fen=300000)
    wife = factories.person("李秀英", insurance_type="resident", balance_fen=None, region_code="440104", male=False,
                            birth=dt.date(1972, 3, 8))
    nephew = factories.person("赵小虎", insurance_type="resident", balance_fen=None, region_code="440106",
                              birth=dt.date(2001, 2, 3))
    factories.kinship(husband, wife, "spouse")
    return husband, wife, nephew


def form(a, b, relation="spouse", **extra) -> dict:
    return {"authorizer_name": a.name, "authorizer_id_number": a.id_number, "beneficiary_name": b.name,
            "beneficiary_id_number": b.id_number, "relation": relation, "materials_seen": SEEN, **extra}


def test_a_window_application_goes_through_the_same_review_and_both_people_are_told(client, family):
    husband, wife, _ = family
    clerk = staff("clerk1", ["clerk"], "44")
    answer = client.post("/api/v1/staff/applications", headers=clerk, json=form(husband, wife, monthly_limit_fen=50000))
    assert answer.status_code == 202, answer.json
    assert answer.json["status"] == "submitted" and answer.json["receipt_no"].startswith("GJ")
    app = db.session.get(Application, answer.json["id"])
    assert (app.channel, app.materials_seen, app.monthly_limit_fen) == ("window", SEEN, 50000)
    assert app.created_by_staff_id is not None and app.events[0].actor == "staff:clerk1"
    run_worker()
    db.session.refresh(app)
    assert app.status == "approved"  # the registry confirms the spouse: automatic review as on any channel
    told = {(n.person_id, n.kind) for n in db.session.query(Notification)}
    assert {(husband.id, "application_submitted"), (wife.id, "application_submitted"),
            (husband.id, "application_approved"), (wife.id, "application_approved")} <= told
    event = db.session.query(AuditEvent).filter_by(action="window_application").one()
    assert event.actor == "staff:clerk1" and event.target == app.id
    assert event.detail["person"] == husband.id_number[:6] + "********" + husband.id_number[-4:]


def test_the_clerk_uploads_the_proof_and_the_application_waits_for_a_reviewer(client, family):
    husband, _, nephew = family
    clerk = staff("clerk1", ["clerk"])
    proof = client.post("/api/v1/staff/materials", headers=clerk, content_type="multipart/form-data",
                        data={"kind": "household_register", "file": (io.BytesIO(PNG), "hukou.png")})
    assert proof.status_code == 201, proof.json
    answer = client.post("/api/v1/staff/applications", headers=clerk,
                         json=form(husband, nephew, "sibling", material_ids=[proof.json["id"]]))
    assert answer.status_code == 202, answer.json
    run_worker()
    assert db.session.get(Application, answer.json["id"]).status == "manual_review"
    # a person's material is not the clerk's to attach
    other = client.post("/api/v1/staff/applications", headers=clerk,
                        json=form(husband, nephew, "child", material_ids=["nope"]))
    assert other.status_code in (409, 422)


@pytest.mark.parametrize("change, status, code", [
    ({"materials_seen": ["id_card"]}, 422, "IDENTITY_DOCUMENTS_NOT_SEEN"),
    ({"authorizer_name": "王建军"}, 422, "AUTHORIZER_NAME_MISMATCH"),
    ({"authorizer_id_number": "440106197001011234"}, 400, "INVALID_ID_NUMBER"),
    ("self", 422, "SELF_BINDING"),
])
def test_the_window_refuses_what_any_channel_refuses(client, family, change, status, code):
    husband, wife, _ = family
    body = form(husband, husband) if change == "self" else {**form(husband, wife), **change}
    answer = client.post("/api/v1/staff/applications", headers=staff("clerk1", ["clerk"]), json=body)
    assert answer.status_code == status, answer.json
    if code:
        assert answer.json["error"]["code"] == code
    assert db.session.query(Application).count() == 0


def test_a_clerk_files_only_for_people_of_his_region_and_reads_only_their_receipts(client, family):
    husband, wife, _ = family
    shanghai = staff("clerk-sh", ["clerk"], "31")
    refused = client.post("/api/v1/staff/applications", headers=shanghai, json=form(husband, wife))
    assert refused.status_code == 404 and refused.json["error"]["code"] == "PERSON_NOT_FOUND"
    guangdong = staff("clerk-gd", ["clerk"], "44")
    filed = client.post("/api/v1/staff/applications", headers=guangdong, json=form(husband, wife))
    assert client.get(f"/api/v1/staff/applications/{filed.json['id']}/receipt", headers=shanghai).status_code == 404
    reviewer_only = staff("rev", ["reviewer"])
    assert client.post("/api/v1/staff/applications", headers=reviewer_only, json=form(husband, wife)).status_code == 403


@pytest.mark.parametrize("size", ["a4", "80mm"])
def test_the_receipt_holds_the_receipt_number_and_no_unmasked_id_number(client, family, size):
    husband, wife, _ = family
    clerk = staff("clerk1", ["clerk"])
    filed = client.post("/api/v1/staff/applications", headers=clerk, json=form(husband, wife)).json
    response = client.get(f"/api/v1/staff/applications/{filed['id']}/receipt?format={size}", headers=clerk)
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    text = pdf_text(response.data)
    assert filed["receipt_no"] in text and "回执单" in text and "配偶" in text and "12333" in text
    assert husband.id_number not in text and wife.id_number not in text
    assert husband.id_number[:6] + "********" + husband.id_number[-4:] in text
    reader = PdfReader(io.BytesIO(response.data))
    width_mm = float(reader.pages[0].mediabox.width) / 72 * 25.4
    assert round(width_mm) == (80 if size == "80mm" else 210)
    assert db.session.query(AuditEvent).filter_by(action="receipt_printed").count() == 1


def test_the_audit_trail_lists_staff_actions_for_admins_filtered_and_paginated(client, family):
    husband, wife, _ = family
    clerk = staff("clerk1", ["clerk"])
    admin = staff("admin1", ["admin"])
    assert client.post("/api/v1/staff/login", json={"username": "clerk1", "password": "password-1"}).status_code == 200
    filed = client.post("/api/v1/staff/applications", headers=clerk, json=form(husband, wife)).json
    client.get(f"/api/v1/staff/applications/{filed['id']}/receipt", headers=clerk)
    client.get(f"/api/v1/staff/persons/{husband.id_number}/usage", headers={**clerk, "Accept": "application/pdf"})
    assert client.get("/api/v1/staff/audit", headers=clerk).status_code == 403
    page = client.get("/api/v1/staff/audit", headers=admin).json
    actions = [e["action"] for e in page["items"]]
    assert actions[:4] == ["usage_statement_printed", "receipt_printed", "window_application", "staff_login"]
    masked = husband.id_number[:6] + "********" + husband.id_number[-4:]
    assert all(e["person"] == masked for e in page["items"][:3])
    assert husband.id_number not in str(page)
    only = client.get("/api/v1/staff/audit?action=receipt_printed", headers=admin).json["items"]
    assert [e["action"] for e in only] == ["receipt_printed"]
    assert client.get("/api/v1/staff/audit?actor=staff:nobody", headers=admin).json["items"] == []
    today = dt.date.today()
    later = (today + dt.timedelta(days=2)).isoformat()
    assert client.get(f"/api/v1/staff/audit?from={later}", headers=admin).json["items"] == []
    seen, cursor = [], None
    while True:
        part = client.get("/api/v1/staff/audit?limit=1" + (f"&cursor={cursor}" if cursor else ""), headers=admin).json
        seen += [e["id"] for e in part["items"]]
        if not (cursor := part["next_cursor"]):
            break
    assert seen == [e["id"] for e in page["items"]] and len(seen) == len(set(seen))
    assert client.get("/api/v1/staff/audit?cursor=garbage", headers=admin).status_code == 400


def test_reading_a_proof_and_deciding_are_audited_with_the_person_masked(client, family):
    husband, _, nephew = family
    clerk, reviewer = staff("clerk1", ["clerk"]), staff("rev1", ["reviewer"])
    proof = client.post("/api/v1/staff/materials", headers=clerk, content_type="multipart/form-data",
                        data={"kind": "household_register", "file": (io.BytesIO(PNG), "hukou.png")}).json
    filed = client.post("/api/v1/staff/applications", headers=clerk,
                        json=form(husband, nephew, "sibling", material_ids=[proof["id"]])).json
    run_worker()
    assert client.get(f"/api/v1/staff/materials/{proof['id']}", headers=reviewer).status_code == 200
    decided = client.post(f"/api/v1/staff/reviews/{filed['id']}/decision", headers=reviewer,
                          json={"decision": "reject", "reason": "户口簿不清晰"})
    assert decided.status_code == 200, decided.json
    masked = husband.id_number[:6] + "********" + husband.id_number[-4:]
    events = {e.action: e for e in db.session.query(AuditEvent)}
    assert events["material_read"].detail == {"person": masked} and events["material_read"].actor == "staff:rev1"
    assert events["review_reject"].detail["person"] == masked
