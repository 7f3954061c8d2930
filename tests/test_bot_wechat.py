"""/channels/wechat as WeChat drives it: messages signed (and in 安全模式 encrypted) in this test exactly as WeChat's
documentation describes, independently of the service's own code; verification, text and events, a repeated
delivery answered once, an unbound openid, hostile XML, a bounded body, bad signatures."""
import base64
import datetime as dt
import hashlib
import os
import struct
import time
import xml.etree.ElementTree as StdET

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from api.extensions import redis_client
from api.models import Application
from api.extensions import db
from bot.dialog import Dialog
from tests import factories

TOKEN = "gongji-test-token"
APPID = "wx5823bf96d3bd56c7"
AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"  # 43 characters, as the console issues it
OPENID = "oAbc-test-openid-1"
ACCOUNT = "gh_0123456789ab"


# --- WeChat's side ------------------------------------------------------------------------------------------

def sign(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def wx_encrypt(xml: str) -> str:
    key = base64.b64decode(AES_KEY + "=")
    body = xml.encode()
    plain = os.urandom(16) + struct.pack("!I", len(body)) + body + APPID.encode()
    pad = 32 - len(plain) % 32
    plain += bytes([pad] * pad)
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(enc.update(plain) + enc.finalize()).decode()


def wx_decrypt(encrypted: str) -> str:
    key = base64.b64decode(AES_KEY + "=")
    dec = Cipher(algorithms.AES(key), modes.CBC(key[:16])).decryptor()
    plain = dec.update(base64.b64decode(encrypted)) + dec.finalize()
    plain = plain[:-plain[-1]]
    (length,) = struct.unpack("!I", plain[16:20])
    assert plain[20 + length:] == APPID.encode()
    return plain[20:20 + length].decode()


def text_xml(content: str, msg_id: int, openid: str = OPENID) -> str:
    return (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>")


def event_xml(event: str, key: str = "", created: int | None = None, openid: str = OPENID) -> str:
    return (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{created or int(time.time())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            f"<Event><![CDATA[{event}]]></Event><EventKey><![CDATA[{key}]]></EventKey></xml>")


class WeChat:
    """Posts as WeChat's servers do, plaintext or 安全模式, and reads the passive reply."""

    def __init__(self, client, aes: bool = False):
        self.client, self.aes = client, aes

    def post(self, xml: str, **tamper):
        timestamp, nonce = tamper.pop("timestamp", str(int(time.time()))), "n" + os.urandom(4).hex()
        query = {"timestamp": timestamp, "nonce": nonce, "signature": sign(TOKEN, timestamp, nonce),
                 "openid": OPENID}
        body = xml
        if self.aes:
            encrypted = wx_encrypt(xml)
            body = f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
            query.update(encrypt_type="aes", msg_signature=sign(TOKEN, timestamp, nonce, encrypted))
        query.update(tamper)
        return self.client.post("/channels/wechat", query_string=query, data=body.encode(),
                                content_type="text/xml")

    def say(self, xml: str) -> str:
        r = self.post(xml)
        assert r.status_code == 200, r.get_data(as_text=True)
        root = StdET.fromstring(r.data)
        if self.aes:
            encrypted = root.findtext("Encrypt")
            assert root.findtext("MsgSignature") == sign(TOKEN, root.findtext("TimeStamp"), root.findtext("Nonce"),
                                                         encrypted)
            root = StdET.fromstring(wx_decrypt(encrypted))
        assert root.findtext("ToUserName") == OPENID and root.findtext("FromUserName") == ACCOUNT
        assert root.findtext("MsgType") == "text"
        return root.findtext("Content")


@pytest.fixture
def wx(client):
    client.application.config.update(WECHAT_TOKEN=TOKEN, WECHAT_APPID=APPID, WECHAT_AES_KEY=AES_KEY)
    factories.load_policies()
    me = factories.person("王建国", region_code="440106", birth=dt.date(1970, 3, 1))
    mum = factories.person("李秀英", insurance_type="resident", balance_fen=None, male=False, region_code="440106",
                           birth=dt.date(1945, 5, 5))
    factories.kinship(me, mum, "parent")
    # the simulated mini-program login takes the code as the openid (API.md "Channels")
    login = client.post("/api/v1/auth/login", json={"channel": "wechat", "code": OPENID, "name": "王建国",
                                                    "id_number": me.id_number})
    assert login.status_code == 200, login.json
    yield me, mum
    client.application.config.update(WECHAT_TOKEN="gongji-dev-token", WECHAT_APPID=None, WECHAT_AES_KEY=None)


def test_server_verification_echoes_only_a_good_signature(client, wx):
    ts, nonce = str(int(time.time())), "abc"
    r = client.get("/channels/wechat", query_string={"signature": sign(TOKEN, ts, nonce), "timestamp": ts,
                                                     "nonce": nonce, "echostr": "hello-echo"})
    assert r.status_code == 200 and r.get_data(as_text=True) == "hello-echo"
    bad = client.get("/channels/wechat", query_string={"signature": "0" * 40, "timestamp": ts, "nonce": nonce,
                                                       "echostr": "x"})
    assert bad.status_code == 403 and bad.json["error"]["code"] == "BAD_SIGNATURE"


@pytest.mark.parametrize("aes", [False, True], ids=["plaintext", "aes"])
def test_a_binding_through_the_official_account(client, wx, aes):
    me, mum = wx
    wechat = WeChat(client, aes)
    welcome = wechat.say(event_xml("subscribe"))
    assert "欢迎关注" in welcome and "1. 亲情账号绑定" in welcome and "回复数字选择" in welcome
    assert "第 1 步" in wechat.say(text_xml("1", 1001))
    assert "第 2 步" in wechat.say(text_xml("妈妈", 1002))
    wechat.say(text_xml("李秀英", 1003))
    proof = wechat.say(text_xml(mum.id_number, 1004))
    assert mum.id_number not in proof and "440106********" in proof
    assert "pages/materials/upload" in proof and "已上传" in proof  # the mini-program page to upload in
    assert "还没有收到" in wechat.say(text_xml("已上传", 1005))
    wechat.say(text_xml("跳过", 1006))
    summary = wechat.say(text_xml("200", 1007))
    assert "每月上限：200 元" in summary and "1. 确认提交" in summary and mum.id_number not in summary
    done = wechat.say(text_xml("1", 1008))
    app = db.session.query(Application).one()
    assert app.receipt_no in done and app.channel == "wechat" and app.monthly_limit_fen == 20000


@pytest.mark.parametrize("aes", [False, True], ids=["plaintext", "aes"])
def test_a_repeated_delivery_is_answered_once_and_moves_the_dialog_once(client, wx, aes):
    me, _ = wx
    wechat = WeChat(client, aes)
    first = wechat.say(text_xml("绑定家人", 2001))
    again = wechat.say(text_xml("绑定家人", 2001))  # WeChat's retry: same MsgId
    assert first == again and "第 1 步" in first
    wechat.say(text_xml("妈妈", 2002))
    assert wechat.say(text_xml("妈妈", 2002)).startswith("第 2 步")
    [key] = redis_client().keys(f"bot:wechat_oa:{me.id}:dialog")
    stored = Dialog.loads(redis_client().get(key))
    assert (stored.step, stored.attempts, stored.history) == ("name", 0, ["relation"])
    # events have no MsgId: FromUserName + CreateTime names the delivery
    created = int(time.time()) - 5
    status = wechat.say(event_xml("CLICK", "application_status", created))
    assert "还没有家庭共济申请" in status
    assert wechat.say(event_xml("CLICK", "application_status", created)) == status
    assert redis_client().ttl(redis_client().keys("bot:wx:seen:*")[0]) > 0


def test_menu_clicks_reach_their_intents(client, wx):
    wechat = WeChat(client)
    assert "码（卡）不能共用" in wechat.say(event_xml("CLICK", "faq_impersonation"))
    assert "第 1 步" in WeChat(client).say(event_xml("CLICK", "family_binding", int(time.time()) + 1))
    assert WeChat(client).post(event_xml("unsubscribe", created=int(time.time()) + 2)).data == b"success"


def test_an_unbound_openid_is_told_how_to_bind(client, wx):
    wechat = WeChat(client)
    r = wechat.post(text_xml("你好", 3001, openid="o-stranger"))
    assert r.status_code == 200
    content = StdET.fromstring(r.data).findtext("Content")
    assert "还没有绑定医保身份" in content and "小程序" in content and "实名登录" in content


@pytest.mark.parametrize("aes", [False, True], ids=["plaintext", "aes"])
def test_bad_signatures_are_403(client, wx, aes):
    wechat = WeChat(client, aes)
    tamper = {"msg_signature": "0" * 40} if aes else {"signature": "0" * 40}
    r = wechat.post(text_xml("你好", 4001), **tamper)
    assert r.status_code == 403 and r.json["error"]["code"] == "BAD_SIGNATURE"
    old = str(int(time.time()) - 3600)  # a replay of an old, well-signed delivery
    r = wechat.post(text_xml("你好", 4002), timestamp=old)
    assert r.status_code == 403


def test_hostile_or_oversized_bodies_are_refused(client, wx):
    wechat = WeChat(client)
    bomb = ('<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;">]>'
            f"<xml><FromUserName>{OPENID}</FromUserName><MsgType>text</MsgType><Content>&b;</Content></xml>")
    r = wechat.post(bomb)
    assert r.status_code == 400
    external = ('<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                f"<xml><FromUserName>{OPENID}</FromUserName><MsgType>text</MsgType><Content>&x;</Content></xml>")
    assert wechat.post(external).status_code == 400
    assert wechat.post("not xml at all").status_code == 400
    huge = text_xml("好" * 30000, 5001)
    r = wechat.post(huge)
    assert r.status_code == 413
    long_text = wechat.say(text_xml("好" * 600, 5002))
    assert "不要超过 500 个字" in long_text


def test_aes_from_another_appid_or_without_configuration_is_refused(client, wx):
    key = base64.b64decode(AES_KEY + "=")
    body = text_xml("你好", 6001).encode()
    plain = os.urandom(16) + struct.pack("!I", len(body)) + body + b"wx-someone-else"
    plain += bytes([32 - len(plain) % 32] * (32 - len(plain) % 32))
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    encrypted = base64.b64encode(enc.update(plain) + enc.finalize()).decode()
    ts, nonce = str(int(time.time())), "nn"
    r = client.post("/channels/wechat", data=f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>",
                    query_string={"timestamp": ts, "nonce": nonce, "encrypt_type": "aes",
                                  "msg_signature": sign(TOKEN, ts, nonce, encrypted)}, content_type="text/xml")
    assert r.status_code == 400
    client.application.config["WECHAT_AES_KEY"] = None
    assert WeChat(client, aes=True).post(text_xml("你好", 6002)).status_code == 400
