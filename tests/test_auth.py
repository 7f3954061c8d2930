"""Logins over HTTP against the real database and Redis: 实名认证, tokens, staff users, rate limits."""
import time

import pytest
import redis
from itsdangerous import TimestampSigner
from sqlalchemy import select
from werkzeug.security import check_password_hash

from api import ratelimit
from api.extensions import db, redis_client
from api.models import AuditEvent, ChannelAccount, StaffUser
from tests import factories

LOGIN = "/api/v1/auth/login"
STAFF_LOGIN = "/api/v1/staff/login"


@pytest.fixture
def zhang(clean_app):
    factories.load_policies()
    return factories.person("张三", region_code="440106", balance_fen=500000, phone="13812345678")


def assert_error(response, status, code, field="unset"):
    assert response.status_code == status, response.json
    error = response.json["error"]
    assert error["code"] == code
    assert any("\u4e00" <= ch <= "\u9fff" for ch in error["message"]), error  # a Chinese message
    if field != "unset":
        assert error["field"] == field
    return error


def first_login(client, person, code="wx-openid-1", channel="wechat", **extra):
    return client.post(LOGIN, json={"channel": channel, "code": code, "name": person.name,
                                    "id_number": person.id_number, **extra})


# --- person login -------------------------------------------------------------------------------------------

def test_first_login_needs_realname_then_code_alone_suffices(client, zhang):
    assert_error(client.post(LOGIN, json={"channel": "wechat", "code": "wx-openid-1"}), 400,
                 "REALNAME_REQUIRED", "id_number")
    assert_error(client.post(LOGIN, json={"channel": "wechat", "code": "wx-openid-1",
                                          "id_number": zhang.id_number}), 400, "REALNAME_REQUIRED", "name")
    assert db.session.query(ChannelAccount).count() == 0

    r = first_login(client, zhang)
    assert r.status_code == 200, r.json
    assert r.json["expires_at"].endswith("+08:00")
    assert r.json["person"]["name"] == "张三"
    assert r.json["person"]["id_number"] == zhang.id_number[:6] + "*" * 8 + zhang.id_number[-4:]
    assert zhang.id_number not in r.get_data(as_text=True)
    account = db.session.scalar(select(ChannelAccount))
    assert (account.channel, account.openid, account.person_id) == ("wechat", "wx-openid-1", zhang.id)

    again = client.post(LOGIN, json={"channel": "wechat", "code": "wx-openid-1"})
    assert again.status_code == 200, again.json
    assert again.json["person"] == r.json["person"]  # the same dump as GET /me
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {again.json['token']}"})
    assert me.status_code == 200 and me.json == r.json["person"]
    assert db.session.query(ChannelAccount).count() == 1

    # the same code on another channel is another channel account: 实名认证 again
    assert_error(client.post(LOGIN, json={"channel": "alipay", "code": "wx-openid-1"}), 400, "REALNAME_REQUIRED")


def test_realname_mismatch_is_refused_without_telling_who_is_insured(client, zhang):
    wrong_name = assert_error(first_login(client, zhang, name="李四"), 401, "REALNAME_MISMATCH")
    unknown = factories.id_number("440106", seq=33)  # valid, but nobody in the registry
    nobody = assert_error(client.post(LOGIN, json={"channel": "wechat", "code": "c", "name": "张三",
                                                   "id_number": unknown}), 401, "REALNAME_MISMATCH")
    assert wrong_name == nobody
    bad = zhang.id_number[:-1] + ("0" if zhang.id_number[-1] != "0" else "1")
    assert_error(client.post(LOGIN, json={"channel": "wechat", "code": "c", "name": "张三", "id_number": bad}),
                 400, "INVALID_ID_NUMBER", "id_number")
    assert db.session.query(ChannelAccount).count() == 0


def test_realname_accepts_how_people_type_and_bound_account_refuses_another_person(client, zhang):
    other = factories.person("买买提·艾力", region_code="650102")
    assert first_login(client, other, code="a1", name=" 买买提•艾力 ").status_code == 200
    assert first_login(client, zhang, code="z1", id_number=zhang.id_number.lower()).status_code == 200
    # an openid bound to 张三 cannot be used to log in as somebody else by sending his details
    assert_error(client.post(LOGIN, json={"channel": "wechat", "code": "z1", "name": other.name,
                                          "id_number": other.id_number}), 401, "REALNAME_MISMATCH")


def test_login_input_is_validated_in_chinese(client, zhang):
    assert_error(client.post(LOGIN, json={"channel": "qq", "code": "x"}), 400, "INVALID_INPUT", "channel")
    assert_error(client.post(LOGIN, json={"channel": "wechat"}), 400, "INVALID_INPUT", "code")
    assert_error(client.post(LOGIN, json={"channel": "wechat", "code": "has space"}), 401,
                 "CHANNEL_CODE_INVALID", "code")
    assert_error(client.post(LOGIN, data="{not json", content_type="application/json"), 400, "MALFORMED_JSON")


# --- tokens ---------------------------------------------------------------------------------------------------

def test_token_is_refused_when_tampered_expired_or_of_another_kind(client, zhang, monkeypatch):
    token = first_login(client, zhang).json["token"]
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200

    payload, rest = token.split(".", 1)
    forged = ("A" if payload[0] != "A" else "B") + payload[1:] + "." + rest
    assert_error(client.get("/api/v1/me", headers={"Authorization": f"Bearer {forged}"}), 401, "UNAUTHORIZED")
    assert_error(client.get("/api/v1/me"), 401, "UNAUTHORIZED")

    # a token signed 3 hours ago (the TTL is 2 hours)
    real = TimestampSigner.get_timestamp
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: real(self) - 3 * 3600)
    old = client.post(LOGIN, json={"channel": "wechat", "code": "wx-openid-1"}).json["token"]
    monkeypatch.setattr(TimestampSigner, "get_timestamp", real)
    assert_error(client.get("/api/v1/me", headers={"Authorization": f"Bearer {old}"}), 401, "TOKEN_EXPIRED")

    # a tiny TTL: the token dies after it
    monkeypatch.setitem(client.application.config, "TOKEN_TTL_SECONDS", 1)
    short = client.post(LOGIN, json={"channel": "wechat", "code": "wx-openid-1"})
    assert short.status_code == 200
    time.sleep(2.1)
    assert_error(client.get("/api/v1/me", headers={"Authorization": f"Bearer {short.json['token']}"}),
                 401, "TOKEN_EXPIRED")


# --- staff ----------------------------------------------------------------------------------------------------

def test_staff_create_from_stdin_then_login(client, runner):
    result = runner.invoke(args=["staff", "create", "wang.clerk", "--role", "clerk", "--role", "reviewer"],
                           input="correct horse battery\n")
    assert result.exit_code == 0, result.output
    staff = db.session.scalar(select(StaffUser).where(StaffUser.username == "wang.clerk"))
    assert staff.roles == ["clerk", "reviewer"]
    assert "correct horse" not in staff.password_hash and check_password_hash(staff.password_hash,
                                                                              "correct horse battery")

    r = client.post(STAFF_LOGIN, json={"username": "wang.clerk", "password": "correct horse battery"})
    assert r.status_code == 200, r.json
    assert r.json["staff"] == {"username": "wang.clerk", "roles": ["clerk", "reviewer"]}
    assert r.json["expires_at"].endswith("+08:00")
    headers = {"Authorization": f"Bearer {r.json['token']}"}
    assert client.get("/api/v1/staff/reviews", headers=headers).status_code == 200
    # a staff token is not a person token
    assert_error(client.get("/api/v1/me", headers=headers), 403, "WRONG_TOKEN_KIND")

    wrong = assert_error(client.post(STAFF_LOGIN, json={"username": "wang.clerk", "password": "nope"}),
                         401, "INVALID_CREDENTIALS")
    unknown = assert_error(client.post(STAFF_LOGIN, json={"username": "nobody", "password": "nope"}),
                           401, "INVALID_CREDENTIALS")
    assert wrong == unknown
    actions = [a for (a,) in db.session.execute(select(AuditEvent.action).order_by(AuditEvent.id))]
    assert actions == ["staff_created", "staff_login", "staff_login_failed", "staff_login_failed"]


def test_staff_create_refuses_duplicates_unknown_roles_and_short_passwords(runner):
    ok = runner.invoke(args=["staff", "create", "li", "--role", "admin"], input="long enough pw\n")
    assert ok.exit_code == 0, ok.output
    duplicate = runner.invoke(args=["staff", "create", "li", "--role", "clerk"], input="another password\n")
    assert duplicate.exit_code == 1 and "已存在" in duplicate.output
    bad_role = runner.invoke(args=["staff", "create", "zhao", "--role", "boss"], input="long enough pw\n")
    assert bad_role.exit_code == 1 and "未知角色" in bad_role.output
    short = runner.invoke(args=["staff", "create", "zhao", "--role", "clerk"], input="short\n")
    assert short.exit_code == 1 and "密码至少" in short.output
    # "staff:<username>" must fit the actor of a timeline entry
    long_name = runner.invoke(args=["staff", "create", "z" * 33, "--role", "clerk"], input="long enough pw\n")
    assert long_name.exit_code == 1 and "2–32" in long_name.output
    assert db.session.query(StaffUser).count() == 1


def test_inactive_staff_cannot_log_in(client, runner):
    runner.invoke(args=["staff", "create", "gone", "--role", "clerk"], input="long enough pw\n")
    db.session.scalar(select(StaffUser)).active = False
    assert_error(client.post(STAFF_LOGIN, json={"username": "gone", "password": "long enough pw"}),
                 401, "INVALID_CREDENTIALS")


# --- rate limits ------------------------------------------------------------------------------------------------

def test_failed_staff_logins_are_limited_per_account_in_redis(client, runner):
    runner.invoke(args=["staff", "create", "zhou", "--role", "clerk"], input="right password\n")
    for _ in range(10):
        assert_error(client.post(STAFF_LOGIN, json={"username": "zhou", "password": "guess"}), 401,
                     "INVALID_CREDENTIALS")
    limited = client.post(STAFF_LOGIN, json={"username": "zhou", "password": "right password"})
    assert_error(limited, 429, "RATE_LIMITED")
    assert 0 < int(limited.headers["Retry-After"]) <= 60
    assert "后再试" in limited.json["error"]["message"]

    key = ratelimit.counter_key("staff-login", "account", "zhou")
    assert int(redis_client().get(key)) == 11
    assert 0 < redis_client().ttl(key) <= 60  # the counter expires: every process shares it, none keeps it
    assert redis_client().exists(ratelimit.counter_key("staff-login", "ip", "127.0.0.1"))
    assert "zhou" not in str(redis_client().keys("ratelimit:*"))  # identities are hashed in the keys

    # another account from the same address is not blocked by zhou's counter
    runner.invoke(args=["staff", "create", "wu", "--role", "clerk"], input="right password\n")
    assert client.post(STAFF_LOGIN, json={"username": "wu", "password": "right password"}).status_code == 200


def test_person_logins_are_limited_per_ip_and_the_window_ends(client, zhang, monkeypatch):
    monkeypatch.setitem(client.application.config, "RATELIMIT_LOGIN_PER_IP", "3/2s")
    first_login(client, zhang, code="c0")
    for i in range(1, 3):
        assert client.post(LOGIN, json={"channel": "wechat", "code": f"c{i}"}).status_code == 400
    assert_error(client.post(LOGIN, json={"channel": "wechat", "code": "c0"}), 429, "RATE_LIMITED")
    assert redis_client().exists(ratelimit.counter_key("login", "ip", "127.0.0.1"))

    elsewhere = client.post(LOGIN, json={"channel": "wechat", "code": "c0"},
                            environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert elsewhere.status_code == 200

    time.sleep(2.2)
    assert client.post(LOGIN, json={"channel": "wechat", "code": "c0"}).status_code == 200


def test_the_client_address_comes_from_x_forwarded_for_only_behind_trusted_proxies(client, zhang):
    forged = {"X-Forwarded-For": "10.9.9.9"}
    client.post(LOGIN, json={"channel": "wechat", "code": "c0"}, headers=forged)
    assert redis_client().exists(ratelimit.counter_key("login", "ip", "127.0.0.1"))  # the peer, not the header
    assert not redis_client().exists(ratelimit.counter_key("login", "ip", "10.9.9.9"))

    from api import create_app
    proxied = create_app({"TRUSTED_PROXIES": 1, "SQLALCHEMY_DATABASE_URI": client.application.config[
        "SQLALCHEMY_DATABASE_URI"], "REDIS_URL": client.application.config["REDIS_URL"]})
    with proxied.test_client() as behind_nginx:
        behind_nginx.post(LOGIN, json={"channel": "wechat", "code": "c0"}, headers=forged)
    assert redis_client().exists(ratelimit.counter_key("login", "ip", "10.9.9.9"))


def test_person_login_attempts_are_limited_per_channel_account(client, zhang):
    for _ in range(10):
        assert first_login(client, zhang, name="王五").status_code == 401
    assert_error(first_login(client, zhang), 429, "RATE_LIMITED")
    assert redis_client().exists(ratelimit.counter_key("login", "account", "wechat:wx-openid-1"))
    assert first_login(client, zhang, channel="alipay").status_code == 200


def test_logins_still_work_when_redis_is_down(client, zhang):
    client.application.extensions["redis"] = redis.Redis.from_url("redis://127.0.0.1:1/0",
                                                                  socket_connect_timeout=0.5)
    try:
        assert first_login(client, zhang).status_code == 200
    finally:
        del client.application.extensions["redis"]


def test_rate_rules_parse():
    assert ratelimit.parse_rule("10/minute") == ratelimit.Rule(10, 60)
    assert ratelimit.parse_rule("30 / hour") == ratelimit.Rule(30, 3600)
    assert ratelimit.parse_rule("5/10s") == ratelimit.Rule(5, 10)
    with pytest.raises(ValueError):
        ratelimit.parse_rule("ten per minute")


def test_a_write_that_cannot_get_its_lock_in_time_answers_503_and_writes_nothing(client, zhang, monkeypatch):
    """SQLite: another process holds the writers' lock. PostgreSQL: another transaction holds the person's row,
    which the new channel account's foreign key must share."""
    import fcntl

    from sqlalchemy import text

    from api import extensions
    monkeypatch.setattr(extensions, "LOCK_WAIT_SECONDS", 0.3)
    db.engine.dispose()  # new connections take the short wait
    db.session.commit()
    try:
        with db.engine.connect() as other:
            if path := client.application.extensions.get("sqlite_writers_lock"):
                held = open(path, "a")
                fcntl.flock(held, fcntl.LOCK_EX)
            else:
                other.execute(text("SELECT id FROM persons WHERE id = :id FOR UPDATE"), {"id": zhang.id})
            r = first_login(client, zhang)
            if path:
                held.close()
            other.rollback()
        assert_error(r, 503, "SERVICE_UNAVAILABLE")
        assert r.headers["Retry-After"] == "5" and r.json["error"]["message"] == "系统繁忙，请稍后再试"
        assert db.session.query(ChannelAccount).count() == 0
        assert first_login(client, zhang).status_code == 200  # the lock free again: the same request goes through
    finally:
        monkeypatch.undo()
        db.engine.dispose()
