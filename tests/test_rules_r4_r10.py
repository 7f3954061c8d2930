"""R4 at the window (the clerk records the identity documents he saw), R10's validity window from a date, the
month's used amount that never goes below zero, and region policies parsed once per process."""
import datetime as dt

import pytest
from api import policy
from api.errors import Refusal
from api.extensions import db
from api.models import Application, Binding, FamilyPayment, RegionPolicy, Settlement
from api.services import applications, bindings, people
from tests import factories
from tests.test_policy import POLICIES, source

TODAY = dt.date(2026, 3, 15)


# --- R4 ----------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("channel", policy.ONLINE_CHANNELS)
def test_online_the_login_stands_for_the_identity_documents(channel):
    assert policy.identity_documents_missing(POLICIES["44"], channel) == []


def test_at_the_window_the_clerk_must_have_seen_each_required_document():
    required = list(POLICIES["44"].required_materials)
    assert policy.identity_documents_missing(POLICIES["44"], "window") == required
    assert policy.identity_documents_missing(POLICIES["44"], "window", {"id_card"}) == ["insurance_card"]
    assert policy.identity_documents_missing(POLICIES["44"], "window", set(required)) == []


def test_a_window_application_records_what_the_clerk_saw(clean_app):
    factories.load_policies()
    a = factories.person("王建国")
    b = factories.person("李秀英", male=False, insurance_type="resident", balance_fen=None)
    body = {"beneficiary_name": b.name, "beneficiary_id_number": b.id_number, "relation": "spouse"}
    with pytest.raises(Refusal) as refused:
        applications.submit(a, body, "window", materials_seen=["id_card"])
    assert refused.value.code == "IDENTITY_DOCUMENTS_NOT_SEEN"
    db.session.rollback()
    app = applications.submit(a, body, "window", materials_seen=["insurance_card", "id_card"])
    assert db.session.get(Application, app.id).materials_seen == ["id_card", "insurance_card"]


# --- R10 validity window --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("valid_from,valid_until,expected", [
    (None, None, True),
    (TODAY, None, True), (TODAY + dt.timedelta(days=1), None, False),
    (None, TODAY, True), (None, TODAY - dt.timedelta(days=1), False),
    (TODAY - dt.timedelta(days=30), TODAY + dt.timedelta(days=30), True),
])
def test_a_binding_is_in_effect_inside_its_window_only(valid_from, valid_until, expected):
    assert policy.in_effect(valid_from, valid_until, TODAY) is expected
    paid = policy.family_source_available(source("b1", valid_from=valid_from, valid_until=valid_until), "440104", TODAY)
    assert (paid > 0) is expected


def test_a_binding_not_yet_in_effect_pays_nothing_in_a_plan():
    later = source("later", valid_from=TODAY + dt.timedelta(days=1))
    now = source("now", created_days=5)
    plan = policy.plan_payment(10000, 10000, 0, [later, now], "440104", TODAY)
    assert plan.family == [("now", 10000)]


# --- the month's used amount --------------------------------------------------------------------------------------

def test_used_this_month_counts_this_months_payments_and_never_goes_below_zero(clean_app):
    """Last month's payment refunded this month gives back to last month: this month's use stays what it is."""
    a = factories.person("王建国", balance_fen=100000)
    b = factories.person("李秀英", male=False, insurance_type="resident", balance_fen=None)
    hospital = factories.institution()
    binding = Binding(authorizer_id=a.id, beneficiary_id=b.id, relation="spouse")
    db.session.add(binding)
    db.session.commit()
    now = dt.datetime.now(dt.timezone.utc)

    def paid(amount, when, refunded=None):
        settlement = Settlement(institution_id=hospital.id, patient_id=b.id, request_hash="x", items=[],
                                total_fen=amount, eligible_fen=amount, pooled_fen=0, personal_burden_fen=amount,
                                own_account_fen=0, cash_fen=0, created_at=when)
        db.session.add(settlement)
        db.session.flush()
        db.session.add(FamilyPayment(settlement_id=settlement.id, position=0, binding_id=binding.id,
                                     authorizer_id=a.id, beneficiary_id=b.id, institution_id=hospital.id,
                                     amount_fen=amount, created_at=when, refunded_at=refunded))
        db.session.commit()

    paid(3000, now)
    paid(1000, now, refunded=now)
    assert bindings.used_this_month([binding.id]) == {binding.id: 3000}
    paid(5000, now - dt.timedelta(days=40), refunded=now)
    assert bindings.used_this_month([binding.id]) == {binding.id: 3000}


# --- policies parsed once per process -----------------------------------------------------------------------------

def test_a_policy_is_parsed_once_and_again_when_the_registry_changes_it(clean_app, monkeypatch):
    factories.load_policies()
    parsed = []
    real = policy.Policy.from_dict
    monkeypatch.setattr(policy.Policy, "from_dict", classmethod(lambda cls, data: parsed.append(1) or real(data)))
    people._parsed.clear()
    first = people.policy_for("440106")
    assert people.policy_for("440101") is first and len(parsed) == 1
    row = db.session.get(RegionPolicy, "44")
    row.data = {**row.data, "manual_review_days": 9}
    db.session.commit()
    assert people.policy_for("440106").manual_review_days == 9 and len(parsed) == 2


def test_a_binding_outside_its_window_is_shown_not_in_effect_with_its_dates(client):
    from tests.lifecycle_helpers import person_headers, run_worker
    factories.load_policies()
    a = factories.person("王建国")
    b = factories.person("李秀英", male=False, insurance_type="resident", balance_fen=None)
    factories.kinship(a, b, "spouse")
    start = dt.date.today() + dt.timedelta(days=30)
    r = client.post("/api/v1/bindings/applications", headers=person_headers(a), json={
        "beneficiary_name": b.name, "beneficiary_id_number": b.id_number, "relation": "spouse",
        "valid_from": start.isoformat(), "monthly_limit_fen": 20000})
    assert r.status_code == 202, r.json
    run_worker()
    (binding,) = client.get("/api/v1/bindings", headers=person_headers(a)).json["granted"]
    assert binding["valid_from"] == start.isoformat() and binding["in_effect"] is False
    assert binding["effect_note"] == f"尚未生效：自 {start:%Y年%m月%d日} 起可用"
    assert (binding["used_this_month_fen"], binding["remaining_this_month_fen"]) == (0, 20000)
    # the authorizer brings it forward: in effect today
    r = client.patch(f"/api/v1/bindings/{binding['id']}", headers=person_headers(a),
                     json={"valid_from": dt.date.today().isoformat()})
    assert r.status_code == 200 and r.json["in_effect"] is True and r.json["effect_note"] is None
    # a window that ends before it begins is refused, on the application and on the binding
    r = client.patch(f"/api/v1/bindings/{binding['id']}", headers=person_headers(a),
                     json={"valid_from": (start + dt.timedelta(days=400)).isoformat(),
                           "valid_until": start.isoformat()})
    assert (r.status_code, r.json["error"]["code"]) == (400, "VALID_FROM_AFTER_UNTIL")
    c = factories.person("王小明", insurance_type="resident", balance_fen=None, birth=dt.date(2000, 1, 1))
    r = client.post("/api/v1/bindings/applications", headers=person_headers(a), json={
        "beneficiary_name": c.name, "beneficiary_id_number": c.id_number, "relation": "child",
        "valid_from": start.isoformat(), "valid_until": dt.date.today().isoformat()})
    assert (r.status_code, r.json["error"]["code"], r.json["error"]["field"]) == \
        (400, "VALID_FROM_AFTER_UNTIL", "valid_from")


def test_the_approval_notice_links_to_the_binding_it_created(client):
    from api.models import Notification
    from tests.lifecycle_helpers import person_headers, run_worker
    factories.load_policies()
    a = factories.person("王建国")
    b = factories.person("李秀英", male=False, insurance_type="resident", balance_fen=None)
    factories.kinship(a, b, "spouse")
    client.post("/api/v1/bindings/applications", headers=person_headers(a), json={
        "beneficiary_name": b.name, "beneficiary_id_number": b.id_number, "relation": "spouse"})
    run_worker()
    (binding,) = client.get("/api/v1/bindings", headers=person_headers(a)).json["granted"]
    approvals = db.session.scalars(db.select(Notification).where(Notification.kind == "application_approved")).all()
    assert len(approvals) == 2 and {n.binding_id for n in approvals} == {binding["id"]}
