"""What an integrator meets at the edges of the API: token kinds, media types, replays, the inbox count, CORS, the
docs page, 405s, and the receipt number's date."""
import datetime as dt
import re

import pytest
from sqlalchemy import update

from api import models, web
from api.extensions import db
from api.models import Notification
from tests import factories
from tests.lifecycle_helpers import person_headers, run_worker, staff_headers
from tests.test_auth import assert_error

APPLY = "/api/v1/bindings/applications"


@pytest.fixture
def family(clean_app):
    factories.load_policies()
    f = type("Family", (), {})()
    f.husband = factories.person("王建国", region_code="440106", balance_fen=300000)
    f.wife = factories.person("李秀英", insurance_type="resident", balance_fen=None, region_code="440104",
                              male=False, birth=dt.date(1972, 3, 8))
    factories.kinship(f.husband, f.wife, "spouse")
    return f


def application_body(beneficiary, relation="spouse") -> dict:
    return {"beneficiary_name": beneficiary.name, "beneficiary_id_number": beneficiary.id_number,
            "relation": relation}


# --- token kinds ------------------------------------------------------------------------------------------------

def test_a_valid_token_of_the_other_kind_is_403_not_401(client, family):
    person, staff = person_headers(family.husband), staff_headers()
    for path in ("/api/v1/staff/reviews", "/api/v1/staff/materials/x"):
        assert_error(client.get(path, headers=person), 403, "WRONG_TOKEN_KIND")
    for path in ("/api/v1/me", "/api/v1/bindings", "/api/v1/notifications"):
        assert_error(client.get(path, headers=staff), 403, "WRONG_TOKEN_KIND")
    # no token, or a broken one, is still 401
    assert_error(client.get("/api/v1/me"), 401, "UNAUTHORIZED")
    assert_error(client.get("/api/v1/me", headers={"Authorization": "Bearer nonsense"}), 401, "UNAUTHORIZED")
    # and the right kind passes
    assert client.get("/api/v1/me", headers=person).status_code == 200
    assert client.get("/api/v1/staff/reviews", headers=staff).status_code == 200


# --- media types ------------------------------------------------------------------------------------------------

def test_a_body_that_is_not_json_where_json_is_expected_is_415(client, family):
    headers = person_headers(family.husband)
    form = client.post(APPLY, data=application_body(family.wife), headers=headers)
    error = assert_error(form, 415, "UNSUPPORTED_MEDIA_TYPE")
    assert "JSON" in error["message"]
    text = client.post("/api/v1/auth/login", data='{"channel": "wechat", "code": "x"}',
                       headers={"Content-Type": "text/plain"})
    assert_error(text, 415, "UNSUPPORTED_MEDIA_TYPE")
    untyped = client.post("/api/v1/staff/login", data=b'{"username": "a", "password": "b"}')
    assert_error(untyped, 415, "UNSUPPORTED_MEDIA_TYPE")
    # JSON is still JSON, with a charset or a +json type, and broken JSON is still 400
    assert client.post(APPLY, data='{"relation": "spouse"}', headers=headers | {
        "Content-Type": "application/json; charset=utf-8"}).status_code == 400
    assert_error(client.post(APPLY, data="{", headers=headers | {"Content-Type": "application/json"}),
                 400, "MALFORMED_JSON")


def test_an_optional_body_may_be_left_out(client, family):
    r = client.post(APPLY, json=application_body(family.wife), headers=person_headers(family.husband))
    assert r.status_code == 202
    run_worker()
    binding_id = client.get(f"{APPLY}/{r.json['id']}", headers=person_headers(family.husband)).json["binding_id"]
    revoked = client.post(f"/api/v1/bindings/{binding_id}/revoke", headers=person_headers(family.husband))
    assert revoked.status_code == 200, revoked.json


# --- Idempotency-Key replays ------------------------------------------------------------------------------------

def test_an_idempotency_replay_says_it_is_one(client, family):
    headers = person_headers(family.husband) | {"Idempotency-Key": "tap-1"}
    first = client.post(APPLY, json=application_body(family.wife), headers=headers)
    assert first.status_code == 202 and "Idempotency-Replayed" not in first.headers
    again = client.post(APPLY, json=application_body(family.wife), headers=headers)
    assert again.status_code == 202 and again.json == first.json
    assert again.headers["Idempotency-Replayed"] == "true"


def test_a_key_is_kept_a_day_then_forgotten_by_the_sweeper(client, family):
    import datetime as dt

    from api.models import IdempotencyRecord
    from api.services import idempotency
    headers = person_headers(family.husband) | {"Idempotency-Key": "tap-1"}
    client.post(APPLY, json=application_body(family.wife), headers=headers)
    assert idempotency.forget_old() == 0  # a fresh key stays
    assert idempotency.forget_old(models.utcnow() + idempotency.KEPT + dt.timedelta(seconds=1)) == 1
    assert db.session.query(IdempotencyRecord).count() == 0


# --- the inbox --------------------------------------------------------------------------------------------------

def test_the_inbox_answers_its_unread_count(client, family):
    headers = person_headers(family.wife)
    assert client.get("/api/v1/notifications", headers=headers).json["unread_count"] == 0
    client.post(APPLY, json=application_body(family.wife), headers=person_headers(family.husband))
    run_worker()  # submitted, approved: two messages to each side
    inbox = client.get("/api/v1/notifications?limit=1", headers=headers).json
    assert len(inbox["items"]) == 1 and inbox["unread_count"] == 2  # all unread, not this page's
    client.post(f"/api/v1/notifications/{inbox['items'][0]['id']}/read", headers=headers)
    assert client.get("/api/v1/notifications", headers=headers).json["unread_count"] == 1
    assert client.get("/api/v1/notifications?unread=true", headers=headers).json["unread_count"] == 1
    db.session.execute(update(Notification).values(read_at=models.utcnow()))
    db.session.commit()
    assert client.get("/api/v1/notifications", headers=headers).json["unread_count"] == 0
    # another person's messages are not counted
    assert client.get("/api/v1/notifications", headers=person_headers(family.husband)).json["unread_count"] == 0


# --- CORS -------------------------------------------------------------------------------------------------------

ALLOWED = "https://h5.example.gov.cn"


@pytest.fixture
def cors(clean_app, monkeypatch):
    monkeypatch.setitem(clean_app.config, "CORS_ORIGINS", web.cors_origins(f" {ALLOWED}/, http://localhost:5173"))
    return clean_app


def test_cors_origins_come_from_a_comma_separated_list_and_default_to_none():
    assert web.cors_origins(None) == web.cors_origins("") == frozenset()
    assert web.cors_origins("https://a.cn, http://b.cn:8080/,") == {"https://a.cn", "http://b.cn:8080"}


def test_a_listed_origin_gets_cors_headers(client, cors, family):
    r = client.get("/api/v1/me", headers=person_headers(family.husband) | {"Origin": ALLOWED})
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
    assert "Origin" in r.headers["Vary"]
    assert "Access-Control-Allow-Credentials" not in r.headers  # bearer tokens, no cookies
    # errors too: a browser must be able to read the refusal
    refused = client.get("/api/v1/me", headers={"Origin": ALLOWED})
    assert refused.status_code == 401 and refused.headers["Access-Control-Allow-Origin"] == ALLOWED


def test_a_preflight_from_a_listed_origin_is_204_with_methods_and_headers(client, cors):
    r = client.options(APPLY, headers={"Origin": ALLOWED, "Access-Control-Request-Method": "POST",
                                       "Access-Control-Request-Headers": "authorization, idempotency-key"})
    assert r.status_code == 204 and r.data == b""
    assert r.headers["Access-Control-Allow-Origin"] == ALLOWED
    methods = {m.strip() for m in r.headers["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "POST", "PATCH"} <= methods
    allowed = {h.strip().lower() for h in r.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key", "x-institution-key"} <= allowed


def test_an_origin_not_listed_gets_no_cors_headers(client, cors, family):
    for r in (client.get("/api/v1/me", headers=person_headers(family.husband) | {"Origin": "https://evil.example"}),
              client.options(APPLY, headers={"Origin": "https://evil.example",
                                             "Access-Control-Request-Method": "POST"})):
        assert not [h for h in r.headers.keys() if h.lower().startswith("access-control-")], r.headers
    assert client.options(APPLY, headers={"Origin": "https://evil.example",
                                          "Access-Control-Request-Method": "POST"}).status_code != 204


def test_without_cors_origins_there_are_no_cors_headers(client, family):
    r = client.get("/api/v1/me", headers=person_headers(family.husband) | {"Origin": ALLOWED})
    assert r.status_code == 200
    assert not [h for h in r.headers.keys() if h.lower().startswith("access-control-")]


def test_create_app_reads_cors_origins_from_the_environment(monkeypatch):
    from api import create_app
    monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example")
    assert create_app({"TESTING": True}).config["CORS_ORIGINS"] == {"https://a.example", "https://b.example"}


# --- the home page and the docs ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path, script", [("/", "/static/sim/sim.js"), ("/staff", "/static/staff/console.js")])
def test_the_pages_are_served_and_load_nothing_from_another_host(client, path, script):
    r = client.get(path)
    assert r.status_code == 200 and r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "the page loads from another host"
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    for asset in re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html):
        assert client.get(asset).status_code == 200, asset
    assert script in html


def test_the_docs_page_needs_no_other_host(client):
    page = client.get("/api/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html), "the docs page loads from another host"
    assets = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    assert {a.rsplit("/", 1)[-1] for a in assets} >= {"swagger-ui.css", "swagger-ui-bundle.js",
                                                      "swagger-ui-standalone-preset.js"}
    for asset in assets:
        r = client.get(asset)
        assert r.status_code == 200 and len(r.data) > 1000, asset
        assert r.mimetype in ("text/css", "text/javascript", "application/javascript"), (asset, r.mimetype)
    assert client.get("/api/v1/openapi.json").status_code == 200
    assert client.get("/api/docs-assets/index.html").status_code == 404  # only the assets, not other pages
    assert client.get("/api/docs-assets/../../api/__init__.py").status_code == 404


# --- 405 --------------------------------------------------------------------------------------------------------

def test_a_405_carries_allow_and_applications_is_no_binding_id(client, family):
    headers = person_headers(family.husband)
    r = client.delete(APPLY, headers=headers)
    assert_error(r, 405, "METHOD_NOT_ALLOWED")
    allowed = {m.strip() for m in r.headers["Allow"].split(",")}
    assert {"GET", "POST"} <= allowed and "PATCH" not in allowed
    patch = client.patch(APPLY, json={"priority": 1}, headers=headers)
    assert_error(patch, 405, "METHOD_NOT_ALLOWED")
    assert "PATCH" not in patch.headers["Allow"]
    put = client.put("/api/v1/me", headers=headers)
    assert put.status_code == 405 and "GET" in put.headers["Allow"]
    # a binding's own path still answers PATCH (404: no such binding)
    assert_error(client.patch("/api/v1/bindings/0123abcd", json={"priority": 1}, headers=headers), 404, "NOT_FOUND")


# --- receipt numbers --------------------------------------------------------------------------------------------

def test_the_receipt_number_carries_the_beijing_date(client, family, monkeypatch):
    # 06:35 in Beijing on 1 Dec is 22:35 UTC on 30 Nov
    frozen = dt.datetime(2026, 11, 30, 22, 35, tzinfo=dt.timezone.utc)
    monkeypatch.setattr(models, "utcnow", lambda: frozen)
    assert models.new_receipt_no().startswith("GJ20261201")
    r = client.post(APPLY, json=application_body(family.wife), headers=person_headers(family.husband))
    assert r.status_code == 202, r.json
    assert re.fullmatch(r"GJ20261201[0-9A-F]{8}", r.json["receipt_no"])
