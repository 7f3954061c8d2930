"""Bodies that the JSON and multipart parsers accept but nothing downstream can use answer a Chinese 400, never a
500 (each case was a 500 found by fuzzing the running service)."""
import io

import pytest

from api.extensions import db
from api.models import Application, Binding
from tests import factories
from tests.lifecycle_helpers import person_headers, staff_headers


def assert_400(r, code="MALFORMED_JSON"):
    assert r.status_code == 400, r.get_data(as_text=True)[:300]
    assert r.json["error"]["code"] == code
    assert any("\u4e00" <= ch <= "\u9fff" for ch in r.json["error"]["message"])


@pytest.fixture
def person(clean_app):
    factories.load_policies()
    return factories.person("王建国")


BODIES = {
    "nested deeper than Python recurses": "[" * 5000 + "]" * 5000,
    "an integer of 5,000 digits": '{"x": ' + "1" * 5000 + "}",
    "a lone surrogate": '{"username": "\\ud800", "password": "x", "channel": "wechat", "code": "\\udfff"}',
    "a lone surrogate as a key": '{"\\ud800": 1}',
}


@pytest.mark.parametrize("body", BODIES.values(), ids=BODIES.keys())
@pytest.mark.parametrize("path", ["/api/v1/auth/login", "/api/v1/staff/login", "/api/v1/bindings/applications"])
def test_json_no_text_can_hold_is_refused(client, person, path, body):
    r = client.post(path, data=body, content_type="application/json", headers=person_headers(person))
    assert_400(r)


def test_a_lone_surrogate_in_a_reason_changes_nothing(client, person):
    wife = factories.person("李秀英", insurance_type="resident", balance_fen=None, male=False)
    factories.kinship(person, wife, "spouse")
    binding = Binding(authorizer_id=person.id, beneficiary_id=wife.id, relation="spouse")
    db.session.add(binding)
    db.session.commit()
    r = client.post(f"/api/v1/bindings/{binding.id}/revoke", data='{"reason": "\\ud800"}',
                    content_type="application/json", headers=person_headers(person))
    assert_400(r)
    db.session.rollback()
    assert db.session.get(Binding, binding.id).status == "active"
    waiting = Application(authorizer_id=person.id, beneficiary_id=wife.id, relation="spouse", channel="wechat",
                          status="manual_review")
    db.session.add(waiting)
    db.session.commit()
    r = client.post(f"/api/v1/staff/reviews/{waiting.id}/decision", data='{"decision": "reject", "reason": "\\ud800"}',
                    content_type="application/json", headers=staff_headers())
    assert_400(r)
    db.session.rollback()
    assert db.session.get(Application, waiting.id).status == "manual_review"  # not rejected with a broken reason
    assert not db.session.get(Application, waiting.id).events


def test_a_file_field_sent_as_text_is_no_file(client, person):
    for data in ({"kind": "id_card", "file": "abc"}, {"kind": "id_card", "file": (io.BytesIO(b""), "")}):
        r = client.post("/api/v1/materials", data=data, content_type="multipart/form-data",
                        headers=person_headers(person))
        assert r.status_code == 400 and r.json["error"]["field"] in ("file", None), r.json
    r = client.post("/api/v1/materials", data="kind=id_card&file=abc",
                    content_type="application/x-www-form-urlencoded", headers=person_headers(person))
    assert_400(r, "INVALID_INPUT")


@pytest.mark.parametrize("amount", [1.0, "100", 1e2])
def test_money_is_a_json_integer(client, person, amount):
    r = client.post("/api/v1/bindings/applications", headers=person_headers(person), json={
        "beneficiary_name": "某", "beneficiary_id_number": person.id_number, "relation": "spouse",
        "monthly_limit_fen": amount})
    assert_400(r, "INVALID_INPUT")
    assert r.json["error"]["field"] == "monthly_limit_fen"
