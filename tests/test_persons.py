"""The person's own pages over HTTP: /me masked, 医保电子凭证, the 业务办理 menu, the region policy."""
import datetime as dt

import pytest
from itsdangerous import TimestampSigner

from api.auth import read_voucher
from api.extensions import db
from api.messages import message
from api.models import Binding
from tests import factories
from tests.lifecycle_helpers import person_headers


@pytest.fixture
def registry(clean_app):
    factories.load_policies()


def _chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def test_me_masks_id_and_phone_and_shows_the_account(client, registry):
    p = factories.person("王建国", region_code="440106", balance_fen=300000, prior_year_fen=120000,
                         phone="13912345678")
    r = client.get("/api/v1/me", headers=person_headers(p))
    assert r.status_code == 200, r.json
    body = r.get_data(as_text=True)
    assert p.id_number not in body and "13912345678" not in body
    assert p.id_number[6:14] not in body  # not even the birth date
    me = r.json
    assert me["id_number"] == p.id_number[:6] + "********" + p.id_number[-4:]
    assert me["phone"] == "139****5678"
    assert me["name"] == "王建国" and me["insurance_type"] == "employee" and me["status"] == "normal"
    assert me["region_code"] == "440106" and me["region_name"] == "广东省"
    assert me["account"] == {"balance_fen": 300000, "prior_year_fen": 120000, "shareable_fen": 300000}
    assert me["settlement_suspended"] is False


def test_me_of_a_resident_has_no_account_and_shanghai_shares_only_the_prior_year(client, registry):
    resident = factories.person("李秀英", insurance_type="resident", balance_fen=None, male=False)
    assert client.get("/api/v1/me", headers=person_headers(resident)).json["account"] is None

    shanghai = factories.person("陈伟", region_code="310104", balance_fen=200000, prior_year_fen=50000)
    me = client.get("/api/v1/me", headers=person_headers(shanghai)).json
    assert me["region_name"] == "上海市"
    assert me["account"] == {"balance_fen": 200000, "prior_year_fen": 50000, "shareable_fen": 50000}


def test_me_needs_a_token(client, registry):
    r = client.get("/api/v1/me")
    assert r.status_code == 401
    assert r.json["error"]["code"] == "UNAUTHORIZED" and _chinese(r.json["error"]["message"])


def test_voucher_names_the_person_briefly_and_is_not_a_bearer_token(client, registry, monkeypatch):
    p = factories.person()
    r = client.get("/api/v1/me/voucher", headers=person_headers(p))
    assert r.status_code == 200
    code, expires_at = r.json["code"], dt.datetime.fromisoformat(r.json["expires_at"])
    assert r.json["expires_at"].endswith("+08:00")
    assert dt.timedelta(minutes=4) < expires_at - dt.datetime.now(dt.timezone.utc) <= dt.timedelta(minutes=5)
    assert read_voucher(code) == p.id

    assert read_voucher(code[:-2] + ("AA" if code[-2:] != "AA" else "BB")) is None
    assert read_voucher("C1234567890") is None and read_voucher("") is None
    # a voucher cannot be used to log in, and a bearer token is no voucher
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {code}"}).status_code == 401
    assert read_voucher(person_headers(p)["Authorization"][7:]) is None

    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) - 301)
    old = client.get("/api/v1/me/voucher", headers=person_headers(p)).json["code"]
    monkeypatch.setattr(TimestampSigner, "get_timestamp", real)
    assert read_voucher(old) is None


def _menu(client, person) -> dict:
    r = client.get("/api/v1/services", headers=person_headers(person))
    assert r.status_code == 200, r.json
    assert [s["id"] for s in r.json] == ["family_binding", "family_unbinding", "usage_query", "application_status"]
    return {s["id"]: s for s in r.json}


def test_services_menu_offers_binding_only_to_an_admitted_authorizer(client, registry):
    employee = factories.person("王建国", balance_fen=300000)
    menu = _menu(client, employee)
    assert menu["family_binding"] == {"id": "family_binding", "title": "亲情账号绑定", "available": True,
                                      "reason": None}
    assert menu["usage_query"]["title"] == "共济记录查询"
    # offered exactly when the records can be read
    usage = client.get("/api/v1/usage", headers=person_headers(employee))
    assert menu["usage_query"]["available"] is (usage.status_code == 200), usage.status_code
    assert menu["application_status"]["title"] == "办理进度查询"

    resident = factories.person("李秀英", insurance_type="resident", balance_fen=None, male=False)
    binding = _menu(client, resident)["family_binding"]
    assert binding["available"] is False and binding["reason"] == "授权人须为职工医保参保人"

    broke = factories.person("赵小明", balance_fen=0)
    binding = _menu(client, broke)["family_binding"]
    assert binding["available"] is False
    assert binding["reason"] == message("AUTHORIZER_BALANCE_ZERO") == "授权人个人账户可共济余额为零，暂不能办理家庭共济"

    # 上海 shares only the 历年 part: a balance that is all current-year is not shareable
    current_only = factories.person("陈伟", region_code="310104", balance_fen=80000, prior_year_fen=0)
    assert _menu(client, current_only)["family_binding"]["reason"] == message("AUTHORIZER_BALANCE_ZERO")


def test_services_menu_offers_unbinding_only_with_an_active_binding(client, registry):
    a = factories.person("王建国")
    b = factories.person("李秀英", insurance_type="resident", balance_fen=None, male=False)
    unbinding = _menu(client, b)["family_unbinding"]
    assert unbinding["title"] == "亲情账号解绑" and unbinding["available"] is False and _chinese(unbinding["reason"])
    db.session.add(Binding(authorizer_id=a.id, beneficiary_id=b.id, relation="spouse"))
    db.session.commit()
    assert _menu(client, a)["family_unbinding"]["available"] is True
    assert _menu(client, b)["family_unbinding"] == {"id": "family_unbinding", "title": "亲情账号解绑",
                                                    "available": True, "reason": None}


def test_policy_is_the_callers_region(client, registry):
    gd = client.get("/api/v1/policy", headers=person_headers(factories.person(region_code="440106"))).json
    sh = client.get("/api/v1/policy", headers=person_headers(factories.person(region_code="310104"))).json
    assert gd["province_code"] == "44" and sh["province_code"] == "31"
    assert gd != sh
    assert sh["shareable"] == "prior_year"
    assert sh["beneficiary_area"] == "pooling" and gd["beneficiary_area"] == "province"
    assert {r["value"] for r in sh["relations"]} == {r["value"] for r in gd["relations"]}  # 近亲属 both (N4, SH2)
    assert {"value": "id_card", "label": "身份证"} in gd["required_materials"]


def test_policy_of_a_region_without_one_is_a_chinese_422(client, registry):
    r = client.get("/api/v1/policy", headers=person_headers(factories.person(region_code="990101")))
    assert r.status_code == 422 and r.json["error"]["code"] == "REGION_NOT_COVERED" and _chinese(r.json["error"]["message"])
    binding = _menu(client, factories.person(region_code="990101"))["family_binding"]
    assert binding["available"] is False and binding["reason"] == message("REGION_NOT_COVERED")


def test_openapi_documents_the_person_endpoints(client):
    spec = client.get("/api/v1/openapi.json").json
    for path in ("/api/v1/auth/login", "/api/v1/staff/login", "/api/v1/me", "/api/v1/me/voucher",
                 "/api/v1/services", "/api/v1/policy", "/api/v1/materials", "/api/v1/materials/{material_id}"):
        assert path in spec["paths"], path
    upload = spec["paths"]["/api/v1/materials"]["post"]
    assert set(upload["requestBody"]["content"]) == {"multipart/form-data"}
    assert {"413", "415"} <= set(upload["responses"])
    login = spec["paths"]["/api/v1/auth/login"]["post"]["responses"]
    assert "REALNAME_MISMATCH" in login["401"]["description"] and "REALNAME_REQUIRED" in login["400"]["description"]
    assert "Retry-After" in login["429"]["headers"]
