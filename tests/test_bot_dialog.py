"""The bot's dialog over HTTP with the real Redis: expiry and resume, the stored state, one dialog's messages
taking turns, 解绑 through chat, 进度/记录/FAQ from the person's own data and policy, the request contract, the CLI."""
import datetime as dt
import threading
import time

import pytest
from flask.testing import FlaskClient

from api.extensions import db, redis_client
from api.messages import message
from api.models import Binding, Notification
from bot import conversation
from bot.dialog import VERSION, Dialog
from tests import factories
from tests.bot_helpers import URL, Chat
from tests.lifecycle_helpers import person_headers


@pytest.fixture
def family(clean_app):
    factories.load_policies()
    me = factories.person("王建国", region_code="440106", birth=dt.date(1970, 3, 1))
    mum = factories.person("李秀英", insurance_type="resident", balance_fen=None, male=False, region_code="440106",
                           birth=dt.date(1945, 5, 5))
    factories.kinship(me, mum, "parent")
    return me, mum


def _keys(person, kind: str) -> list[bytes]:
    return redis_client().keys(f"bot:*:{person.id}:{kind}")


def test_state_is_versioned_with_a_30_minute_expiry_and_a_24_hour_draft(client, family):
    me, _ = family
    chat = Chat(client, me)
    chat.tap("family_binding")
    chat.say("妈妈")
    [key], [draft] = _keys(me, "dialog"), _keys(me, "draft")
    assert 1790 <= redis_client().ttl(key) <= 1800 and 86390 <= redis_client().ttl(draft) <= 86400
    stored = Dialog.loads(redis_client().get(key))
    assert stored.v == VERSION and (stored.intent, stored.step) == ("family_binding", "name")
    assert stored.slots["relation"] == "parent"
    expires = dt.datetime.fromisoformat(chat.answer["dialog"]["expires_at"])
    assert dt.timedelta(minutes=29) < expires - dt.datetime.now(dt.timezone.utc) <= dt.timedelta(minutes=30)
    # a state of another version (or garbage) is never half-read: the dialog starts afresh
    redis_client().set(key, stored.dumps().replace(f'"v":{VERSION}', '"v":999'))
    chat.say("你好")
    assert chat.step == (None, None) and "请问要办理什么业务" in chat.text
    redis_client().set(key, b"\xff not json")
    chat.say("菜单")
    assert chat.step == (None, None)


def test_after_expiry_the_person_is_told_and_may_resume_or_restart(client, family, monkeypatch):
    me, mum = family
    client.application.config["BOT_IDLE_SECONDS"] = 1
    try:
        chat = Chat(client, me)
        chat.tap("family_binding")
        chat.say("妈妈")
        chat.say("李秀英")
        assert chat.step[1] == "id_number"
        time.sleep(1.3)  # the real Redis lets the dialog lapse
        assert not _keys(me, "dialog") and _keys(me, "draft")
        chat.say(mum.id_number)  # whatever is said first, he hears that it lapsed
        assert "已暂停" in chat.text and "亲情账号绑定" in chat.text
        assert set(chat.options) == {"继续上次办理", "重新开始"} and chat.step == ("resume", "offer")
        chat.say("1")
        assert "接着上次" in chat.text and chat.step == ("family_binding", "id_number")
        assert "请输入李秀英的 18 位身份证号码" in chat.text
        chat.say(mum.id_number)
        assert chat.step[1] == "proof"
        time.sleep(1.3)
        chat.say("跳过")
        chat.tap("restart")
        assert "已清除" in chat.text and chat.step == (None, None) and not _keys(me, "draft")
        time.sleep(1.3)
        chat.say("你好")  # nothing under way: no offer, just the menu
        assert chat.step == (None, None) and "继续上次办理" not in chat.options
    finally:
        client.application.config.pop("BOT_IDLE_SECONDS")


def test_two_messages_of_one_dialog_are_handled_one_after_the_other(client, family, monkeypatch):
    me, mum = family
    Chat(client, me).tap("family_binding")
    spans, real_turn = [], conversation._turn

    def slow_turn(*args, **kwargs):
        started = time.monotonic()
        time.sleep(0.15)  # long enough for the other thread to arrive meanwhile
        try:
            return real_turn(*args, **kwargs)
        finally:
            spans.append((started, time.monotonic()))

    monkeypatch.setattr(conversation, "_turn", slow_turn)
    app, headers = client.application, person_headers(me)
    barrier, answers = threading.Barrier(2), {}

    def send(text):
        with app.app_context():
            plain = FlaskClient(app, app.response_class)
            barrier.wait()
            answers[text] = plain.post(URL, json={"text": text}, headers=headers)

    threads = [threading.Thread(target=send, args=(t,)) for t in ("妈妈", "李秀英")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert all(r.status_code == 200 for r in answers.values()), {k: r.json for k, r in answers.items()}
    (a_start, a_end), (b_start, b_end) = sorted(spans)
    assert a_end <= b_start  # never interleaved
    stored = Dialog.loads(redis_client().get(_keys(me, "dialog")[0]))
    # either order is a sequential one: 妈妈 then 李秀英 → the ID is asked; 李秀英 first → an invalid relation,
    # then 妈妈 → the name is asked, with one attempt spent on the relation before
    assert (stored.step, stored.slots.get("name")) in (("id_number", "李秀英"), ("name", None))
    assert stored.slots["relation"] == "parent"


def test_unbinding_through_chat_lists_asks_confirms_and_revokes(client, family):
    me, mum = family
    wife = factories.person("张丽", region_code="440106", male=False, birth=dt.date(1972, 1, 1))
    granted = Binding(authorizer_id=me.id, beneficiary_id=mum.id, relation="parent")
    received = Binding(authorizer_id=wife.id, beneficiary_id=me.id, relation="spouse")
    db.session.add_all([granted, received])
    db.session.commit()
    chat = Chat(client, me)
    chat.say("我要解除家庭共济")
    assert chat.step == ("family_unbinding", "which")
    assert "您授权给 父母 李**" in chat.text and "配偶 张*（" in chat.text and "授权给您" in chat.text
    assert mum.id_number not in chat.text and mum.id_number[:6] + "********" + mum.id_number[-4:] in chat.text
    assert set(chat.options.values()) >= {granted.id, received.id}
    chat.say("9")
    assert "请点选要解除的关系" in chat.text
    chat.say("2")  # the received one, by its number
    assert chat.step[1] == "confirm" and "配偶 张*" in chat.text
    chat.say("上一步")
    assert chat.step[1] == "which"
    chat.tap(granted.id)
    chat.tap("confirm_unbind")
    assert "已解除与【父母 李**】" in chat.text and chat.step == (None, None)
    db.session.refresh(granted)
    db.session.refresh(received)
    assert (granted.status, granted.revoked_by) == ("revoked", "authorizer") and received.status == "active"
    assert db.session.query(Notification).filter_by(kind="binding_revoked").count() == 2
    chat.say("解绑")
    assert chat.step == ("family_unbinding", "which") and granted.id not in chat.options.values()
    chat.say("取消")
    assert db.session.get(Binding, received.id).status == "active"
    db.session.delete(db.session.get(Binding, received.id))
    db.session.commit()
    chat.say("解绑")
    assert message("NO_ACTIVE_BINDING") in chat.text and chat.step == (None, None)


def test_answers_read_the_persons_region_policy(client, family):
    shanxi = factories.person("郭师傅", region_code="140105", balance_fen=300000)
    chat = Chat(client, shanxi)
    chat.say("办理条件")
    assert "山西省" in chat.text and "1,000 元" in chat.text and "兄弟姐妹" in chat.text
    zhejiang = factories.person("钱先生", region_code="330102", balance_fen=300000, prior_year_fen=100000)
    chat = Chat(client, zhejiang)
    chat.say("谁能办")
    assert "历年账户" in chat.text and "只能接受一位授权人" in chat.text
    chat.say("异地就医能用吗？")
    assert "跨省异地就医也可以使用" in chat.text
    shanghai = factories.person("陈伟", region_code="310104", balance_fen=200000, prior_year_fen=50000)
    chat = Chat(client, shanghai)
    chat.say("条件")  # 上海: 近亲属 since 2025-07 at the latest (SH2, A), within the city
    assert "外孙子女。" in chat.text and "兄弟姐妹" in chat.text and "同一个市" in chat.text
    factories.set_policy("31", relations=factories.RELATIONS_2021)  # a region that keeps the 2021 set
    chat.say("条件")
    assert "配偶、父母、子女。" in chat.text and "兄弟姐妹" not in chat.text
    chat.say("我开通了亲情账户")
    assert "亲情账户" in chat.text and "自己的钱" in chat.text and "family_binding" in chat.options.values()
    chat.tap("family_binding")
    assert chat.step == ("family_binding", "relation")
    chat.say("使用范围")  # mid-wizard: answered, then the relation asked again
    assert "保健品" in chat.text and "跨省异地就医暂时不能用" in chat.text and chat.step[1] == "relation"


def test_status_and_records_answer_from_the_persons_own_data(client, family):
    me, mum = family
    chat = Chat(client, me)
    chat.say("进度")
    assert "还没有家庭共济申请" in chat.text
    chat.say("记录")
    assert "还没有家庭共济的使用记录" in chat.text and "元" not in chat.text  # no invented figures
    r = client.post("/api/v1/bindings/applications", headers=person_headers(me),
                    json={"beneficiary_name": "李秀英", "beneficiary_id_number": mum.id_number, "relation": "parent"})
    assert r.status_code == 202
    chat.say("办理进度查询")
    assert r.json["receipt_no"] in chat.text and "已提交" in chat.text and "为父母 李**" in chat.text
    mums_chat = Chat(client, mum)
    mums_chat.say("审核结果")
    assert r.json["receipt_no"] in mums_chat.text and "来自子女 王**" in mums_chat.text


def test_the_menu_is_the_services_menu(client, family):
    me, _ = family
    chat = Chat(client, me)
    chat.say("你好")
    services = client.get("/api/v1/services", headers=person_headers(me)).json
    assert [o for o in chat.options.values()][:4] == ["family_binding", "family_unbinding", "application_status",
                                                        "usage_query"]
    usage = next(s for s in services if s["id"] == "usage_query")
    assert usage["available"] is True and usage["reason"] is None
    chat.say("4")
    assert "使用记录" in chat.text
    chat.say("随便说点什么")
    assert "没有听懂" in chat.text and "family_binding" in chat.options.values()


def test_the_request_contract(client, family):
    me, _ = family
    headers = person_headers(me)
    assert client.post(URL, json={"text": "你好"}).status_code == 401
    r = client.post(URL, json={"text": "好" * 501}, headers=headers)
    assert r.status_code == 400 and r.json["error"]["code"] == "TEXT_TOO_LONG" and r.json["error"]["field"] == "text"
    assert client.post(URL, json={"text": "好" * 500}, headers=headers).status_code == 200
    for body in ({}, {"text": "1", "option": "1"}):
        r = client.post(URL, json=body, headers=headers)
        assert r.status_code == 400 and r.json["error"]["code"] == "BOT_MESSAGE_EMPTY", body
    r = client.post(URL, json={"option": 1}, headers=headers)  # a bare number as an option
    assert r.status_code == 200 and r.json["dialog"]["intent"] == "family_binding"
    spec = client.get("/api/v1/openapi.json").json
    post = spec["paths"]["/api/v1/bot/messages"]["post"]
    assert set(post["requestBody"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1:]) == {"BotMessageIn"}
    assert {"200", "400", "401", "409"} <= set(post["responses"])
    assert "TEXT_TOO_LONG" in post["responses"]["400"]["description"]
    assert {"replies", "dialog"} <= set(spec["components"]["schemas"]["BotTurnOut"]["properties"])


def test_the_terminal_chat(runner, family):
    me, mum = family
    result = runner.invoke(args=["bot", "chat", "--as", me.id_number],
                           input="1\n妈妈\n李秀英\n" + mum.id_number + "\n跳过\n不限\n确认提交\n退出对话\n")
    assert result.exit_code == 0, result.output
    assert "请问要办理什么业务" in result.output and "申请已提交" in result.output
    assert mum.id_number not in result.output and me.id_number not in result.output
    missing = runner.invoke(args=["bot", "chat", "--as", factories.id_number()])
    assert missing.exit_code == 1
