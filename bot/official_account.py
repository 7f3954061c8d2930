"""The bot on the WeChat official account: who sent a message (the openid a login bound), a repeated delivery
answered once (WeChat retries a message three times when no answer came within 5 s), and the reply's text."""
from __future__ import annotations

import hashlib
import time

from flask import current_app

from api.extensions import redis_client
from api.messages import message as catalogue_message
from api.services import logins
from bot import channels
from bot.catalogue import say
from bot.channels import wechat
from bot.conversation import handle
from bot.store import Busy

LOGIN_CHANNEL = "wechat"     # the mini-program login whose openid the sender must be (API.md "Channels")
DEDUP_SECONDS = 600          # longer than WeChat's retries and than a signed request's accepted age
_PENDING = b"\x00pending"
_WAIT_FOR_FIRST_SECONDS = 4  # a retry arriving while the first is handled waits for its answer, within WeChat's 5 s
MAX_TEXT = 500


def reply_for(message: dict[str, str]) -> str | None:
    """The text to answer `message` with, or None for no reply ("success"). A delivery seen before gets the first
    one's answer, and moves the dialog only once."""
    if message.get("MsgType") == "event" and message.get("Event", "").lower() == "unsubscribe":
        return None
    identity = message.get("MsgId") or f"{message.get('FromUserName', '')}:{message.get('CreateTime', '')}"
    key = "bot:wx:seen:" + hashlib.sha1(identity.encode()).hexdigest()
    r = redis_client()
    if not r.set(key, _PENDING, nx=True, ex=DEDUP_SECONDS):
        return _first_answer(r, key)
    try:
        content = _answer(message)
    except BaseException:
        r.delete(key)  # nothing was answered: WeChat's retry may try again
        raise
    r.set(key, (content or "").encode(), ex=DEDUP_SECONDS)
    return content


def _first_answer(r, key: str) -> str | None:
    deadline = time.monotonic() + _WAIT_FOR_FIRST_SECONDS
    while True:
        value = r.get(key)
        if value != _PENDING:
            return value.decode() or None if value else None
        if time.monotonic() > deadline:
            return None
        time.sleep(0.02)


def _answer(message: dict[str, str]) -> str | None:
    kind, event = message.get("MsgType", ""), message.get("Event", "").lower()
    person = logins.person_for_openid(LOGIN_CHANNEL, message.get("FromUserName", ""))
    if person is None:
        not_bound = say("NOT_BOUND", app=current_app.config.get("WECHAT_MINI_PROGRAM_NAME", "医保服务"))
        return say("WELCOME") + "\n\n" + not_bound if event == "subscribe" else not_bound
    try:
        if kind == "text":
            text = message.get("Content", "")
            if len(text) > MAX_TEXT:
                return catalogue_message("TEXT_TOO_LONG")
            turn = handle(person, channels.WECHAT_OA, text=text)
        elif kind == "event" and event == "subscribe":
            turn = handle(person, channels.WECHAT_OA, event="subscribe")
        elif kind == "event" and event == "click":
            turn = handle(person, channels.WECHAT_OA, option=message.get("EventKey", "")[:100])
        elif kind == "event":
            return None  # VIEW, LOCATION, SCAN …: nothing to say
        else:
            return say("NON_TEXT")
    except Busy:
        return catalogue_message("BOT_BUSY")
    return wechat.render(turn)
