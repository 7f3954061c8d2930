"""Login channel 微信小程序: simulated, or real through WeChat `sns/jscode2session` (code → openid)."""
import logging

from flask import current_app

from api import wechat_api
from api.channels import MAX_OPENID, ChannelAdapter, SimulatedAdapter, checked_code
from api.errors import ApiError

log = logging.getLogger(__name__)

# jscode2session's errcodes (mini-program login documentation) → our code and status; others are ours to fix
# (40013 invalid appid, 40125 invalid secret, …): the person can only wait, the operator is told in the log.
LOGIN_ERRORS = {
    40029: ("CHANNEL_CODE_INVALID", 401),   # invalid code (expired after 5 minutes, or never issued)
    40163: ("CHANNEL_CODE_USED", 401),      # code been used: each code logs in once
    45011: ("CHANNEL_RATE_LIMITED", 429),   # the user's minute quota (100 calls/min)
    40226: ("CHANNEL_LOGIN_BLOCKED", 403),  # WeChat's high-risk user interception
    -1: ("CHANNEL_UNAVAILABLE", 503),       # system busy
}
RETRY_AFTER = {429: "60", 503: "5"}


class WeChatMiniProgram(SimulatedAdapter):
    name = "wechat"
    title = "微信小程序"


class WeChatMiniProgramLogin(ChannelAdapter):
    """The real exchange: GET /sns/jscode2session?appid&secret&js_code&grant_type=authorization_code →
    {openid, session_key, unionid?} or {errcode, errmsg}. The session_key is neither kept nor logged."""
    name = "wechat"
    title = "微信小程序"

    def openid_for(self, code: str) -> str:
        code = checked_code(code)
        config = current_app.config
        try:
            answer = wechat_api.call("GET", "/sns/jscode2session", {
                "appid": config["WECHAT_APPID"], "secret": config["WECHAT_APP_SECRET"], "js_code": code,
                "grant_type": "authorization_code"})
        except wechat_api.WeChatError as exc:
            code_, status = LOGIN_ERRORS.get(exc.errcode, ("CHANNEL_UNAVAILABLE", 503))
            log_at = log.warning if exc.errcode in LOGIN_ERRORS else log.error
            log_at("jscode2session refused: %s", exc)
            raise _refusal(code_, status) from None
        except wechat_api.WeChatUnavailable as exc:
            log.warning("jscode2session unavailable: %s", exc)
            raise _refusal("CHANNEL_UNAVAILABLE", 503) from None
        openid = answer.get("openid")
        if not isinstance(openid, str) or not openid or len(openid) > MAX_OPENID:
            log.error("jscode2session answered without a usable openid")
            raise _refusal("CHANNEL_UNAVAILABLE", 503)
        return openid


def _refusal(code: str, status: int) -> ApiError:
    field = "code" if status == 401 else None
    headers = {"Retry-After": RETRY_AFTER[status]} if status in RETRY_AFTER else None
    return ApiError(code, status, field, headers=headers)


adapter = WeChatMiniProgram()
real_adapter = WeChatMiniProgramLogin()
