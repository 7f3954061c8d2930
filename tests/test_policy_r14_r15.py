"""The engine's R14 (automatic end) and R15 (代缴) rules as pure functions, and their policy fields."""
import datetime as dt
from pathlib import Path

import pytest

from api import policy
from api.policy import FamilySource, PersonFacts, Policy, PolicyError

POLICIES = Path(__file__).resolve().parent.parent / "fixtures" / "demo" / "policies"
BASE = {"province_code": "44", "name": "广东省", "relations": ["spouse", "child"], "beneficiary_area": "province"}


def facts(kind="employee", status="normal", region="440106", balance=100000, prior=None, number="440106197001010011"):
    return PersonFacts(id_number=number, insurance_type=kind, status=status, region_code=region,
                       balance_fen=balance if kind == "employee" else 0,
                       prior_year_fen=(balance if prior is None else prior) if kind == "employee" else 0,
                       has_account=kind == "employee")


GD = Policy.from_dict(BASE)
XIAN = Policy.from_dict({**BASE, "end_on_pause": False})
A, B = facts(), facts("resident", number="440106197203080022")


@pytest.mark.parametrize("region_policy, authorizer, beneficiary, code", [
    (GD, A, B, None),
    (GD, facts(status="suspended"), B, "AUTHORIZER_INSURANCE_CHANGED"),
    (XIAN, facts(status="suspended"), B, None),  # 西安: 暂停 does not stop use
    (XIAN, facts(status="terminated"), B, "AUTHORIZER_INSURANCE_CHANGED"),
    (GD, facts(status="terminated"), B, "AUTHORIZER_INSURANCE_CHANGED"),
    (GD, facts("resident"), B, "AUTHORIZER_INSURANCE_CHANGED"),
    (GD, A, facts("resident", status="suspended"), "BENEFICIARY_INSURANCE_CHANGED"),
    (XIAN, A, facts("resident", status="suspended"), "BENEFICIARY_INSURANCE_CHANGED"),  # only the authorizer's pause
    (GD, A, facts("resident", status="terminated"), "BENEFICIARY_INSURANCE_CHANGED"),
    (GD, A, facts("resident", region="310104"), "OUT_OF_AREA"),
    (GD, A, facts("resident", region="440304"), None),  # same province
    (None, A, B, "OUT_OF_AREA"),  # the authorizer's region has left the scheme
    (GD, facts(balance=0), B, None),  # an empty account pays nothing but ends nothing
])
def test_binding_end_code(region_policy, authorizer, beneficiary, code):
    assert policy.binding_end_code(region_policy, authorizer, beneficiary) == code


@pytest.mark.parametrize("region_policy, authorizer, beneficiary, pays", [
    (GD, A, B, 5000),
    (GD, A, facts("resident", region="310104"), 0),
    (GD, facts(status="suspended"), B, 0),
    (XIAN, facts(status="suspended"), B, 5000),
    (GD, A, None, 5000),  # the beneficiary unknown: the authorizer's checks alone, as before R14
    (GD, facts(status="suspended"), None, 0),
])
def test_a_family_source_pays_nothing_once_its_people_no_longer_qualify(region_policy, authorizer, beneficiary,
                                                                        pays):
    source = FamilySource("b1", authorizer, region_policy, dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
                          beneficiary=beneficiary, per_payment_limit_fen=5000)
    assert policy.family_source_available(source, "440106", dt.date(2026, 6, 1)) == pays


PAYING = Policy.from_dict({**BASE, "contributions": True})
SHANGHAI = Policy.from_dict({**BASE, "contributions": True, "shareable": "prior_year"})


@pytest.mark.parametrize("region_policy, authorizer, beneficiary, due, status, code", [
    (PAYING, A, B, 40000, "due", None),
    (PAYING, A, B, 100000, "due", None),  # exactly the balance
    (PAYING, A, B, 100001, "due", "BALANCE_SHORT"),  # no partial payment
    (GD, A, B, 40000, "due", "CONTRIBUTIONS_NOT_OFFERED"),  # the default: a policy must say it offers 代缴
    (PAYING, A, facts(), 40000, "due", "BENEFICIARY_NOT_RESIDENT"),
    (PAYING, A, B, None, None, "NOTHING_DUE"),
    (PAYING, A, B, 40000, "paid", "ALREADY_PAID"),
    (SHANGHAI, facts(balance=100000, prior=30000), B, 40000, "due", "BALANCE_SHORT"),  # 历年 only
    (Policy.from_dict({**BASE, "contributions": True, "reserve_fen": 70000}), A, B, 40000, "due", "BALANCE_SHORT"),
])
def test_contribution_refusal(region_policy, authorizer, beneficiary, due, status, code):
    assert policy.contribution_refusal(region_policy, authorizer, beneficiary, due, status) == code


@pytest.mark.parametrize("field, value", [("end_on_pause", "no"), ("end_on_pause", 0), ("contributions", 1),
                                          ("contributions", "true")])
def test_the_fields_are_booleans(field, value):
    with pytest.raises(PolicyError, match=field):
        Policy.from_dict({**BASE, field: value})


def test_defaults_and_the_public_summary():
    assert (GD.end_on_pause, GD.contributions) == (True, False)
    assert {"end_on_pause": False, "contributions": False}.items() <= XIAN.to_public().items()


@pytest.mark.parametrize("path", sorted(POLICIES.glob("*.toml")), ids=lambda p: p.name)
def test_every_demo_policy_says_both_with_its_source(path):
    text = path.read_text(encoding="utf-8")
    loaded = policy.load_policy_file(path)
    for field in ("end_on_pause", "contributions"):
        (line,) = [line for line in text.splitlines() if line.startswith(field)]
        assert "#" in line, f"{path.name}: {field} without a source comment"
    # 陕西 (西安, 2023): a paused authorizer does not stop use, and no 个账 代缴 [B: provinces.md SN2]
    assert loaded.end_on_pause is (path.stem != "61")
    assert loaded.contributions is (path.stem != "61")
