"""R15 — 居民医保 代缴 over HTTP: the registry file, paying a relative's due contribution once (replay, two payers at
once, already paid in the registry), whole or not at all, the refusals, the records and the 缴费证明 PDF."""
import datetime as dt
import threading

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from api import ledger
from api.masking import mask_id
from api.extensions import db
from api.models import (Binding, ContributionPayment, LedgerAccount, LedgerTransaction, Notification, Person,
                        RegionPolicy, ResidentContribution)
from api.services.registry import import_directory
from tests import factories
from tests.lifecycle_helpers import pdf_text, person_headers, staff_headers

YEAR = 2027


@pytest.fixture
def family(clean_app):
    """李建国 (employee, 广州, 3,000 元) and his son 李晓明 (employee too, 1,000 元), both bound to 王秀英
    (resident), who owes 400 元 for 2027."""
    factories.load_policies()
    husband = factories.person("李建国", region_code="440106", balance_fen=300000, birth=dt.date(1948, 1, 1))
    son = factories.person("李晓明", region_code="440106", balance_fen=100000, birth=dt.date(1975, 1, 1))
    wife = factories.person("王秀英", insurance_type="resident", balance_fen=None, region_code="440106",
                            male=False, birth=dt.date(1950, 3, 8))
    bindings = {}
    for who, relation in ((husband, "spouse"), (son, "parent")):
        b = Binding(authorizer_id=who.id, beneficiary_id=wife.id, relation=relation)
        db.session.add(b)
        db.session.commit()
        bindings[who.name] = b.id
    db.session.add(ResidentContribution(person_id=wife.id, year=YEAR, amount_fen=40000, status="due"))
    db.session.commit()
    return {"husband": husband, "son": son, "wife": wife, "bindings": bindings}


def pay(client, payer, binding_id, year=YEAR, commitment=True, key=None):
    headers = person_headers(payer)
    if key:
        headers["Idempotency-Key"] = key
    return client.post(f"/api/v1/bindings/{binding_id}/contributions", headers=headers,
                       json={"year": year, "commitment": commitment})


def balance(person) -> int:
    db.session.rollback()
    return ledger.balance_of(db.session.get(Person, person.id))[0]


def fund_balance() -> int:
    db.session.rollback()
    fund = db.session.scalar(select(LedgerAccount.id).where(LedgerAccount.code == "resident_fund:44"))
    return 0 if fund is None else ledger.balance(fund)


def code(r):
    return r.status_code, (r.json.get("error") or {}).get("code")


def test_the_authorizer_pays_the_due_contribution_and_both_are_told(client, family):
    husband, wife = family["husband"], family["wife"]
    r = pay(client, husband, family["bindings"]["李建国"])
    assert r.status_code == 201, r.json
    assert (r.json["year"], r.json["amount_fen"], r.json["role"]) == (YEAR, 40000, "payer")
    assert r.json["beneficiary"]["name"] == "王**" and "*" in r.json["beneficiary"]["id_number"]
    assert balance(husband) == 260000 and fund_balance() == 40000
    assert db.session.scalar(select(ResidentContribution.status)) == "paid"
    assert ledger.check() == []
    for person in (husband, wife):
        (notice,) = db.session.scalars(select(Notification).where(Notification.person_id == person.id,
                                                                  Notification.kind == "contribution_paid")).all()
        assert "400.00" in notice.body and "重复缴费" in notice.body
    for person, role in ((husband, "payer"), (wife, "beneficiary")):
        listed = client.get("/api/v1/contributions", headers=person_headers(person)).json["items"]
        assert [(i["id"], i["role"]) for i in listed] == [(r.json["id"], role)]
        pdf = client.get(f"/api/v1/contributions/{r.json['id']}/certificate", headers=person_headers(person))
        assert pdf.status_code == 200 and pdf.headers["Content-Type"] == "application/pdf"
        assert pdf.data.startswith(b"%PDF") and b"FontFile2" in pdf.data  # the Chinese font travels with it
    stranger = factories.person("赵六", region_code="440106")
    assert client.get(f"/api/v1/contributions/{r.json['id']}/certificate",
                      headers=person_headers(stranger)).status_code == 404
    assert client.get("/api/v1/contributions", headers=person_headers(stranger)).json["items"] == []


def test_a_replay_answers_the_first_payment_and_a_second_request_is_already_paid(client, family):
    husband, binding_id = family["husband"], family["bindings"]["李建国"]
    first = pay(client, husband, binding_id, key="k1")
    again = pay(client, husband, binding_id, key="k1")
    assert first.status_code == again.status_code == 201 and again.json == first.json
    assert again.headers["Idempotency-Replayed"] == "true"
    assert code(pay(client, husband, binding_id)) == (409, "ALREADY_PAID")
    assert balance(husband) == 260000
    assert db.session.scalar(select(func.count()).select_from(ContributionPayment)) == 1


def test_two_authorizers_paying_at_once_pay_once(clean_app, family):
    """The husband and the son press 缴费 for her at the same moment: one pays, the other hears ALREADY_PAID."""
    db.session.commit()
    payers = [(family["husband"], family["bindings"]["李建国"]), (family["son"], family["bindings"]["李晓明"])]
    barrier = threading.Barrier(2)
    results = [None, None]

    def send(n, headers, binding_id):
        client = FlaskClient(clean_app, clean_app.response_class)  # its own app context, session, connection
        barrier.wait()
        r = client.post(f"/api/v1/bindings/{binding_id}/contributions", headers=headers,
                        json={"year": YEAR, "commitment": True})
        results[n] = code(r)

    threads = [threading.Thread(target=send, args=(n, person_headers(payer), binding_id))
               for n, (payer, binding_id) in enumerate(payers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [(201, None), (409, "ALREADY_PAID")], results
    assert balance(family["husband"]) + balance(family["son"]) == 400000 - 40000
    assert fund_balance() == 40000
    assert db.session.scalar(select(func.count()).select_from(ContributionPayment)) == 1
    assert ledger.check() == []


def test_paid_in_the_registry_is_already_paid(client, family, tmp_path):
    wife = family["wife"]
    directory = tmp_path / "registry"
    directory.mkdir()
    (directory / "resident_contributions.csv").write_text(
        f"id_number,year,amount_fen,status\n{wife.id_number},{YEAR},40000,paid\n", encoding="utf-8")
    (report,) = import_directory(directory)
    assert report.ok and report.updated == 1, report.errors
    db.session.rollback()
    assert code(pay(client, family["husband"], family["bindings"]["李建国"])) == (409, "ALREADY_PAID")
    assert balance(family["husband"]) == 300000


def test_a_short_balance_pays_nothing(client, family):
    """The son's 1,000 元 cannot pay 1,200 元: no partial payment."""
    db.session.execute(ResidentContribution.__table__.update().values(amount_fen=120000))
    db.session.commit()
    assert code(pay(client, family["son"], family["bindings"]["李晓明"])) == (422, "BALANCE_SHORT")
    assert balance(family["son"]) == 100000 and fund_balance() == 0
    assert db.session.scalar(select(ResidentContribution.status)) == "due"
    assert db.session.scalar(select(func.count()).select_from(LedgerTransaction)
                             .where(LedgerTransaction.kind == "contribution")) == 0


def test_a_policy_without_daijiao_refuses(client, family):
    row = db.session.get(RegionPolicy, "44")
    row.data = {**row.data, "contributions": False}
    db.session.commit()
    assert code(pay(client, family["husband"], family["bindings"]["李建国"])) == (422, "CONTRIBUTIONS_NOT_OFFERED")


def test_the_refusals(client, family):
    husband, wife, binding_id = family["husband"], family["wife"], family["bindings"]["李建国"]
    assert code(pay(client, husband, binding_id, year=YEAR + 1)) == (422, "NOTHING_DUE")
    assert code(pay(client, husband, binding_id, commitment=False)) == (400, "COMMITMENT_REQUIRED")
    assert code(pay(client, wife, binding_id)) == (403, "NOT_AUTHORIZER")
    stranger = factories.person("赵六", region_code="440106")
    assert code(pay(client, stranger, binding_id)) == (404, "NOT_FOUND")
    assert code(pay(client, husband, "nope")) == (404, "NOT_FOUND")
    # an employee beneficiary pays his own contribution: not a resident
    employee_wife = factories.person("周敏", region_code="440106", male=False, birth=dt.date(1960, 1, 1))
    b = Binding(authorizer_id=husband.id, beneficiary_id=employee_wife.id, relation="sibling")
    db.session.add(b)
    db.session.add(ResidentContribution(person_id=employee_wife.id, year=YEAR, amount_fen=100, status="due"))
    db.session.commit()
    assert code(pay(client, husband, b.id)) == (422, "BENEFICIARY_NOT_RESIDENT")
    # a binding ended or revoked pays nothing
    assert client.post(f"/api/v1/bindings/{binding_id}/revoke", headers=person_headers(wife)).status_code == 200
    assert code(pay(client, husband, binding_id)) == (409, "BINDING_NOT_ACTIVE")
    # the registry changed and the sweep has not run: as good as ended
    son_binding = family["bindings"]["李晓明"]
    db.session.execute(Person.__table__.update().where(Person.id == family["son"].id).values(status="terminated"))
    db.session.commit()
    assert code(pay(client, family["son"], son_binding)) == (422, "AUTHORIZER_INSURANCE_CHANGED")
    assert balance(husband) == 300000 and fund_balance() == 0


def test_the_registry_file_is_validated_whole(clean_app, family, tmp_path):
    wife, husband = family["wife"], family["husband"]
    directory = tmp_path / "registry"
    directory.mkdir()
    path = directory / "resident_contributions.csv"
    path.write_text("id_number,year,amount_fen,status\n"
                    f"{wife.id_number},2028,38000,due\n"
                    f"{wife.id_number},1999,38000,due\n"
                    f"{husband.id_number},2028,12.5,due\n"
                    "110101199001011234,2028,100,due\n"
                    f"{wife.id_number},2028,38000,unpaid\n", encoding="utf-8")
    (report,) = import_directory(directory)
    assert report.errors == [
        "resident_contributions.csv:3: year 须为 2000–2100 之间的年度",
        "resident_contributions.csv:4: amount_fen 须为以分为单位的非负整数（不能有小数点或符号），实为 '12.5'",
        "resident_contributions.csv:5: id_number 身份证号码校验位错误",
        "resident_contributions.csv:6: status 须为 due|paid"]
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(ResidentContribution)) == 1  # the fixture's only
    path.write_text(f"id_number,year,amount_fen,status\n{wife.id_number},2028,38000,due\n"
                    f"{wife.id_number},{YEAR},40000,due\n", encoding="utf-8")
    (report,) = import_directory(directory)
    assert (report.inserted, report.updated, report.unchanged) == (1, 0, 1), report.errors
    (again,) = import_directory(directory)
    assert (again.inserted, again.updated, again.unchanged) == (0, 0, 2)


def test_a_payment_made_here_survives_an_older_export(client, family, tmp_path):
    assert pay(client, family["husband"], family["bindings"]["李建国"]).status_code == 201
    directory = tmp_path / "registry"
    directory.mkdir()
    (directory / "resident_contributions.csv").write_text(
        f"id_number,year,amount_fen,status\n{family['wife'].id_number},{YEAR},40000,due\n", encoding="utf-8")
    (report,) = import_directory(directory)
    assert report.ok and report.unchanged == 1
    db.session.rollback()
    assert db.session.scalar(select(ResidentContribution.status)) == "paid"


def test_the_demo_registry_offers_a_contribution_to_pay(clean_app, client):
    """fixtures/demo: 李建国 pays his wife 王秀英's 2027 contribution; his mother 陈桂兰's is paid already."""
    from pathlib import Path
    reports = import_directory(Path(__file__).resolve().parent.parent / "fixtures" / "demo")
    assert all(r.ok for r in reports), [r.errors for r in reports]
    db.session.rollback()
    number = {p.name: p for p in db.session.scalars(select(Person))}
    husband = number["李建国"]
    for name, relation in (("王秀英", "spouse"), ("陈桂兰", "parent")):
        db.session.add(Binding(authorizer_id=husband.id, beneficiary_id=number[name].id, relation=relation))
    db.session.commit()
    ids = dict(db.session.execute(select(Binding.beneficiary_id, Binding.id)).all())
    r = pay(client, husband, ids[number["王秀英"].id])
    assert r.status_code == 201 and r.json["amount_fen"] == 40000, r.json
    assert code(pay(client, husband, ids[number["陈桂兰"].id])) == (409, "ALREADY_PAID")
    assert balance(husband) == 680000 - 40000


def test_the_window_pays_for_an_authorizer_who_is_present_and_prints_the_certificate(client, family):
    from api.models import AuditEvent, StaffUser
    clerk = staff_headers("clerk44", roles=("clerk",))
    body = {"authorizer_name": "李建国", "authorizer_id_number": family["husband"].id_number,
            "binding_id": family["bindings"]["李建国"], "year": YEAR, "commitment": True}
    r = client.post("/api/v1/staff/contributions", headers=clerk, json={**body, "commitment": False})
    assert code(r) == (400, "COMMITMENT_REQUIRED")
    r = client.post("/api/v1/staff/contributions", headers=clerk, json={**body, "authorizer_name": "李建"})
    assert code(r) == (422, "AUTHORIZER_NAME_MISMATCH")
    r = client.post("/api/v1/staff/contributions", headers=clerk, json=body)
    assert r.status_code == 201, r.json
    assert (r.json["amount_fen"], r.json["channel"], r.json["role"]) == (40000, "window", "payer")
    assert balance(family["husband"]) == 260000 and fund_balance() == 40000
    again = client.post("/api/v1/staff/contributions", headers=clerk, json=body)
    assert code(again) == (409, "ALREADY_PAID")
    pdf = client.get(f"/api/v1/staff/contributions/{r.json['id']}/certificate", headers=clerk)
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    text = pdf_text(pdf.data)
    assert family["husband"].id_number not in text and mask_id(family["husband"].id_number) in text
    assert str(YEAR) in text and "400.00" in text
    actions = db.session.scalars(select(AuditEvent.action).where(AuditEvent.actor == "staff:clerk44")).all()
    assert {"window_contribution", "contribution_certificate_printed"} <= set(actions)
    # a clerk of another province sees neither the person nor the payment
    other = staff_headers("clerk14", roles=("clerk",))
    db.session.scalar(select(StaffUser).where(StaffUser.username == "clerk14")).region_code = "14"
    db.session.commit()
    assert client.get(f"/api/v1/staff/contributions/{r.json['id']}/certificate", headers=other).status_code == 404
    r = client.post("/api/v1/staff/contributions", headers=other, json={**body, "year": YEAR})
    assert code(r) == (404, "PERSON_NOT_FOUND")
