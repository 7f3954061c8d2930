"""WeChat server API client (api.weixin.qq.com): JSON over HTTPS with short timeouts, the access token shared by all
processes through Redis."""
from __future__ import annotations

import http.client
import json
import logging
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request

from flask import current_app

from api.extensions import redis_client

log = logging.getLogger(__name__)

MAX_ANSWER_BYTES = 64 * 1024
# A token is dropped from the cache this long before WeChat expires it, so that a send in flight never carries an
# expired one and the next caller refreshes it in time.
TOKEN_MARGIN_SECONDS = 300
# Only the holder of this lock asks WeChat for a token: each new token shortens the previous one's life (to 5
# minutes), so processes refreshing at once would invalidate each other's. Longer than one HTTP call may take.
REFRESH_LOCK_SECONDS = 10
TOKEN_INVALID = (40001, 40014, 42001)  # invalid credential, invalid access_token, access_token expired
_DELETE_IF_EQUAL = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"


class WeChatUnavailable(Exception):
    """No usable answer: a timeout, a refused connection, an HTTP error status, a body that is not a JSON object."""


class WeChatError(Exception):
    """WeChat answered with a non-zero errcode."""

    def __init__(self, errcode: int, errmsg: str):
        super().__init__(f"errcode {errcode}: {errmsg}")
        self.errcode, self.errmsg = errcode, errmsg


def call(method: str, path: str, params: dict, body: dict | None = None) -> dict:
    """One request; the answer's JSON object, or WeChatError / WeChatUnavailable. The URL carries the app secret or
    the access token, so neither it nor urllib's text of it is ever logged or raised."""
    config = current_app.config
    url = config["WECHAT_API_BASE"].rstrip("/") + path + "?" + urllib.parse.urlencode(params)
    data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=config["WECHAT_TIMEOUT_SECONDS"]) as response:
            raw = response.read(MAX_ANSWER_BYTES)
    except urllib.error.HTTPError as exc:
        raise WeChatUnavailable(f"{path}: HTTP {exc.code}") from None
    except urllib.error.URLError as exc:
        raise WeChatUnavailable(f"{path}: {type(exc.reason).__name__}") from None
    except (OSError, http.client.HTTPException) as exc:  # TimeoutError while reading is an OSError
        raise WeChatUnavailable(f"{path}: {type(exc).__name__}") from None
    try:
        answer = json.loads(raw)
    except ValueError:
        raise WeChatUnavailable(f"{path}: the answer is not JSON") from None
    if not isinstance(answer, dict):
        raise WeChatUnavailable(f"{path}: the answer is not a JSON object")
    errcode = answer.get("errcode") or 0
    if errcode != 0:
        raise WeChatError(int(errcode), str(answer.get("errmsg", ""))[:120])
    return answer


def call_with_token(method: str, path: str, body: dict) -> dict:
    """A call that needs the access token; a token WeChat calls invalid or expired is dropped, and the call made
    once more with a fresh one."""
    token = access_token()
    try:
        return call(method, path, {"access_token": token}, body)
    except WeChatError as exc:
        if exc.errcode not in TOKEN_INVALID:
            raise
        log.info("wechat access token refused (errcode %s); refreshing it", exc.errcode)
        drop_token(token)
        return call(method, path, {"access_token": access_token()}, body)


def _token_key() -> str:
    return f"wechat:access_token:{current_app.config['WECHAT_APPID']}"


def access_token() -> str:
    """The cached access token, or a new one: one process refreshes it under a lock, the others wait for it."""
    r, key = redis_client(), _token_key()
    deadline = time.monotonic() + REFRESH_LOCK_SECONDS
    while True:
        token = r.get(key)
        if token:
            return token.decode()
        holder = secrets.token_hex(8)
        if r.set(key + ":lock", holder, nx=True, ex=REFRESH_LOCK_SECONDS):
            try:
                token = r.get(key)  # refreshed by another process between our read and our lock
                return token.decode() if token else _refresh(key)
            finally:
                r.eval(_DELETE_IF_EQUAL, 1, key + ":lock", holder)  # only our own lock, if it has not lapsed
        if time.monotonic() > deadline:
            raise WeChatUnavailable("waiting for another process to refresh the access token")
        time.sleep(0.05)


def _refresh(key: str) -> str:
    config = current_app.config
    answer = call("GET", "/cgi-bin/token", {"grant_type": "client_credential", "appid": config["WECHAT_APPID"],
                                            "secret": config["WECHAT_APP_SECRET"]})
    token = answer.get("access_token")
    if not isinstance(token, str) or not token:
        raise WeChatUnavailable("/cgi-bin/token: no access_token in the answer")
    expires_in = int(answer.get("expires_in") or 7200)
    ttl = max(1, expires_in - min(TOKEN_MARGIN_SECONDS, expires_in // 2))
    redis_client().set(key, token, ex=ttl)
    log.info("wechat access token refreshed; cached for %s s", ttl)
    return token


def drop_token(token: str) -> None:
    """Forgets the token, unless another process has already put a newer one in its place."""
    redis_client().eval(_DELETE_IF_EQUAL, 1, _token_key(), token)
