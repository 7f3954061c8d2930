"""Table-driven tests of the policy engine (F2, rules R1–R10) over the demo region policies 44/31/33/14/37."""
from __future__ import annotations

import ast
import datetime as dt
import itertools
import re
import dataclasses
import tomllib
from pathlib import Path

import pytest

from api import policy as engine
from api.messages import MESSAGES
from api.policy import (
    INVERSE, RELATIONS, ExistingLink, FamilySource, PersonFacts, Policy, PolicyError, application_refusal,
    authorizer_refusal, beneficiary_refusal, eligible_fen, family_source_available, kinship_matches,
    load_policy_file, order_family_sources, plan_payment, relation_refusal, review_outcome, same_area,
    settlement_refusal, shareable_balance,
)
from tests.factories import POLICY_DIR, id_number

POLICIES = {code: load_policy_file(POLICY_DIR / f"{code}.toml") for code in ("44", "31", "33", "14", "37")}
# A county of each province: 广州越秀, 上海黄浦, 杭州上城, 太原小店, 泰安泰山.
HOME = {"44": "440104", "31": "310101", "33": "330102", "14": "140105", "37": "370902"}
ALL_REGIONS = tuple(POLICIES)
ALL_RELATIONS = tuple(RELATIONS)
TODAY = dt.date(2026, 3, 15)
T0 = dt.datetime(2025, 1, 1, 8, 0)


def facts(region: str = "440104", male: bool = True, birth: dt.date = dt.date(1970, 1, 1), **kw) -> PersonFacts:
    """An employee with a usable account of 5,000 元, all of it 历年, unless told otherwise."""
    values = dict(insurance_type="employee", status="normal", region_code=region, balance_fen=500000,
                  prior_year_fen=500000, has_account=True)
    values.update(kw)
    return PersonFacts(id_number=id_number(region, birth, male), **values)


def resident(region: str, male: bool = True, birth: dt.date = dt.date(1990, 1, 1)) -> PersonFacts:
    return facts(region, male, birth, insurance_type="resident", balance_fen=0, prior_year_fen=0, has_account=False)


def source(binding_id: str, province: str = "44", created_days: int = 0, region: str | None = None,
           balance_fen: int = 500000, prior_year_fen: int | None = None, **kw) -> FamilySource:
    auth = facts(region or HOME[province], balance_fen=balance_fen,
                 prior_year_fen=balance_fen if prior_year_fen is None else prior_year_fen)
    return FamilySource(binding_id=binding_id, authorizer=auth, policy=POLICIES[province],
                        created_at=T0 + dt.timedelta(days=created_days), **kw)


def test_demo_policies_differ_as_the_real_regions_do():
    p = POLICIES
    assert (p["44"].shareable, p["44"].beneficiary_area, p["44"].use_scope) == ("all", "province", "province")
    assert "commitment" in p["44"].proof
    # 上海 has admitted 近亲属 since 2025-07 at the latest (SH2, grade A): no province keeps the 2021 set
    assert p["31"].relations == set(RELATIONS)
    assert (p["31"].shareable, p["31"].beneficiary_area, p["31"].multi_authorizer_settlement) == \
        ("prior_year", "pooling", False)
    assert (p["33"].shareable, p["33"].max_authorizers, p["33"].use_scope) == ("prior_year", 1, "national")
    # 山西: 参加山西省职工或居民医保 (domain R2, grade B): the beneficiary is insured in the province
    assert (p["14"].reserve_fen, p["14"].beneficiary_area, p["14"].review) == (100000, "province", "manual")
    assert (p["37"].max_beneficiaries, p["37"].max_authorizers) == (8, 1)


# --- R1 authorizer ------------------------------------------------------------------------------------------

R1_CASES = [
    # (region, facts overrides, expected code)
    *[(r, dict(insurance_type="resident", has_account=False, balance_fen=0, prior_year_fen=0),
       "AUTHORIZER_NOT_EMPLOYEE") for r in ALL_REGIONS],
    *[(r, dict(status="suspended"), "AUTHORIZER_NOT_NORMAL") for r in ALL_REGIONS],
    *[(r, dict(status="terminated"), "AUTHORIZER_NOT_NORMAL") for r in ALL_REGIONS],
    *[(r, dict(has_account=False), "AUTHORIZER_NO_ACCOUNT") for r in ALL_REGIONS],
    *[(r, dict(balance_fen=0, prior_year_fen=0), "AUTHORIZER_BALANCE_ZERO") for r in ALL_REGIONS],
    # 历年账户 only: a balance that is all current-year money is nothing to share
    ("33", dict(balance_fen=500000, prior_year_fen=0), "AUTHORIZER_BALANCE_ZERO"),
    ("31", dict(balance_fen=500000, prior_year_fen=0), "AUTHORIZER_BALANCE_ZERO"),
    ("33", dict(balance_fen=500000, prior_year_fen=1), None),
    ("31", dict(balance_fen=500000, prior_year_fen=1), None),
    # whole balance: the same account is fine where all of it is shareable
    ("44", dict(balance_fen=500000, prior_year_fen=0), None),
    ("37", dict(balance_fen=500000, prior_year_fen=0), None),
    ("44", dict(balance_fen=1, prior_year_fen=0), None),
    # 山西 keeps 1,000 元 in the account
    ("14", dict(balance_fen=100000, prior_year_fen=100000), "AUTHORIZER_BALANCE_ZERO"),
    ("14", dict(balance_fen=99999, prior_year_fen=99999), "AUTHORIZER_BALANCE_ZERO"),
    ("14", dict(balance_fen=100001, prior_year_fen=0), None),
    *[(r, dict(), None) for r in ALL_REGIONS],
]


@pytest.mark.parametrize("region,overrides,expected", R1_CASES)
def test_r1_authorizer(region, overrides, expected):
    assert authorizer_refusal(POLICIES[region], facts(HOME[region], **overrides)) == expected


@pytest.mark.parametrize("region,balance,prior,expected", [
    ("44", 500000, 0, 500000),
    ("37", 500000, 120000, 500000),
    ("31", 500000, 120000, 120000),
    ("33", 500000, 120000, 120000),
    ("33", 500000, 0, 0),
    ("14", 500000, 0, 400000),
    ("14", 100000, 100000, 0),
    ("14", 50000, 50000, 0),
    ("44", 0, 0, 0),
])
def test_r1_shareable_balance(region, balance, prior, expected):
    person = facts(HOME[region], balance_fen=balance, prior_year_fen=prior)
    assert shareable_balance(POLICIES[region], person) == expected


# --- R2 beneficiary -----------------------------------------------------------------------------------------

R2_CASES = [
    # (region, authorizer region, beneficiary region or None, beneficiary overrides, expected)
    *[(r, HOME[r], None, None, "BENEFICIARY_NOT_INSURED") for r in ALL_REGIONS],
    *[(r, HOME[r], HOME[r], dict(insurance_type="none"), "BENEFICIARY_NOT_INSURED") for r in ALL_REGIONS],
    *[(r, HOME[r], "self", None, "SELF_BINDING") for r in ALL_REGIONS],
    *[(r, HOME[r], HOME[r], dict(status="suspended"), "BENEFICIARY_NOT_NORMAL") for r in ALL_REGIONS],
    *[(r, HOME[r], HOME[r], dict(status="terminated"), "BENEFICIARY_NOT_NORMAL") for r in ALL_REGIONS],
    *[(r, HOME[r], HOME[r], dict(insurance_type="resident", has_account=False), None) for r in ALL_REGIONS],
    *[(r, HOME[r], HOME[r], dict(), None) for r in ALL_REGIONS],
    # 上海: the same 统筹区 (the city, 3101)
    ("31", "310101", "310115", dict(), None),
    ("31", "310101", "320102", dict(), "BENEFICIARY_OUT_OF_AREA"),
    ("31", "310101", "440104", dict(), "BENEFICIARY_OUT_OF_AREA"),
    # 广东 / 浙江 / 山东: the same province
    ("44", "440104", "440305", dict(), None),
    ("44", "440104", "450102", dict(), "BENEFICIARY_OUT_OF_AREA"),
    ("44", "440104", "310101", dict(), "BENEFICIARY_OUT_OF_AREA"),
    ("33", "330102", "330203", dict(), None),
    ("33", "330102", "310101", dict(), "BENEFICIARY_OUT_OF_AREA"),
    ("37", "370902", "370102", dict(), None),
    ("37", "370902", "140105", dict(), "BENEFICIARY_OUT_OF_AREA"),
    # 山西: 参加山西省职工或居民医保 (domain R2, B; the demo once admitted the whole country)
    ("14", "140105", "140702", dict(), None),
    ("14", "140105", "440104", dict(), "BENEFICIARY_OUT_OF_AREA"),
    ("14", "140105", "650102", dict(insurance_type="resident", has_account=False), "BENEFICIARY_OUT_OF_AREA"),
]


@pytest.mark.parametrize("region,auth_region,ben_region,overrides,expected", R2_CASES)
def test_r2_beneficiary(region, auth_region, ben_region, overrides, expected):
    authorizer = facts(auth_region)
    if ben_region is None:
        beneficiary = None
    elif ben_region == "self":
        beneficiary = authorizer
    else:
        beneficiary = facts(ben_region, birth=dt.date(1995, 5, 5), **overrides)
    assert beneficiary_refusal(POLICIES[region], authorizer, beneficiary) == expected


# --- R3 relation and caps, R5 authorizers per beneficiary ---------------------------------------------------

ADMITTED = {
    "44": set(ALL_RELATIONS), "33": set(ALL_RELATIONS), "14": set(ALL_RELATIONS), "37": set(ALL_RELATIONS),
    "31": set(ALL_RELATIONS),  # 近亲属 by 2025-07 (SH2, A)
}
# The 2021 set (配偶/父母/子女) that no province keeps since 2024-12 (N4, A): RELATION_NOT_ALLOWED is exercised on it.
BEFORE_2024 = dataclasses.replace(POLICIES["31"], relations=frozenset({"spouse", "parent", "child"}))


@pytest.mark.parametrize("region,relation,expected", [
    (region, relation, None if relation in ADMITTED[region] else "RELATION_NOT_ALLOWED")
    for region in ALL_REGIONS for relation in ALL_RELATIONS
] + [
    (region, relation, "RELATION_UNKNOWN")
    for region in ALL_REGIONS for relation in ("parent_in_law", "father_in_law", "岳父母", "friend", "")
])
def test_r3_relation_per_region(region, relation, expected):
    assert relation_refusal(POLICIES[region], relation, facts(HOME[region]), resident(HOME[region]), [], []) == expected


def test_r3_sibling_refused_under_the_2021_set_and_admitted_in_guangdong():
    assert relation_refusal(BEFORE_2024, "sibling", facts("310101"), resident("310101"), [], []) == \
        "RELATION_NOT_ALLOWED"
    assert relation_refusal(POLICIES["44"], "sibling", facts("440104"), resident("440104"), [], []) is None


def _father() -> PersonFacts:
    return resident("440104", male=True, birth=dt.date(1945, 2, 2))


def _mother() -> PersonFacts:
    return resident("440104", male=False, birth=dt.date(1947, 3, 3))


CAP_CASES = [
    # (region, relation, the new beneficiary, authorizer links, beneficiary links, expected)
    *[(r, "spouse", "new", [("spouse", "other")], [], "SPOUSE_LIMIT") for r in ALL_REGIONS],
    *[(r, "spouse", "new", [("child", "other")], [], None) for r in ALL_REGIONS],
    *[(r, "parent", "father", [("parent", "father2")], [], "PARENT_LIMIT") for r in ALL_REGIONS],
    *[(r, "parent", "mother", [("parent", "father2")], [], None) for r in ALL_REGIONS],
    *[(r, "parent", "mother", [("parent", "mother2")], [], "PARENT_LIMIT") for r in ALL_REGIONS],
    *[(r, "parent", "father", [("parent", "mother2")], [], None) for r in ALL_REGIONS],
    # a binding or pending application to the same person, under any relation
    *[(r, "child", "new", [("child", "new")], [], "DUPLICATE_BINDING") for r in ALL_REGIONS],
    *[(r, "spouse", "new", [("spouse", "new")], [], "DUPLICATE_BINDING") for r in ALL_REGIONS],
    # 泰安: at most 8 beneficiaries per authorizer
    ("37", "child", "new", [("child", "other")] * 7, [], None),
    ("37", "child", "new", [("child", "other")] * 8, [], "BENEFICIARY_LIMIT"),
    ("44", "child", "new", [("child", "other")] * 20, [], None),
    ("33", "child", "new", [("child", "other")] * 20, [], None),
    # one authorizer per beneficiary in 浙江 and 泰安, several elsewhere
    ("33", "child", "new", [], [("grandparent", "other", "beneficiary")], "AUTHORIZER_LIMIT"),
    ("37", "child", "new", [], [("grandparent", "other", "beneficiary")], "AUTHORIZER_LIMIT"),
    ("44", "child", "new", [], [("grandparent", "other", "beneficiary")] * 3, None),
    ("14", "child", "new", [], [("grandparent", "other", "beneficiary")] * 3, None),
    ("31", "child", "new", [], [("grandparent", "other", "beneficiary")] * 3, None),
    ("33", "child", "new", [], [], None),
    # what the beneficiary authorizes himself does not count against authorizers per beneficiary
    ("33", "child", "new", [], [("child", "other", "authorizer")], None),
    # --- both people, both directions (links are seen from their owner's side: what the other is to him) ---
    # the authorizer's spouse authorized him: he cannot name a second spouse
    *[(r, "spouse", "new", [("spouse", "other", "beneficiary")], [], "SPOUSE_LIMIT") for r in ALL_REGIONS],
    # B already has a spouse (C authorized B, or B authorized C): B cannot become A's spouse as well
    *[(r, "spouse", "new", [], [("spouse", "other", "beneficiary")], "SPOUSE_LIMIT") for r in ALL_REGIONS],
    *[(r, "spouse", "new", [], [("spouse", "other", "authorizer")], "SPOUSE_LIMIT") for r in ALL_REGIONS],
    # the same couple the other way round is the same spouse, not a second one
    *[(r, "spouse", "new", [("spouse", "new", "beneficiary")], [("spouse", "auth", "authorizer")], None)
      for r in ALL_REGIONS],
    # A's father authorized A (A sees a parent as beneficiary): a second father is refused, a mother is not
    *[(r, "parent", "father", [("parent", "father2", "beneficiary")], [], "PARENT_LIMIT") for r in ALL_REGIONS],
    *[(r, "parent", "mother", [("parent", "father2", "beneficiary")], [], None) for r in ALL_REGIONS],
    # A (a man) names B his child, but B already has a father: A would be B's second father
    *[(r, "child", "new", [], [("parent", "father2", "beneficiary")], "PARENT_LIMIT") for r in ALL_REGIONS],
    *[(r, "child", "new", [], [("parent", "father2", "authorizer")], "PARENT_LIMIT") for r in ALL_REGIONS],
    *[(r, "child", "new", [], [("parent", "mother2", "authorizer")], None) for r in ALL_REGIONS],
    # A is already B's father the other way round: not a second father
    *[(r, "child", "new", [("parent", "new", "beneficiary")], [("child", "auth", "authorizer")], None)
      for r in ALL_REGIONS],
]


@pytest.mark.parametrize("region,relation,who,auth_links,ben_links,expected", CAP_CASES)
def test_r3_caps_and_duplicates(region, relation, who, auth_links, ben_links, expected):
    people = {"new": resident("440104", birth=dt.date(2000, 6, 6)), "father": _father(), "mother": _mother(),
              "father2": resident("440104", male=True, birth=dt.date(1940, 1, 1)),
              "mother2": resident("440104", male=False, birth=dt.date(1941, 1, 1)),
              "auth": facts("440104", male=True, birth=dt.date(1970, 5, 5))}
    # every "other" is a different person
    others = iter(resident("440104", birth=dt.date(1980, 1, 1) + dt.timedelta(days=i)) for i in range(100))
    pick = lambda name: next(others) if name == "other" else people[name]  # noqa: E731
    a_links = [ExistingLink(rel, pick(name), *role) for rel, name, *role in auth_links]
    b_links = [ExistingLink(rel, pick(name), *role) for rel, name, *role in ben_links]
    assert relation_refusal(POLICIES[region], relation, people["auth"], people[who], a_links, b_links) == expected


def test_r3_sex_comes_from_the_17th_digit():
    father, mother = _father(), _mother()
    assert int(father.id_number[16]) % 2 == 1 and father.male
    assert int(mother.id_number[16]) % 2 == 0 and not mother.male


def test_application_refusal_order():
    p = BEFORE_2024  # 上海's rules with the 2021 relation set, so that a relation can still be refused
    bad_authorizer = facts("310101", status="suspended")
    good_authorizer = facts("310101")
    out_of_area = facts("440104", birth=dt.date(1999, 9, 9))
    near = facts("310115", birth=dt.date(1999, 9, 9))
    # every rule fails: the authorizer is told first, then the beneficiary, then the relation
    assert application_refusal(p, bad_authorizer, out_of_area, "sibling", [], []) == "AUTHORIZER_NOT_NORMAL"
    assert application_refusal(p, bad_authorizer, None, "in_law", [], []) == "AUTHORIZER_NOT_NORMAL"
    assert application_refusal(p, good_authorizer, out_of_area, "sibling", [], []) == "BENEFICIARY_OUT_OF_AREA"
    assert application_refusal(p, good_authorizer, None, "in_law", [], []) == "BENEFICIARY_NOT_INSURED"
    assert application_refusal(p, good_authorizer, near, "sibling", [], []) == "RELATION_NOT_ALLOWED"
    assert application_refusal(p, good_authorizer, near, "in_law", [], []) == "RELATION_UNKNOWN"
    assert application_refusal(p, good_authorizer, near, "child", [ExistingLink("child", near)], []) == \
        "DUPLICATE_BINDING"
    assert application_refusal(p, good_authorizer, near, "child", [], []) is None


# --- R4 proof and R11 review --------------------------------------------------------------------------------

A, B, C = "A", "B", "C"


@pytest.mark.parametrize("relation,records,a,b,expected", [
    ("spouse", [(A, B, "spouse")], A, B, True),
    ("spouse", [(A, B, "spouse")], B, A, True),
    ("sibling", [(A, B, "sibling")], B, A, True),
    # the record says B is A's child: so A is B's parent
    ("child", [(A, B, "child")], A, B, True),
    ("parent", [(A, B, "child")], B, A, True),
    ("parent", [(A, B, "child")], A, B, False),
    ("child", [(A, B, "child")], B, A, False),
    ("grandchild", [(A, B, "grandparent")], B, A, True),
    ("grandparent", [(A, B, "grandchild")], B, A, True),
    ("maternal_grandchild", [(A, B, "maternal_grandparent")], B, A, True),
    ("maternal_grandparent", [(A, B, "maternal_grandchild")], B, A, True),
    # 外祖父母 are not 祖父母
    ("grandchild", [(A, B, "maternal_grandparent")], B, A, False),
    ("grandparent", [(A, B, "maternal_grandparent")], A, B, False),
    ("spouse", [(A, C, "spouse")], A, B, False),
    ("spouse", [], A, B, False),
    ("parent", [(A, B, "sibling"), (B, A, "child")], A, B, True),
    # a relation the engine does not know is never confirmed (and does not crash)
    ("parent_in_law", [(A, B, "parent")], A, B, False),
    ("", [(A, B, "spouse")], A, B, False),
])
def test_r4_kinship_matches(relation, records, a, b, expected):
    assert kinship_matches(relation, records, a, b) is expected


def test_r4_inverse_is_an_involution_over_all_relations():
    assert set(INVERSE) == set(RELATIONS)
    for relation, inverse in INVERSE.items():
        assert INVERSE[inverse] == relation
        assert kinship_matches(inverse, [(A, B, relation)], B, A)


REVIEW_CASES = [
    # (region, registry confirmed, materials, expected status, expected code)
    ("44", True, set(), "approved", None),
    ("31", True, set(), "approved", None),
    ("33", True, set(), "approved", None),
    ("37", True, {"id_card", "insurance_card"}, "approved", None),
    ("14", True, set(), "manual_review", "MANUAL_REVIEW_REQUIRED"),
    ("14", True, {"household_register"}, "manual_review", "MANUAL_REVIEW_REQUIRED"),
    *[(r, False, {"household_register"}, "manual_review", "PROOF_UNDER_REVIEW") for r in ALL_REGIONS],
    *[(r, False, {"marriage_certificate", "id_card"}, "manual_review", "PROOF_UNDER_REVIEW")
      for r in ALL_REGIONS],
    *[(r, False, {"birth_certificate"}, "manual_review", "PROOF_UNDER_REVIEW") for r in ALL_REGIONS],
    # 承诺制 only where the policy accepts a commitment letter
    ("44", False, {"commitment_letter"}, "manual_review", "PROOF_UNDER_REVIEW"),
    ("33", False, {"commitment_letter"}, "manual_review", "PROOF_UNDER_REVIEW"),
    # 山东: 承诺制 without approval (SD1, B): the signed letter is enough
    ("37", False, {"commitment_letter"}, "approved", None),
    # 上海's 组建家庭共济网承诺书 and 山西's hand-signed 承诺书 (domain §3.2, §3.4, B): a reviewer reads them
    ("31", False, {"commitment_letter"}, "manual_review", "PROOF_UNDER_REVIEW"),
    ("14", False, {"commitment_letter"}, "manual_review", "PROOF_UNDER_REVIEW"),
    # identity documents alone prove no relation
    *[(r, False, {"id_card", "insurance_card"}, "rejected", "KINSHIP_NOT_CONFIRMED") for r in ALL_REGIONS],
    *[(r, False, set(), "rejected", "KINSHIP_NOT_CONFIRMED") for r in ALL_REGIONS],
]


@pytest.mark.parametrize("region,confirmed,materials,status,code", REVIEW_CASES)
def test_r4_review_outcome(region, confirmed, materials, status, code):
    outcome = review_outcome(POLICIES[region], confirmed, materials)
    assert (outcome.status, outcome.code) == (status, code)


def test_r11_review_deadline_follows_the_policy():
    start = dt.datetime(2026, 1, 1, 9, 0)
    assert engine.review_deadline(POLICIES["31"], start) == dt.datetime(2026, 1, 11, 9, 0)
    assert engine.review_deadline(POLICIES["14"], start) == dt.datetime(2026, 1, 8, 9, 0)


# --- R7 scope -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("area,a,b,expected", [
    ("pooling", "310101", "310115", True),
    ("pooling", "310101", "320102", False),
    ("pooling", "440104", "440305", False),
    ("province", "440104", "440305", True),
    ("province", "440104", "450102", False),
    ("national", "330102", "440104", True),
    ("national", "140105", "650102", True),
])
def test_r7_same_area(area, a, b, expected):
    assert same_area(area, a, b) is expected


@pytest.mark.parametrize("province,auth_region,inst_region,balance,prior,kw,expected", [
    # 上海 account: only its own city, only the 历年 part
    ("31", "310101", "310115", 500000, 120000, {}, 120000),
    ("31", "310101", "440104", 500000, 120000, {}, 0),
    # 浙江 switched 跨省 use on
    ("33", "330102", "440104", 500000, 120000, {}, 120000),
    ("33", "330102", "330203", 500000, 120000, {}, 120000),
    # 广东 / 山东 / 山西: within the province
    ("44", "440104", "440305", 500000, 0, {}, 500000),
    ("44", "440104", "310101", 500000, 0, {}, 0),
    ("37", "370902", "370102", 500000, 0, {}, 500000),
    ("14", "140105", "140202", 500000, 0, {}, 400000),
    ("14", "140105", "440104", 500000, 0, {}, 0),
    # the authorizer's validity window (授权起止日期)
    ("44", "440104", "440104", 500000, 0, {"valid_until": TODAY - dt.timedelta(days=1)}, 0),
    ("44", "440104", "440104", 500000, 0, {"valid_until": TODAY}, 500000),
    # monthly and per-payment limits
    ("44", "440104", "440104", 500000, 0, {"monthly_limit_fen": 100000, "used_this_month_fen": 30000}, 70000),
    ("44", "440104", "440104", 500000, 0, {"monthly_limit_fen": 100000, "used_this_month_fen": 120000}, 0),
    ("44", "440104", "440104", 500000, 0, {"per_payment_limit_fen": 20000}, 20000),
    ("44", "440104", "440104", 10000, 0, {"per_payment_limit_fen": 20000}, 10000),
    ("14", "140105", "140105", 150000, 0, {"monthly_limit_fen": 80000}, 50000),
])
def test_r7_family_source_available(province, auth_region, inst_region, balance, prior, kw, expected):
    src = source("b1", province, region=auth_region, balance_fen=balance, prior_year_fen=prior, **kw)
    assert family_source_available(src, inst_region, TODAY) == expected


# --- R8 and R9 settlement -----------------------------------------------------------------------------------

@pytest.mark.parametrize("items,expected", [
    ([], 0),
    ([{"category": "drug", "amount_fen": 1234}], 1234),
    ([{"category": "drug", "amount_fen": 1000}, {"category": "treatment", "amount_fen": 2000},
      {"category": "material", "amount_fen": 300}], 3300),
    ([{"category": "drug", "amount_fen": 1000}, {"category": "non_medical", "amount_fen": 9999}], 1000),
    ([{"category": "non_medical", "amount_fen": 9999}], 0),
    ([{"category": "cosmetics", "amount_fen": 500}, {"category": "material", "amount_fen": 1}], 1),
])
def test_r8_eligible_fen(items, expected):
    assert eligible_fen(items) == expected


@pytest.mark.parametrize("patient_kw,own_credential,designated,expected", [
    ({}, True, True, None),
    ({}, True, False, "NOT_DESIGNATED"),
    ({}, False, False, "NOT_DESIGNATED"),
    ({}, False, True, "IMPERSONATION"),
    ({"settlement_suspended": True}, False, True, "IMPERSONATION"),
    ({"settlement_suspended": True}, True, True, "SETTLEMENT_SUSPENDED"),
    ({"status": "suspended"}, True, True, "PATIENT_NOT_NORMAL"),
    ({"status": "terminated"}, True, True, "PATIENT_NOT_NORMAL"),
    ({"insurance_type": "resident", "has_account": False}, True, True, None),
])
def test_r8_r9_settlement_refusal(patient_kw, own_credential, designated, expected):
    assert settlement_refusal(facts("440104", **patient_kw), own_credential, designated) == expected


# --- R10 payment order --------------------------------------------------------------------------------------

def _srcs(*specs) -> list[FamilySource]:
    return [source(*spec[:2], **spec[2]) if len(spec) == 3 else source(*spec) for spec in specs]


PLAN_CASES = [
    # (name, burden, eligible, own, sources, patient region, institution, expected own, family, cash)
    ("own account covers all", 10000, 10000, 50000, _srcs(("b1", "44")), "44", "440104", 10000, [], 0),
    ("own first then family", 30000, 30000, 10000, _srcs(("b1", "44")), "44", "440104",
     10000, [("b1", 20000)], 0),
    ("no own account", 30000, 30000, 0, _srcs(("b1", "44")), "44", "440104", 0, [("b1", 30000)], 0),
    ("nothing but cash", 30000, 30000, 0, [], "44", "440104", 0, [], 30000),
    ("oldest binding first", 30000, 30000, 0,
     _srcs(("new", "44", {"created_days": 5}), ("old", "44", {"created_days": 1})), "44", "440104",
     0, [("old", 30000)], 0),
    ("chosen order beats age", 30000, 30000, 0,
     _srcs(("old", "44", {"created_days": 1}), ("new", "44", {"created_days": 5, "priority": 1})),
     "44", "440104", 0, [("new", 30000)], 0),
    ("lower priority number first", 30000, 30000, 0,
     _srcs(("p2", "44", {"priority": 2}), ("p1", "44", {"priority": 1, "created_days": 9})),
     "44", "440104", 0, [("p1", 30000)], 0),
    ("equal priority: oldest first", 30000, 30000, 0,
     _srcs(("x", "44", {"priority": 1, "created_days": 3}), ("y", "44", {"priority": 1, "created_days": 2})),
     "44", "440104", 0, [("y", 30000)], 0),
    ("monthly limit spills to the next", 30000, 30000, 0,
     _srcs(("b1", "44", {"monthly_limit_fen": 15000, "used_this_month_fen": 5000}),
           ("b2", "44", {"created_days": 1})), "44", "440104", 0, [("b1", 10000), ("b2", 20000)], 0),
    ("per-payment limit spills to the next", 30000, 30000, 0,
     _srcs(("b1", "44", {"per_payment_limit_fen": 12000}), ("b2", "44", {"created_days": 1})),
     "44", "440104", 0, [("b1", 12000), ("b2", 18000)], 0),
    ("limits leave the rest to cash", 30000, 30000, 5000,
     _srcs(("b1", "44", {"per_payment_limit_fen": 12000})), "44", "440104", 5000, [("b1", 12000)], 13000),
    ("山西 reserve stays", 30000, 30000, 0, _srcs(("b1", "14", {"balance_fen": 105000})), "14", "140105",
     0, [("b1", 5000)], 25000),
    ("山西 at the reserve gives nothing", 30000, 30000, 0, _srcs(("b1", "14", {"balance_fen": 100000})),
     "14", "140105", 0, [], 30000),
    ("上海: one authorizer per settlement", 30000, 30000, 0,
     _srcs(("b1", "31", {"balance_fen": 500000, "prior_year_fen": 10000}), ("b2", "31", {"created_days": 1})),
     "31", "310101", 0, [("b1", 10000)], 20000),
    ("浙江: one authorizer per settlement", 30000, 30000, 0,
     _srcs(("b1", "33", {"per_payment_limit_fen": 10000}), ("b2", "33", {"created_days": 1})),
     "33", "330102", 0, [("b1", 10000)], 20000),
    ("one authorizer: an unusable first source is passed over", 30000, 30000, 0,
     _srcs(("b1", "31", {"valid_until": TODAY - dt.timedelta(days=1)}), ("b2", "31", {"created_days": 1})),
     "31", "310101", 0, [("b2", 30000)], 0),
    ("山东 may draw on several", 30000, 30000, 0,
     _srcs(("b1", "37", {"per_payment_limit_fen": 10000}), ("b2", "37", {"created_days": 1})),
     "37", "370902", 0, [("b1", 10000), ("b2", 20000)], 0),
    ("non-medical part is cash", 10000, 6000, 0, _srcs(("b1", "44")), "44", "440104", 0, [("b1", 6000)], 4000),
    ("non-medical part is cash even with own money", 10000, 6000, 50000, _srcs(("b1", "44")), "44", "440104",
     6000, [], 4000),
    ("out of scope source skipped", 30000, 30000, 0,
     _srcs(("far", "31"), ("near", "44", {"created_days": 1})), "44", "440104", 0, [("near", 30000)], 0),
    ("expired source skipped", 30000, 30000, 0,
     _srcs(("old", "44", {"valid_until": TODAY - dt.timedelta(days=1)}), ("b2", "44", {"created_days": 1})),
     "44", "440104", 0, [("b2", 30000)], 0),
    ("zero burden", 0, 0, 50000, _srcs(("b1", "44")), "44", "440104", 0, [], 0),
]


@pytest.mark.parametrize("name,burden,eligible,own,sources,patient_region,inst,exp_own,exp_family,exp_cash",
                         PLAN_CASES, ids=[case[0] for case in PLAN_CASES])
def test_r10_plan_payment(name, burden, eligible, own, sources, patient_region, inst, exp_own, exp_family,
                          exp_cash):
    plan = plan_payment(burden, eligible, own, sources, inst, TODAY, POLICIES[patient_region])
    assert (plan.own_account_fen, plan.family, plan.cash_fen) == (exp_own, exp_family, exp_cash)
    assert plan.own_account_fen + sum(a for _, a in plan.family) + plan.cash_fen == burden


def test_r10_without_a_patient_policy_several_authorizers_may_pay():
    sources = _srcs(("b1", "44", {"per_payment_limit_fen": 100}), ("b2", "44", {"created_days": 1}))
    plan = plan_payment(1000, 1000, 0, sources, "440104", TODAY)
    assert plan.family == [("b1", 100), ("b2", 900)]


def test_r10_order_family_sources():
    sources = _srcs(("c", "44", {"created_days": 3}), ("a", "44", {"priority": 2}),
                    ("b", "44", {"priority": 0, "created_days": 8}), ("d", "44", {"created_days": 1}))
    assert [s.binding_id for s in order_family_sources(sources)] == ["b", "a", "d", "c"]


def test_r10_amounts_always_add_up_to_the_personal_burden():
    """Over a grid of bills, balances, limits and policies: own + family + cash == burden, nothing negative,
    no source pays more than it may, and a one-authorizer policy never uses two."""
    source_sets = [
        [],
        _srcs(("b1", "44", {"monthly_limit_fen": 7000, "used_this_month_fen": 2000}),
              ("b2", "44", {"balance_fen": 300})),
        _srcs(("b1", "14", {"balance_fen": 120000}), ("b2", "14", {"per_payment_limit_fen": 999, "created_days": 1})),
        _srcs(("b1", "31", {"prior_year_fen": 4000}), ("b2", "31", {"prior_year_fen": 0}),
              ("b3", "31", {"created_days": 2})),
        _srcs(("b1", "33", {"per_payment_limit_fen": 1}), ("b2", "33", {"valid_until": TODAY}),
              ("b3", "44", {"priority": 1})),
    ]
    checked = 0
    for burden, eligible, own, sources, (patient, inst) in itertools.product(
            (0, 1, 999, 5000, 123457), (0, 1, 5000, 10**6), (0, 1, 3000, 10**6), source_sets,
            (("44", "440104"), ("31", "310101"), ("33", "330102"), ("14", "140105"), ("37", "440104"))):
        policy = POLICIES[patient]
        plan = plan_payment(burden, eligible, own, sources, inst, TODAY, policy)
        paid = sum(a for _, a in plan.family)
        assert plan.own_account_fen + paid + plan.cash_fen == burden
        assert plan.own_account_fen >= 0 and plan.cash_fen >= 0 and all(a > 0 for _, a in plan.family)
        assert plan.own_account_fen <= own and plan.own_account_fen + paid <= min(burden, eligible)
        by_id = {s.binding_id: s for s in sources}
        assert len(plan.family) == len({b for b, _ in plan.family})
        for binding_id, amount in plan.family:
            assert amount <= family_source_available(by_id[binding_id], inst, TODAY)
        if not policy.multi_authorizer_settlement:
            assert len(plan.family) <= 1
        checked += 1
    assert checked == 5 * 4 * 4 * 5 * 5


def test_r10_a_negative_burden_is_refused():
    with pytest.raises(ValueError):
        plan_payment(-1, 0, 0, [], "440104", TODAY, POLICIES["44"])


def test_r10_a_negative_eligible_amount_pays_nothing_from_accounts():
    plan = plan_payment(1000, -500, 5000, _srcs(("b1", "44")), "440104", TODAY, POLICIES["44"])
    assert (plan.own_account_fen, plan.family, plan.cash_fen) == (0, [], 1000)


# --- codes and messages -------------------------------------------------------------------------------------

def _codes_in_engine() -> set[str]:
    """Every stable-code string literal in api/policy.py."""
    tree = ast.parse(Path(engine.__file__).read_text(encoding="utf-8"))
    return {node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and re.fullmatch(r"[A-Z][A-Z0-9_]{4,}", node.value)}


def test_every_code_the_engine_returns_has_a_chinese_message():
    codes = _codes_in_engine()
    # the scan itself must see the codes the tables above expect
    expected = {code for *_, code in R1_CASES + R2_CASES + CAP_CASES if code} | {
        "RELATION_NOT_ALLOWED", "RELATION_UNKNOWN", "KINSHIP_NOT_CONFIRMED", "NOT_DESIGNATED", "IMPERSONATION",
        "SETTLEMENT_SUSPENDED", "PATIENT_NOT_NORMAL"}
    assert expected <= codes
    for code in sorted(codes):
        assert code in MESSAGES, f"{code} has no message in api.messages"
        assert re.search(r"[\u4e00-\u9fff]", MESSAGES[code]), f"{code} message is not Chinese"


# --- policy data --------------------------------------------------------------------------------------------

def _demo_data(code: str = "44") -> dict:
    return tomllib.loads((POLICY_DIR / f"{code}.toml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("code", ALL_REGIONS)
def test_demo_policy_round_trips_through_from_dict(code):
    policy = Policy.from_dict(_demo_data(code))
    assert policy == POLICIES[code]
    public = policy.to_public()
    assert public["province_code"] == code and public["use_scope_label"]


@pytest.mark.parametrize("change", [
    {"relations": ["spouse", "parent_in_law"]},
    {"relations": []},
    {"relations": "spouse"},
    {"relations": None},
    {"shareable": "current_year"},
    {"shareable": None},
    {"reserve_fen": -1},
    {"reserve_fen": "lots"},
    {"reserve_fen": 100.5},
    {"reserve_fen": True},
    {"beneficiary_area": "city"},
    {"use_scope": "world"},
    {"proof": ["fax"]},
    {"proof": []},
    {"review": "sometimes"},
    {"required_materials": ["selfie"]},
    {"manual_review_days": 0},
    {"manual_review_days": "five"},
    {"province_code": "4"},
    {"province_code": "gd"},
    {"name": None},
    {"max_spouses": "one"},
    {"max_spouses": 0},
    {"max_beneficiaries": -1},
    {"max_beneficiaries": 2.5},
    {"max_authorizers": 0},
    {"multi_authorizer_settlement": "false"},
    {"one_father_one_mother": "yes"},
])
def test_policy_from_dict_refuses_bad_data(change):
    data = _demo_data()
    data.update(change)
    with pytest.raises(PolicyError):
        Policy.from_dict(data)


@pytest.mark.parametrize("missing", ["province_code", "name", "relations"])
def test_policy_from_dict_refuses_missing_fields(missing):
    data = _demo_data()
    del data[missing]
    with pytest.raises(PolicyError):
        Policy.from_dict(data)


@pytest.mark.parametrize("data", [None, [], "44", 44])
def test_policy_from_dict_refuses_what_is_not_a_table(data):
    with pytest.raises(PolicyError):
        Policy.from_dict(data)


def test_policy_file_must_match_its_name(tmp_path):
    path = tmp_path / "45.toml"
    path.write_text((POLICY_DIR / "44.toml").read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(PolicyError):
        load_policy_file(path)


def test_policy_defaults_when_optional_fields_are_absent():
    policy = Policy.from_dict({"province_code": "44", "name": "广东省", "relations": ["spouse"]})
    assert (policy.shareable, policy.reserve_fen, policy.max_beneficiaries, policy.multi_authorizer_settlement) == \
        ("all", 0, None, True)


def test_the_beneficiarys_region_may_cap_authorizers_more_strictly():
    """A 14 authorizer (no cap) cannot become the second authorizer of a 33 beneficiary (浙江: one)."""
    from api.policy import ExistingLink, PersonFacts, load_policy_file, relation_refusal
    from tests.factories import POLICY_DIR, id_number
    sx, zj = load_policy_file(POLICY_DIR / "14.toml"), load_policy_file(POLICY_DIR / "33.toml")
    child = PersonFacts(id_number("330106"), "resident", "normal", "330106")
    mother = PersonFacts(id_number("330106", male=False), "employee", "normal", "330106", 1, 1, True)
    father = PersonFacts(id_number("140105", male=True), "employee", "normal", "140105", 1, 1, True)
    first = ExistingLink("parent", mother, "beneficiary")
    assert relation_refusal(sx, "child", father, child, [], [first]) is None
    assert relation_refusal(sx, "child", father, child, [], [first], beneficiary_policy=zj) == "AUTHORIZER_LIMIT"
    assert relation_refusal(sx, "child", father, child, [], [], beneficiary_policy=zj) is None


def test_the_manual_review_deadline_is_the_policys_days_or_the_default():
    entered = dt.datetime(2026, 11, 25, 8, 0, tzinfo=dt.timezone.utc)
    shanxi = Policy.from_dict(_demo_data("14"))
    assert engine.review_deadline(shanxi, entered) == entered + dt.timedelta(days=shanxi.manual_review_days)
    assert engine.review_deadline(None, entered) == entered + dt.timedelta(days=engine.DEFAULT_MANUAL_REVIEW_DAYS)
    assert engine.DEFAULT_MANUAL_REVIEW_DAYS == 5
