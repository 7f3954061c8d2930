"""The WeChat official-account endpoint (/channels/wechat): server verification and messages, in plaintext mode
and in 安全模式 (AES); the protocol is bot/channels/wechat.py, the conversation bot/official_account.py."""
import time

from flask import Blueprint, Response, current_app, request

from api.errors import ApiError
from bot.channels import wechat
from bot.official_account import reply_for

bp = Blueprint("wechat_channel", __name__)
MAX_CLOCK_SKEW_SECONDS = 300  # a signed request older than this is a replay, not a delivery


def _token() -> str:
    return current_app.config["WECHAT_TOKEN"]


def _crypto() -> wechat.Crypto:
    config = current_app.config
    if not config.get("WECHAT_AES_KEY") or not config.get("WECHAT_APPID"):
        raise ApiError("INVALID_INPUT", 400, "encrypt_type", "本服务未配置安全模式（WECHAT_AES_KEY、WECHAT_APPID）")
    return wechat.Crypto(_token(), config["WECHAT_AES_KEY"], config["WECHAT_APPID"])


def _forbidden() -> ApiError:
    return ApiError("BAD_SIGNATURE", 403)


@bp.get("/channels/wechat")
def verify():
    """服务器配置校验: echoes echostr when the signature is WeChat's."""
    args = request.args
    if not wechat.signature_ok(args.get("signature"), _token(), args.get("timestamp", ""), args.get("nonce", "")):
        raise _forbidden()
    return Response(args.get("echostr", ""), mimetype="text/plain")


@bp.post("/channels/wechat")
def receive():
    """A text or event message → the bot's passive reply (encrypted when the message was)."""
    if (request.content_length or 0) > wechat.MAX_BODY:
        raise ApiError("PAYLOAD_TOO_LARGE", 413)
    body = request.stream.read(wechat.MAX_BODY + 1)
    if len(body) > wechat.MAX_BODY:
        raise ApiError("PAYLOAD_TOO_LARGE", 413)
    args = request.args
    timestamp, nonce = args.get("timestamp", ""), args.get("nonce", "")
    aes = args.get("encrypt_type") == "aes"
    try:
        if aes:
            crypto = _crypto()
            encrypted = wechat.parse(body).get("Encrypt", "")
            if not encrypted or not wechat.signature_ok(args.get("msg_signature"), _token(), timestamp, nonce,
                                                        encrypted):
                raise _forbidden()
            message = wechat.parse(crypto.decrypt(encrypted))
        else:
            if not wechat.signature_ok(args.get("signature"), _token(), timestamp, nonce):
                raise _forbidden()
            message = wechat.parse(body)
    except wechat.ProtocolError:
        raise ApiError("INVALID_INPUT", 400, msg="不是有效的微信消息") from None
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > MAX_CLOCK_SKEW_SECONDS:
        raise _forbidden()
    if not message.get("FromUserName"):
        raise ApiError("INVALID_INPUT", 400, msg="不是有效的微信消息")
    content = reply_for(message)
    if content is None:
        return Response("success", mimetype="text/plain")
    xml = wechat.text_reply(message["FromUserName"], message.get("ToUserName", ""), content)
    if aes:
        xml = crypto.encrypted_reply(xml, nonce)
    return Response(xml, mimetype="application/xml")
