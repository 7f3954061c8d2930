"""The chat bot over JSON: POST /api/v1/bot/messages (the WeChat official account is api/views/wechat.py)."""
from flask import g
from marshmallow import Schema, ValidationError, fields, validates_schema

from api.auth import current_person, person_required
from api.errors import ApiError
from api.schemas import BEARER, JSON_BODY, PERSON_AUTH, Blueprint, refusals
from bot import channels
from bot.channels import json_api
from bot.conversation import handle
from bot.store import Busy

blp = Blueprint("bot", __name__, url_prefix="/api/v1", description="智能客服：业务办理向导与常见问题")

MAX_TEXT = 500


def _text_fits(value: str) -> None:
    if len(value) > MAX_TEXT:
        raise ValidationError("TEXT_TOO_LONG")


class OptionValue(fields.String):
    """An option's value as the client got it; a bare integer is taken as its digits (a menu number)."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        return super()._deserialize(value, attr, data, **kwargs)


class BotMessageIn(Schema):
    text = fields.String(validate=_text_fits, metadata={"description": "what the person typed (≤ 500 characters)"})
    option = OptionValue(validate=_text_fits,
                         metadata={"description": "the `value` of an option tapped (or a material id at the "
                                                  "proof step, after POST /materials)"})

    @validates_schema
    def _one_of(self, data, **kwargs):
        if ("text" in data) == ("option" in data):
            raise ValidationError("BOT_MESSAGE_EMPTY")


class OptionOut(Schema):
    label = fields.String(required=True)
    value = fields.String(required=True)


class ReplyOut(Schema):
    text = fields.String(required=True)
    options = fields.List(fields.Nested(OptionOut), required=True)


class DialogOut(Schema):
    intent = fields.String(allow_none=True, metadata={"description": "the flow under way: family_binding, "
                                                                     "family_unbinding, resume, or null"})
    step = fields.String(allow_none=True, metadata={"description": "its step (relation, name, id_number, proof, "
                                                                   "limit, summary; which, confirm; offer)"})
    expires_at = fields.String(metadata={"description": "when the dialog lapses if nothing more is said (30 min)"})


class BotTurnOut(Schema):
    replies = fields.List(fields.Nested(ReplyOut), required=True)
    dialog = fields.Nested(DialogOut, required=True)


@blp.route("/bot/messages", methods=["POST"])
@person_required
@blp.doc(security=BEARER)
@blp.arguments(BotMessageIn)
@blp.response(200, BotTurnOut)
@refusals(blp, PERSON_AUTH, JSON_BODY, s400="TEXT_TOO_LONG（超过 500 字）、BOT_MESSAGE_EMPTY（text 与 option 须且只须有一个）",
          s409="BOT_BUSY：同一对话的上一条消息仍在处理（超过 5 秒）")
def post_message(data):
    """一轮对话: `{text}` 或 `{option}` → `{replies: [{text, options: [{label, value}]}], dialog}`; ID numbers
    masked. The dialog is per (login channel, person), lapses after 30 idle minutes; a binding in progress is
    kept 24 h as a draft (继续上次办理)."""
    try:
        turn = handle(current_person(), channels.api_channel(g.get("channel")), text=data.get("text"),
                      option=data.get("option"))
    except Busy:
        raise ApiError("BOT_BUSY", 409) from None
    return json_api.render(turn)
