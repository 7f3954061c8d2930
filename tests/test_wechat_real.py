"""The real WeChat adapters (mini-program login, subscribe messages) against a local server that answers as WeChat's
documentation shows: success, each error code, the access token's caching, expiry and refresh, a timeout."""
import os
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import select

from api import create_app, wechat_api
from api.extensions import db, redis_client
from api.models import ChannelAccount, Delivery, Notification, new_id
from api.notify import wechat as wechat_notify
from api.services import notifications
from tests import factories
from tests.fake_wechat import (APPID, ARGUMENT_INVALID, CODE_USED, HIGH_RISK, INVALID_CODE, MINUTE_QUOTA, SECRET,
                               SYSTEM_BUSY, USER_REFUSED, FakeWeChat)
from tests.fault_helpers import ROOT, bind_wechat, fresh

LOGIN = "/api/v1/auth/login"
TEMPLATE = "tmpl-family-aid-status"
TOKEN_KEY = f"wechat:access_token:{APPID}"


def real_settings(fake: FakeWeChat) -> dict:
    return {"CHANNEL_ADAPTERS": "real", "WECHAT_APPID": APPID, "WECHAT_APP_SECRET": SECRET,
            "WECHAT_TEMPLATE_ID": TEMPLATE, "WECHAT_API_BASE": fake.url, "WECHAT_TIMEOUT_SECONDS": 0.5}


@pytest.fixture
def wechat(clean_app, monkeypatch):
    fake = FakeWeChat()
    for key, value in real_settings(fake).items():
        monkeypatch.setitem(clean_app.config, key, value)
    yield fake
    fake.close()


@pytest.fixture
def zhang(clean_app):
    factories.load_policies()
    return factories.person("张三", region_code="440106", balance_fen=500000, phone="13812345678")


def login(client, person, code):
    return client.post(LOGIN, json={"channel": "wechat", "code": code, "name": person.name,
                                    "id_number": person.id_number})


# --- login: jscode2session ----------------------------------------------------------------------------------------

def test_a_login_code_is_exchanged_for_the_openid(client, wechat, zhang):
    r = login(client, zhang, "081Kq3Ga1yDcnH0Xb0Ga1Ts6hR3Kq3GZ")
    assert r.status_code == 200, r.json
    assert db.session.scalar(select(ChannelAccount.openid)) == "oWx-081Kq3Ga1yDcnH0Xb0Ga1Ts6hR3Kq3GZ"
    [(method, path, query)] = wechat.requests
    assert (method, path) == ("GET", "/sns/jscode2session")
    assert query == {"appid": APPID, "secret": SECRET, "js_code": "081Kq3Ga1yDcnH0Xb0Ga1Ts6hR3Kq3GZ",
                     "grant_type": "authorization_code"}
    assert client.post(LOGIN, json={"channel": "wechat", "code": "081Kq3Ga1yDcnH0Xb0Ga1Ts6hR3Kq3GZ"}).status_code == 200


@pytest.mark.parametrize("answer, status, code", [
    (INVALID_CODE, 401, "CHANNEL_CODE_INVALID"),
    (CODE_USED, 401, "CHANNEL_CODE_USED"),
    (MINUTE_QUOTA, 429, "CHANNEL_RATE_LIMITED"),
    (HIGH_RISK, 403, "CHANNEL_LOGIN_BLOCKED"),
    (SYSTEM_BUSY, 503, "CHANNEL_UNAVAILABLE"),
])
def test_wechat_refusals_become_our_codes_in_chinese(client, wechat, zhang, answer, status, code):
    wechat.code_answers["the-code"] = answer
    r = login(client, zhang, "the-code")
    assert r.status_code == status, r.json
    assert r.json["error"]["code"] == code
    assert any("\u4e00" <= ch <= "\u9fff" for ch in r.json["error"]["message"])
    assert r.json["error"]["field"] == ("code" if status == 401 else None)
    assert r.headers.get("Retry-After") == {429: "60", 503: "5"}.get(status)
    assert db.session.scalar(select(ChannelAccount)) is None


def test_our_own_misconfiguration_is_a_503_not_the_persons_fault(client, wechat, zhang, monkeypatch, caplog):
    monkeypatch.setitem(client.application.config, "WECHAT_APP_SECRET", "wrong")
    r = login(client, zhang, "the-code")
    assert (r.status_code, r.json["error"]["code"]) == (503, "CHANNEL_UNAVAILABLE")
    assert "errcode 40013" in caplog.text and "wrong" not in caplog.text and SECRET not in caplog.text


def test_a_slow_or_absent_wechat_is_a_quick_503(client, wechat, zhang, monkeypatch):
    wechat.delay = 3
    started = time.monotonic()
    r = login(client, zhang, "the-code")
    assert (r.status_code, r.json["error"]["code"]) == (503, "CHANNEL_UNAVAILABLE")
    assert time.monotonic() - started < 2  # the 0.5 s timeout, not WeChat's 3 s
    wechat.delay = 0
    closed = FakeWeChat()
    closed.close()  # nothing listens on its port any more
    monkeypatch.setitem(client.application.config, "WECHAT_API_BASE", closed.url)
    r = login(client, zhang, "the-code")
    assert (r.status_code, r.json["error"]["code"]) == (503, "CHANNEL_UNAVAILABLE")


def test_a_malformed_code_is_refused_without_asking_wechat(client, wechat, zhang):
    r = login(client, zhang, "代码 with spaces")
    assert (r.status_code, r.json["error"]["code"]) == (401, "CHANNEL_CODE_INVALID")
    assert wechat.requests == []


def test_channels_without_a_real_adapter_refuse_logins(client, wechat, zhang):
    r = client.post(LOGIN, json={"channel": "alipay", "code": "2088", "name": zhang.name,
                                 "id_number": zhang.id_number})
    assert (r.status_code, r.json["error"]["code"], r.json["error"]["field"]) == (400, "CHANNEL_NOT_OPEN", "channel")


# --- subscribe messages ---------------------------------------------------------------------------------------------

def notice(person, channel="wechat", title="家庭共济已解除", body=None) -> str:
    nid = new_id()
    db.session.add(Notification(id=nid, person_id=person.id, kind="binding_revoked", title=title, channel=channel,
                                body=body or "您与王秀英的家庭共济关系已于今日解除，如有疑问请联系医保经办机构。"))
    db.session.commit()
    return nid


def row(nid) -> Notification:
    return fresh().get(Notification, nid)


def test_a_subscribe_message_is_sent_as_documented_and_shaped_as_the_simulated_one(client, wechat, zhang):
    bind_wechat(zhang, "oWx-zhang")
    nid = notice(zhang)
    assert notifications.deliver_many([nid]) == {nid: "sent"}
    [message] = wechat.sent
    assert message == {"touser": "oWx-zhang", "template_id": TEMPLATE, "page": f"pages/notifications/detail?id={nid}",
                       "data": {"thing1": {"value": "家庭共济已解除"}, "thing2": {"value": "您与王秀英的家庭共济关系已于今日解除，…"}}}
    assert [(m, p) for m, p, _ in wechat.requests] == [("GET", "/cgi-bin/token"),
                                                       ("POST", "/cgi-bin/message/subscribe/send")]
    assert wechat.requests[0][2] == {"grant_type": "client_credential", "appid": APPID, "secret": SECRET}
    assert wechat.requests[1][2] == {"access_token": "ACCESS_TOKEN_1"}
    delivery = fresh().scalar(select(Delivery))
    assert (delivery.notification_id, delivery.recipient, delivery.payload) == (nid, "oWx-zhang", message)
    n = row(nid)
    assert (n.delivery_status, n.attempts, n.sending_until) == ("sent", 1, None)

    client.application.config["CHANNEL_ADAPTERS"] = "simulated"  # the simulated one shapes it the same way
    assert wechat_notify.send(n, zhang, "oWx-zhang", nid)["payload"] == message


def test_the_access_token_is_cached_in_redis_for_its_life_less_a_margin_and_shared(client, wechat, zhang):
    bind_wechat(zhang, "oWx-zhang")
    first, second = notice(zhang), notice(zhang)
    assert notifications.deliver_many([first]) == {first: "sent"}
    assert notifications.deliver_many([second]) == {second: "sent"}
    assert wechat.tokens_issued == 1 and wechat.paths("/cgi-bin/message/subscribe/send") == 2
    assert redis_client().get(TOKEN_KEY) == b"ACCESS_TOKEN_1"
    assert 7200 - 300 - 5 <= redis_client().ttl(TOKEN_KEY) <= 7200 - 300

    # a second app instance, as another web or worker process would build it, uses the same token
    other = create_app({"TESTING": True, **real_settings(wechat)})
    with other.app_context():
        assert wechat_api.access_token() == "ACCESS_TOKEN_1"
    # and so does another process sharing the Redis server
    env = {**os.environ, "CHANNEL_ADAPTERS": "real", "WECHAT_APPID": APPID, "WECHAT_APP_SECRET": SECRET,
           "WECHAT_TEMPLATE_ID": TEMPLATE, "WECHAT_API_BASE": wechat.url}
    script = "from api import create_app, wechat_api\nwith create_app().app_context(): print(wechat_api.access_token())"
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ACCESS_TOKEN_1"
    assert wechat.tokens_issued == 1


def test_the_token_is_refreshed_once_its_cached_life_is_over(client, wechat, zhang):
    bind_wechat(zhang, "oWx-zhang")
    wechat.expires_in = 2  # cached for 1 s: half its life when that is shorter than the margin
    first, second = notice(zhang), notice(zhang)
    assert notifications.deliver_many([first]) == {first: "sent"}
    assert 0 < redis_client().pttl(TOKEN_KEY) <= 1000
    time.sleep(1.1)
    assert notifications.deliver_many([second]) == {second: "sent"}
    assert wechat.tokens_issued == 2
    assert [q for _, p, q in wechat.requests if p.endswith("/send")] == [{"access_token": "ACCESS_TOKEN_1"},
                                                                         {"access_token": "ACCESS_TOKEN_2"}]


@pytest.mark.parametrize("cached, refusal", [("ACCESS_TOKEN_1", 42001), ("a-token-wechat-never-issued", 40001)])
def test_a_token_wechat_refuses_is_dropped_and_the_send_retried_once(client, wechat, zhang, cached, refusal):
    bind_wechat(zhang, "oWx-zhang")
    if cached == "ACCESS_TOKEN_1":
        assert wechat_api.access_token() == cached
        wechat.expire_all_tokens()  # expired early at WeChat (or replaced by a refresh from elsewhere)
    else:
        redis_client().set(TOKEN_KEY, cached, ex=600)
    nid = notice(zhang)
    assert notifications.deliver_many([nid]) == {nid: "sent"}
    sends = [q["access_token"] for _, p, q in wechat.requests if p.endswith("/send")]
    assert sends == [cached, f"ACCESS_TOKEN_{wechat.tokens_issued}"] and len(wechat.sent) == 1
    assert redis_client().get(TOKEN_KEY).decode() == sends[-1]
    assert row(nid).attempts == 1


def test_dropping_a_stale_token_keeps_a_newer_one_another_process_stored(clean_app, wechat):
    redis_client().set(TOKEN_KEY, "NEWER", ex=600)
    wechat_api.drop_token("OLDER")
    assert redis_client().get(TOKEN_KEY) == b"NEWER"


def test_processes_needing_a_token_at_once_refresh_it_once(clean_app, wechat):
    wechat.token_delay = 0.3
    tokens = []

    def worker():
        with clean_app.app_context():
            tokens.append(wechat_api.access_token())

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert tokens == ["ACCESS_TOKEN_1"] * 6 and wechat.tokens_issued == 1


def test_a_person_who_refused_the_subscription_is_marked_failed_without_retries(client, wechat, zhang):
    bind_wechat(zhang, "oWx-zhang")
    wechat.send_answers.append(USER_REFUSED)
    nid = notice(zhang)
    assert notifications.deliver_many([nid]) == {nid: "failed"}
    n = row(nid)
    assert (n.delivery_status, n.attempts) == ("failed", 1) and "43101" in n.last_error
    assert notifications.deliver_many([nid]) == {nid: "failed"}  # nothing is sent again
    assert wechat.paths("/cgi-bin/message/subscribe/send") == 1
    assert fresh().scalar(select(Delivery)) is None


@pytest.mark.parametrize("answer", [SYSTEM_BUSY, ARGUMENT_INVALID])
def test_other_wechat_errors_are_retried(client, wechat, zhang, answer):
    bind_wechat(zhang, "oWx-zhang")
    wechat.send_answers.append(answer)
    nid = notice(zhang)
    assert notifications.deliver_many([nid]) == {nid: "retry"}
    n = row(nid)
    assert (n.delivery_status, n.attempts, n.sending_until) == ("pending", 1, None)
    assert f"errcode {answer['errcode']}" in n.last_error
    assert notifications.deliver_many([nid]) == {nid: "sent"}
    assert row(nid).attempts == 2 and len(wechat.sent) == 1


def test_a_send_that_times_out_is_retried(client, wechat, zhang):
    bind_wechat(zhang, "oWx-zhang")
    wechat_api.access_token()
    wechat.delay = 2
    nid = notice(zhang)
    started = time.monotonic()
    assert notifications.deliver_many([nid]) == {nid: "retry"}
    assert time.monotonic() - started < 1.5
    assert "unavailable" in row(nid).last_error and row(nid).delivery_status == "pending"


def test_without_an_openid_or_a_real_adapter_a_notice_fails_at_once(client, wechat, zhang):
    no_openid, by_sms = notice(zhang), notice(zhang, channel="sms")
    assert notifications.deliver_many([no_openid, by_sms]) == {no_openid: "failed", by_sms: "failed"}
    assert row(by_sms).last_error == "no real sms adapter"
    assert row(no_openid).last_error == "no WeChat openid for this person"
    assert wechat.requests == []
