"""Every province as data: one policy file for each of the 31 provinces and 兵团, each loading, each field
commented with its source, and each sourced rule (provinces.md, domain.md) holding; the strict file format."""
import dataclasses
import datetime as dt
import re

import pytest

from api import policy as engine
from api.policy import RELATIONS, Policy, PolicyError, load_policy_file
from tests.factories import POLICY_DIR

PROVINCES = {
    "11": "北京市", "12": "天津市", "13": "河北省", "14": "山西省", "15": "内蒙古自治区", "21": "辽宁省", "22": "吉林省",
    "23": "黑龙江省", "31": "上海市", "32": "江苏省", "33": "浙江省", "34": "安徽省", "35": "福建省", "36": "江西省",
    "37": "山东省", "41": "河南省", "42": "湖北省", "43": "湖南省", "44": "广东省", "45": "广西壮族自治区", "46": "海南省",
    "50": "重庆市", "51": "四川省", "52": "贵州省", "53": "云南省", "54": "西藏自治区", "61": "陕西省", "62": "甘肃省",
    "63": "青海省", "64": "宁夏回族自治区", "65": "新疆维吾尔自治区", "66": "新疆生产建设兵团",
}
POLICIES = {code: load_policy_file(POLICY_DIR / f"{code}.toml") for code in PROVINCES}


def test_a_file_for_each_province_and_no_other():
    assert sorted(p.stem for p in POLICY_DIR.glob("*.toml")) == sorted(PROVINCES)


@pytest.mark.parametrize("code", PROVINCES)
def test_the_file_loads_under_its_name(code):
    p = POLICIES[code]
    assert (p.province_code, p.name) == (code, PROVINCES[code])
    assert p.to_public()["province_code"] == code


@pytest.mark.parametrize("code", PROVINCES)
def test_every_field_of_the_file_says_its_source(code):
    """A field line carries a comment naming a grade or saying the source is missing (or uses the national rule)."""
    for line in (POLICY_DIR / f"{code}.toml").read_text(encoding="utf-8").splitlines():
        key = line.split("=", 1)[0].strip()
        if line.startswith("#") or not line.strip() or key in ("province_code", "name"):
            continue
        assert "#" in line, f"{code}.toml: {key} has no source comment"
        comment = line.split("#", 1)[1]
        assert re.search(r"\[[^\]]*(\b[ABC]\b|source missing|UNCERTAIN|inferred)", comment) or "national" in comment \
            or "service default" in comment or "demo" in comment, f"{code}.toml: {key}: {comment}"


# --- the sourced rules, province by province ---------------------------------------------------------------------

@pytest.mark.parametrize("code", PROVINCES)
def test_near_relatives_everywhere_since_2024_12(code):
    """N4 (A): every province on 近亲属 by 2024-12-09 (兵团: the national rule, its date UNCERTAIN)."""
    assert POLICIES[code].relations == set(RELATIONS)


@pytest.mark.parametrize("code", PROVINCES)
def test_beneficiaries_at_least_within_the_province(code):
    """N3 (A): 省内跨统筹区 everywhere by 2024-11-26; 上海 is one 统筹区."""
    p = POLICIES[code]
    assert p.beneficiary_area in ("province", "pooling" if code == "31" else "province")
    # where the account may be used: 上海 is one 统筹区, 浙江 shares across provinces (its own notice), the rest 省内
    assert p.use_scope == {"31": "pooling", "33": "national"}.get(code, "province")


SHAREABLE = {"31": ("prior_year", 0), "33": ("prior_year", 0), "14": ("all", 100000), "35": ("all", 200000)}


@pytest.mark.parametrize("code", PROVINCES)
def test_shareable_part(code):
    """上海 (SH1, A) and 浙江 (ZJ2, B) share 历年 only; 山西 keeps 1,000 元 (B); 福建 shares above 2,000 元 (FJ1, A)."""
    p = POLICIES[code]
    assert (p.shareable, p.reserve_fen) == SHAREABLE.get(code, ("all", 0))


CAPS = {  # (max_beneficiaries, max_authorizers)
    "21": (6, None),   # 沈阳/大连 ≤6 (B)
    "33": (None, 1),   # 家庭共济仅能被一人授权绑定 (A)
    "35": (None, 1),   # one 家庭共济账户 per person (B)
    "37": (8, 1),      # 泰安 (B)
    "50": (1, 1),      # 重庆 一对一 (B)
}


@pytest.mark.parametrize("code", PROVINCES)
def test_caps(code):
    """Caps only where a B or better source gives them; the C-only figures (河北 8, 吉林 5 …) are not rules."""
    p = POLICIES[code]
    assert (p.max_beneficiaries, p.max_authorizers) == CAPS.get(code, (None, None))
    assert p.max_spouses == 1 and p.one_father_one_mother


REVIEW = {"14": "manual", "37": "none", "61": "none"}


@pytest.mark.parametrize("code", PROVINCES)
def test_proof_and_review(code):
    """山东 (SD1) and 陕西 (SN1) 承诺制 without review; 山西 every application reviewed (demo); elsewhere the
    automatic registry check (广东's 地市 office reviews what the registry cannot confirm)."""
    p = POLICIES[code]
    assert p.review == REVIEW.get(code, "auto")
    assert "registry" in p.proof
    outcome = engine.review_outcome(p, False, {"commitment_letter"})
    if code in ("37", "61"):
        assert outcome.status == "approved"
    elif "commitment" in p.proof:
        assert (outcome.status, outcome.code) == ("manual_review", "PROOF_UNDER_REVIEW")


@pytest.mark.parametrize("code", PROVINCES)
def test_validity_windows_and_per_payment_limits(code):
    """江苏 (JS1) and 贵州 (GZ1) ask for 授权起止日期; 山西 offers a 单次最高支付额度 (SX2); all grade B."""
    p = POLICIES[code]
    assert p.validity_window == (code in ("32", "52"))
    assert p.per_payment_limit == (code == "14")


@pytest.mark.parametrize("code", PROVINCES)
def test_consent_at_16(code):
    """R13: 甘肃 (A), 海南 (B/C), 新疆 (C, with the national 亲情账户 rule): a beneficiary of 16 consents himself."""
    p = POLICIES[code]
    today = dt.date(2026, 6, 1)
    if code in ("62", "46", "65"):
        assert p.consent_age == 16 and p.consent_days == engine.DEFAULT_CONSENT_DAYS
        assert engine.consent_needed(dt.date(2010, 6, 1), today, p) == p.consent_days  # 16 today
        assert engine.consent_needed(dt.date(2010, 6, 2), today, p) is None           # 16 tomorrow
    else:
        assert p.consent_age is None
        assert engine.consent_needed(dt.date(1950, 1, 1), today, p) is None


def test_consent_is_asked_where_either_side_asks():
    gansu, guangdong = POLICIES["62"], POLICIES["44"]
    adult = dt.date(1990, 1, 1)
    assert engine.consent_needed(adult, dt.date(2026, 1, 1), guangdong, gansu) == gansu.consent_days
    assert engine.consent_needed(adult, dt.date(2026, 1, 1), guangdong, None) is None
    younger = dataclasses.replace(gansu, consent_age=14, consent_days=3)
    assert engine.consent_rule(gansu, younger) == (14, 3)


def test_public_summary_of_each_province_answers_the_coverage_questions():
    for code, p in POLICIES.items():
        public = p.to_public()
        assert {"relations", "shareable", "reserve_fen", "beneficiary_area", "use_scope", "max_beneficiaries",
                "max_authorizers", "consent_age", "review_mode", "app_name"} <= public.keys()
        assert any(r["value"] == "sibling" for r in public["relations"])  # "does my province allow my brother?"


# --- the strict format ---------------------------------------------------------------------------------------------

def test_every_field_has_a_check():
    assert set(engine.FIELD_CHECKS) == engine.KNOWN_FIELDS == {f.name for f in dataclasses.fields(Policy)}


@pytest.mark.parametrize("line,field", [
    ("consent_age = 16\nfavourite_colour = \"red\"", "favourite_colour"),
    ("review = \"sometimes\"", "review"),
    ("consent_age = 0", "consent_age"),
    ("consent_age = \"16\"", "consent_age"),
    ("consent_days = 1.5", "consent_days"),
    ("validity_window = \"yes\"", "validity_window"),
    ("shareable = \"pool\"", "shareable"),
    ("channel_path = 3", "channel_path"),
    ("relations = [\"spouse\", \"parent_in_law\"]", "relations"),
])
def test_a_file_with_an_unknown_field_or_value_is_refused_naming_file_and_field(tmp_path, line, field):
    text = (POLICY_DIR / "62.toml").read_text(encoding="utf-8")
    key = line.split("=", 1)[0].strip()
    kept = [x for x in text.splitlines() if x.split("=", 1)[0].strip() != key]
    path = tmp_path / "62.toml"
    path.write_text("\n".join(kept) + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(PolicyError) as refused:
        load_policy_file(path)
    assert str(refused.value).startswith("62.toml: ") and f"{field}:" in str(refused.value), str(refused.value)


def test_every_problem_is_named_at_once():
    data = {"province_code": "62", "name": "甘肃省", "relations": ["spouse"], "typo_field": 1, "review": "x"}
    with pytest.raises(PolicyError) as refused:
        Policy.from_dict(data)
    assert "typo_field: unknown field" in str(refused.value)
    with pytest.raises(PolicyError) as refused:
        Policy.from_dict({"province_code": "62", "relations": ["spouse"], "review": "x"})
    assert "name: missing" in str(refused.value)


# --- GET /policies: the coverage checker, without a login ---------------------------------------------------------

def test_every_regions_summary_without_a_login(client):
    from tests import factories
    factories.load_policies()
    r = client.get("/api/v1/policies")
    assert r.status_code == 200
    items = {p["province_code"]: p for p in r.json["items"]}
    assert list(items) == sorted(PROVINCES)
    # "does my province allow my brother?" — everywhere since 2024-12; "who must say yes himself?" — 62, 46, 65
    assert all(any(rel["value"] == "sibling" for rel in p["relations"]) for p in items.values())
    assert {code for code, p in items.items() if p["consent_age"] == 16} == {"62", "46", "65"}
    assert items["62"]["consent_days"] == engine.DEFAULT_CONSENT_DAYS and items["44"]["consent_days"] is None
    assert (items["31"]["shareable"], items["14"]["reserve_fen"], items["50"]["max_beneficiaries"]) == \
        ("prior_year", 100000, 1)
    assert items["37"]["review_mode"] == "none" and "承诺制" in items["37"]["review_label"]
    one = client.get("/api/v1/policies?province=46").json["items"]
    assert [p["name"] for p in one] == ["海南省"]
    assert client.get("/api/v1/policies?province=99").json["items"] == []
    bad = client.get("/api/v1/policies?province=gansu")
    assert bad.status_code == 400 and bad.json["error"]["code"] == "INVALID_INPUT"
