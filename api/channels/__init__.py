"""Login channels (渠道): one adapter per mini-program / app that turns a login `code` into the channel's user id.

Each module defines an adapter with the same small interface; the service looks it up by name and never
needs to know which platform it is talking to. `CHANNEL_ADAPTERS` chooses the set: `simulated` adapters take the
code itself as the openid (API.md "Settings"); `real` ones call the platform (WeChat `jscode2session`, in
`wechat.py`) and raise `ApiError("CHANNEL_CODE_INVALID", 401)` when it refuses the code. A channel whose real
adapter is not written yet (Alipay, 随申办, the national app, the web portal) refuses logins with `real`.
"""
from __future__ import annotations

import re

from flask import current_app

from api.errors import ApiError

MAX_OPENID = 128  # ChannelAccount.openid
_PRINTABLE = re.compile(r"^[\x21-\x7e]+$")  # visible ASCII: what platforms issue as codes and openids


class ChannelAdapter:
    """The interface: `name`, `title` (中文), and `openid_for(code)`."""
    name: str = ""
    title: str = ""

    def openid_for(self, code: str) -> str:
        """The channel's stable user id for a login code; raises ApiError when the platform refuses it."""
        raise NotImplementedError


def checked_code(code: str | None) -> str:
    """A login code as platforms issue them (visible ASCII, not too long); anything else is refused unasked."""
    code = (code or "").strip()
    if not code or len(code) > MAX_OPENID or not _PRINTABLE.match(code):
        raise ApiError("CHANNEL_CODE_INVALID", 401, "code")
    return code


class SimulatedAdapter(ChannelAdapter):
    """Stands in for the platform: the code is the openid (so tests and the demo client can name a user)."""

    def openid_for(self, code: str) -> str:
        return checked_code(code)


class NotOpenAdapter(ChannelAdapter):
    """A channel with no real adapter yet, under CHANNEL_ADAPTERS=real: its logins are refused, not simulated."""

    def __init__(self, simulated: ChannelAdapter):
        self.name, self.title = simulated.name, simulated.title

    def openid_for(self, code: str) -> str:
        raise ApiError("CHANNEL_NOT_OPEN", 400, "channel")


def _adapters() -> dict[str, ChannelAdapter]:
    from api.channels import alipay, nhsa_app, suishenban, web, wechat
    modules = (wechat, alipay, suishenban, nhsa_app, web)
    if current_app.config["CHANNEL_ADAPTERS"] == "real":
        return {m.adapter.name: getattr(m, "real_adapter", None) or NotOpenAdapter(m.adapter) for m in modules}
    return {m.adapter.name: m.adapter for m in modules}


CHANNELS = ("wechat", "alipay", "suishenban", "nhsa_app", "web")


def get(name: str) -> ChannelAdapter:
    adapter = _adapters().get(name)
    if adapter is None:
        raise ApiError("INVALID_INPUT", 400, "channel", "「channel」的取值不在允许范围内")
    return adapter


def titles() -> dict[str, str]:
    return {name: a.title for name, a in _adapters().items()}
