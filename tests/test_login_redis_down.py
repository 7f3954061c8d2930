"""Login limits while Redis is away: staff logins fail closed (503, never an unlimited guess), person logins stay
open. Redis here is a server of the test's own (stopped by the test) or a closed port, never the shared one."""
import socket
import tempfile
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

from api import create_app, embedded
from api.extensions import db
from api.models import StaffUser
from tests import factories

STAFF_LOGIN = "/api/v1/staff/login"
LOGIN = "/api/v1/auth/login"


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"  # bound then released: nothing listens there


@pytest.fixture
def own_redis():
    """A redis-server of this test's own (the binary of the embedded set-up) on a short unix socket path."""
    directory = Path(tempfile.mkdtemp(prefix="gj-rl-"))
    sock = directory / "r.sock"
    proc = embedded.start(sock, directory / "data", persist=False)
    yield proc, f"unix://{sock}"
    embedded.stop(proc)


@pytest.fixture
def app_on():
    """An app of its own on the given Redis (same database); its connections are closed afterwards."""
    made = []

    def make(redis_url: str):
        app = create_app({"TESTING": True, "REDIS_URL": redis_url})
        made.append(app)
        return app, FlaskClient(app, app.response_class)
    yield make
    for app in made:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def people(clean_app):
    factories.load_policies()
    zhang = factories.person("张三", region_code="440106", balance_fen=500000, phone="13812345678")
    db.session.add(StaffUser(username="clerk1", password_hash=generate_password_hash("right password"),
                             roles=["clerk"]))
    db.session.commit()
    return zhang


def _assert_unavailable(r):
    assert r.status_code == 503, r.get_json()
    error = r.get_json()["error"]
    assert error["code"] == "LOGIN_UNAVAILABLE"
    assert any("\u4e00" <= ch <= "\u9fff" for ch in error["message"])
    assert int(r.headers["Retry-After"]) > 0


def _person_login(client, person, code):
    return client.post(LOGIN, json={"channel": "wechat", "code": code, "name": person.name,
                                    "id_number": person.id_number})


def test_staff_login_fails_closed_when_its_redis_stops_and_person_login_stays_open(people, own_redis, app_on):
    proc, url = own_redis
    app, client = app_on(url)
    # Redis up: the limits count, logins work
    assert client.post(STAFF_LOGIN, json={"username": "clerk1", "password": "right password"}).status_code == 200
    assert client.post(STAFF_LOGIN, json={"username": "clerk1", "password": "guess"}).status_code == 401
    assert _person_login(client, people, "wx-before").status_code == 200

    embedded.stop(proc)  # our own server: the app's pooled connection is now dead too
    for password in ["guess 1", "guess 2", "right password"] * 5:  # never one guess, not even the right one
        _assert_unavailable(client.post(STAFF_LOGIN, json={"username": "clerk1", "password": password}))
    # persons: the channel's code exchange limits them, and our outage must not lock them out
    r = _person_login(client, people, "wx-during")
    assert r.status_code == 200, r.get_json()
    assert client.post(LOGIN, json={"channel": "wechat", "code": "wx-before"}).status_code == 200


def test_staff_login_fails_closed_when_redis_cannot_be_reached_at_all(people, app_on):
    app, client = app_on(_closed_port_url())
    _assert_unavailable(client.post(STAFF_LOGIN, json={"username": "clerk1", "password": "right password"}))
    _assert_unavailable(client.post(STAFF_LOGIN, json={"username": "nobody", "password": "x"}))
    assert _person_login(client, people, "wx-1").status_code == 200


def test_staff_login_is_not_refused_while_redis_answers(client, people):
    """The 503 is for an outage only: the shared test Redis is up, so the same request logs in."""
    r = client.post(STAFF_LOGIN, json={"username": "clerk1", "password": "right password"})
    assert r.status_code == 200, r.json
