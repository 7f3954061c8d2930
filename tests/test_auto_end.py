"""R14 — automatic end, over HTTP: a registry import that changes a person's insurance ends the bindings that no
longer qualify (by each cause), rejects pending applications alike, tells both people how to bind again; a policy
may keep a paused authorizer's bindings (西安: end_on_pause = false); settlement never pays through such a binding,
even between the change and the sweep; a rejected file ends nothing."""
import csv
import datetime as dt
import io

import pytest
from sqlalchemy import select

from api import ledger
from api.extensions import db
from api.models import Application, Binding, Notification, Person, RegionPolicy
from api.services.registry import PERSON_COLUMNS, PERSON_OPTIONAL, import_directory
from tests import factories
from tests.lifecycle_helpers import person_headers, run_worker

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x22" * 300


@pytest.fixture
def family(clean_app, client):
    """李建国 (employee, 广州) bound to his wife (resident) through an approved application, over HTTP."""
    factories.load_policies()
    factories.institution("H4401001", "广州市第一人民医院", "440104", api_key="key-gz")
    husband = factories.person("李建国", region_code="440106", balance_fen=300000)
    wife = factories.person("王秀英", insurance_type="resident", balance_fen=None, region_code="440106",
                            male=False, birth=dt.date(1972, 3, 8))
    factories.kinship(husband, wife, "spouse")
    r = client.post("/api/v1/bindings/applications", headers=person_headers(husband), json={
        "beneficiary_name": wife.name, "beneficiary_id_number": wife.id_number, "relation": "spouse"})
    assert r.status_code == 202, r.json
    run_worker()
    binding = db.session.scalar(select(Binding).where(Binding.authorizer_id == husband.id))
    assert binding.status == "active"
    return {"husband": husband, "wife": wife, "binding_id": binding.id}


def registry_row(person: Person, **changes) -> dict:
    row = {"id_number": person.id_number, "name": person.name, "insurance_type": person.insurance_type,
           "status": person.status, "region_code": person.region_code, "card_number": person.card_number,
           "phone": person.phone, "account_balance_fen": "", "account_prior_year_fen": ""}
    if person.insurance_type == "employee":
        total, prior = ledger.balance_of(person)
        row.update(account_balance_fen=str(total), account_prior_year_fen=str(prior))
    row.update(changes)
    return row


def import_persons(tmp_path, rows: list[dict]):
    directory = tmp_path / "registry"
    directory.mkdir(exist_ok=True)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[*PERSON_COLUMNS, *PERSON_OPTIONAL])
    writer.writeheader()
    writer.writerows(rows)
    (directory / "persons.csv").write_text(out.getvalue(), encoding="utf-8")
    (report,) = import_directory(directory)
    db.session.rollback()
    return report


def bindings_of(client, person):
    return client.get("/api/v1/bindings", headers=person_headers(person)).json


def notices(person, kind):
    db.session.rollback()
    return db.session.scalars(select(Notification).where(Notification.person_id == person.id,
                                                         Notification.kind == kind)).all()


def bill(p, amount=10000):
    return {"patient_id_number": p.id_number, "credential": p.card_number, "pooled_fen": 0,
            "items": [{"code": "D1", "name": "药品", "category": "drug", "amount_fen": amount}]}


@pytest.mark.parametrize("who, changes, code", [
    ("husband", {"status": "terminated"}, "AUTHORIZER_INSURANCE_CHANGED"),
    ("husband", {"status": "suspended"}, "AUTHORIZER_INSURANCE_CHANGED"),
    ("wife", {"status": "suspended"}, "BENEFICIARY_INSURANCE_CHANGED"),
    ("wife", {"status": "terminated"}, "BENEFICIARY_INSURANCE_CHANGED"),
    ("wife", {"region_code": "310104"}, "OUT_OF_AREA"),  # 广东: the beneficiary must be insured in the province
])
def test_an_import_that_changes_a_persons_insurance_ends_the_binding(client, family, tmp_path, who, changes, code):
    husband, wife = family["husband"], family["wife"]
    report = import_persons(tmp_path, [registry_row(family[who], **changes)])
    assert report.ok, report.errors
    for person, side in ((husband, "granted"), (wife, "received")):
        (binding,) = bindings_of(client, person)[side]
        assert (binding["status"], binding["end_code"]) == ("ended", code)
        assert binding["end_reason"] and binding["ended_at"]
        (notice,) = notices(person, "binding_ended")
        assert notice.title == "家庭共济关系已自动终止"
        assert "重新申请" in notice.body and notice.binding_id == family["binding_id"]
        assert wife.name not in notice.body and husband.name not in notice.body  # names masked
    # it pays nothing from now on: the wife pays her bill in cash
    if who == "wife" and changes.get("status"):
        return  # a patient who is not insured normally cannot settle at all
    r = client.post("/api/v1/institution/settlements", json=bill(wife),
                    headers={"X-Institution-Key": "key-gz", "Idempotency-Key": "after-end"})
    assert r.status_code == 201, r.json
    assert r.json["family"] == [] and r.json["cash_fen"] == 10000


def test_an_employee_who_becomes_a_resident_ends_his_bindings(client, family, tmp_path):
    husband = family["husband"]
    husband_row = registry_row(husband, account_balance_fen="0", account_prior_year_fen="0")
    assert import_persons(tmp_path, [husband_row]).ok  # the account emptied by the registry first
    report = import_persons(tmp_path, [registry_row(husband, insurance_type="resident", account_balance_fen="",
                                                    account_prior_year_fen="")])
    assert report.ok, report.errors
    (binding,) = bindings_of(client, husband)["granted"]
    assert (binding["status"], binding["end_code"]) == ("ended", "AUTHORIZER_INSURANCE_CHANGED")


def test_xian_keeps_a_paused_authorizers_binding(client, family, tmp_path):
    """end_on_pause = false (陕西/西安 2023: 暂停 does not stop use): a pause ends nothing and he still pays;
    a termination still ends it."""
    row = db.session.get(RegionPolicy, "44")
    row.data = {**row.data, "end_on_pause": False}
    db.session.commit()
    husband, wife = family["husband"], family["wife"]
    assert import_persons(tmp_path, [registry_row(husband, status="suspended")]).ok
    (binding,) = bindings_of(client, husband)["granted"]
    assert binding["status"] == "active"
    r = client.post("/api/v1/institution/settlements", json=bill(wife),
                    headers={"X-Institution-Key": "key-gz", "Idempotency-Key": "paused"})
    assert r.status_code == 201 and [f["amount_fen"] for f in r.json["family"]] == [10000], r.json
    assert import_persons(tmp_path, [registry_row(husband, status="terminated")]).ok
    (binding,) = bindings_of(client, husband)["granted"]
    assert (binding["status"], binding["end_code"]) == ("ended", "AUTHORIZER_INSURANCE_CHANGED")


def test_settlement_never_pays_between_the_change_and_the_sweep(client, family):
    """The registry row changed without the sweep (as a job-based sweep would leave it for a while): the engine
    itself refuses the binding, for each cause."""
    husband, wife = family["husband"], family["wife"]
    for n, (person, field, value) in enumerate([(husband, "status", "terminated"),
                                                (wife, "region_code", "310104")]):
        original = getattr(person, field)
        db.session.execute(Person.__table__.update().where(Person.id == person.id).values({field: value}))
        db.session.commit()
        r = client.post("/api/v1/institution/settlements/quote", json=bill(wife),
                        headers={"X-Institution-Key": "key-gz"})
        assert r.status_code == 200 and r.json["family"] == [] and r.json["cash_fen"] == 10000, r.json
        r = client.post("/api/v1/institution/settlements", json=bill(wife),
                        headers={"X-Institution-Key": "key-gz", "Idempotency-Key": f"between-{n}"})
        assert r.status_code == 201 and r.json["family"] == [], r.json
        assert db.session.get(Binding, family["binding_id"]).status == "active"  # not swept: still listed
        db.session.execute(Person.__table__.update().where(Person.id == person.id).values({field: original}))
        db.session.commit()
    assert ledger.balance_of(db.session.get(Person, husband.id))[0] == 300000


def test_a_pending_application_is_rejected_with_the_code_and_both_are_told(client, family, tmp_path):
    husband = family["husband"]
    brother = factories.person("李建军", insurance_type="resident", balance_fen=None, region_code="440106")
    headers = person_headers(husband)
    proof = client.post("/api/v1/materials", headers=headers, content_type="multipart/form-data",
                        data={"kind": "household_register", "file": (io.BytesIO(PNG), "hukou.png")})
    r = client.post("/api/v1/bindings/applications", headers=headers, json={
        "beneficiary_name": brother.name, "beneficiary_id_number": brother.id_number, "relation": "sibling",
        "material_ids": [proof.json["id"]]})
    assert r.status_code == 202, r.json
    run_worker()
    app_id = r.json["id"]
    assert db.session.get(Application, app_id).status == "manual_review"
    assert import_persons(tmp_path, [registry_row(brother, status="terminated")]).ok
    detail = client.get(f"/api/v1/bindings/applications/{app_id}", headers=headers).json
    assert (detail["status"], detail["reason_code"]) == ("rejected", "BENEFICIARY_INSURANCE_CHANGED")
    assert detail["timeline"][-1]["actor"] == "system"
    assert detail["timeline"][-1]["reason_code"] == "BENEFICIARY_INSURANCE_CHANGED"
    for person in (husband, brother):
        rejected = [n for n in notices(person, "application_rejected") if n.application_id == app_id]
        assert len(rejected) == 1 and "重新申请" in rejected[0].body
    # the husband's binding with his wife is not touched
    assert db.session.get(Binding, family["binding_id"]).status == "active"


def test_a_rejected_file_ends_nothing(client, family, tmp_path):
    rows = [registry_row(family["husband"], status="terminated"), registry_row(family["wife"], phone="12")]
    report = import_persons(tmp_path, rows)
    assert not report.ok and report.errors == ["persons.csv:3: phone 手机号码须为 11 位数字"]
    assert db.session.get(Binding, family["binding_id"]).status == "active"
    assert notices(family["husband"], "binding_ended") == []


def test_a_revoked_binding_stays_revoked_and_unchanged_people_end_nothing(client, family, tmp_path):
    husband, wife = family["husband"], family["wife"]
    assert import_persons(tmp_path, [registry_row(husband), registry_row(wife, phone="13900000000")]).ok
    assert db.session.get(Binding, family["binding_id"]).status == "active"
    r = client.post(f"/api/v1/bindings/{family['binding_id']}/revoke", headers=person_headers(wife))
    assert r.status_code == 200
    assert import_persons(tmp_path, [registry_row(wife, status="suspended")]).ok
    binding = db.session.get(Binding, family["binding_id"])
    assert (binding.status, binding.end_code) == ("revoked", None)
    assert notices(husband, "binding_ended") == []
