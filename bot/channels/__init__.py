"""The bot's channels: what a dialog is keyed by, the channel its applications are filed under, and how proof
arrives (as material ids in options, or uploaded in the mini-program while the chat waits)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BotChannel:
    key: str             # the dialog's channel in Redis: (channel, person) is one dialog
    submit_channel: str  # Application.channel of what it submits (an online channel: 实名认证 stands for the IDs)
    proof: str           # option: the client uploads through POST /materials and sends the id | mini_program


def api_channel(login_channel: str | None) -> BotChannel:
    """POST /bot/messages, from the mini-program or app the token was issued to."""
    login_channel = login_channel or "web"
    return BotChannel(f"api-{login_channel}", login_channel, "option")


WECHAT_OA = BotChannel("wechat_oa", "wechat", "mini_program")   # the official account (/channels/wechat)
TERMINAL = BotChannel("cli", "web", "option")                   # `flask --app api bot chat`
