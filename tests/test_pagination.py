"""Paginated lists over HTTP: pages follow each other without gaps, and a cursor we did not make is a 400."""
import base64
import json

import pytest

from api.extensions import db
from api.models import Notification
from tests import factories
from tests.lifecycle_helpers import person_headers, staff_headers


def _cursor(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.fixture
def reader(clean_app):
    factories.load_policies()
    person = factories.person("王建国")
    for i in range(5):
        db.session.add(Notification(person_id=person.id, kind="test", title=f"通知{i}", body="内容", channel="sms"))
    db.session.commit()
    return person


def test_pages_follow_each_other(client, reader):
    seen, cursor = [], None
    while True:
        r = client.get("/api/v1/notifications", query_string={"limit": 2, **({"cursor": cursor} if cursor else {})},
                       headers=person_headers(reader))
        assert r.status_code == 200
        seen += [n["title"] for n in r.json["items"]]
        cursor = r.json["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == [f"通知{i}" for i in range(5)] and len(set(seen)) == 5


@pytest.mark.parametrize("cursor", [
    "%%%", "not-base64!", _cursor("just a string"), _cursor([1, 2, 3]),
    _cursor(["2024-01-01T00:00:00", "abc"]),          # a time without its offset
    _cursor(["2024-01-01T00:00:00+00:00", {"a": 1}]),  # an id that is no id
    _cursor(["2024-01-01T00:00:00+00:00", 7]),
    _cursor(["2024-01-01T00:00:00+00:00", "x" * 33]),
    _cursor(["yesterday", "abc"]), _cursor([None, None]),
    _cursor(["2026-11-25", "a"]), _cursor(["2026-W48", "a"]),
    _cursor(["9999-12-31T23:59:59-01:00", "a"]), _cursor(["0001-01-01T00:30:00+01:00", "a"]),  # out of the calendar
    _cursor(["2026-11-25T14:49:48+00:00", "\ud800"]), _cursor(["2026-11-25T14:49:48+00:00", None]),
    _cursor(["2026-11-25T14:49:48+00:00", []]), _cursor(["2026-11-25T14:49:48+00:00", True]),
])
@pytest.mark.parametrize("path, staff", [("/api/v1/notifications", False), ("/api/v1/bindings/applications", False),
                                         ("/api/v1/staff/reviews", True)])
def test_a_cursor_we_did_not_make_is_a_400(client, reader, cursor, path, staff):
    headers = staff_headers() if staff else person_headers(reader)
    r = client.get(path, query_string={"cursor": cursor}, headers=headers)
    assert r.status_code == 400, r.get_data(as_text=True)[:300]
    assert r.json["error"]["code"] == "INVALID_INPUT" and r.json["error"]["field"] == "cursor"
