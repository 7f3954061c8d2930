"""The WeChat official-account protocol (公众号消息接口), as WeChat documents it: the URL signature, the XML
messages and passive replies, and 安全模式 (AES-256-CBC with the EncodingAESKey, PKCS#7 to 32-byte blocks,
plaintext = 16 random bytes + 4-byte network-order length + message + appid; msg_signature = SHA1 of the sorted
token, timestamp, nonce and Encrypt)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
import time

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from api.masking import mask_text
from bot.dialog import Turn

MAX_BODY = 64 * 1024         # a text message is at most 2,048 bytes; an encrypted one about 4/3 of that
BLOCK = 32                   # WeChat pads to 32 bytes, not AES's 16


class ProtocolError(ValueError):
    """A body that is not a WeChat message (bad XML, a DTD or entity, bad encryption, another appid)."""


def signature(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def signature_ok(expected: str | None, *parts: str) -> bool:
    return bool(expected) and hmac.compare_digest(signature(*parts), expected)


def parse(xml: bytes | str) -> dict[str, str]:
    """The message's fields (ToUserName, FromUserName, CreateTime, MsgType, Content, MsgId, Event, EventKey,
    Encrypt …); DTDs, entities and external references are refused."""
    try:
        root = ElementTree.fromstring(xml, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ElementTree.ParseError, DefusedXmlException, ValueError) as exc:
        raise ProtocolError(f"not a WeChat XML message: {type(exc).__name__}") from None
    if root.tag != "xml":
        raise ProtocolError("root element is not <xml>")
    return {child.tag: (child.text or "") for child in root}


def _cdata(text: str) -> str:
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def text_reply(to_user: str, from_user: str, content: str, now: int | None = None) -> str:
    """A passive text reply (被动回复文本消息)."""
    return (f"<xml><ToUserName>{_cdata(to_user)}</ToUserName><FromUserName>{_cdata(from_user)}</FromUserName>"
            f"<CreateTime>{now or int(time.time())}</CreateTime><MsgType>{_cdata('text')}</MsgType>"
            f"<Content>{_cdata(content)}</Content></xml>")


def render(turn: Turn) -> str:
    """A turn as one chat message: the replies' texts, then the options numbered (reply with the number)."""
    lines = [r.text for r in turn.replies]
    options = [o for r in turn.replies for o in r.options]
    if options:
        lines.append("回复数字选择：\n" + "\n".join(f"{n}. {o.label}" for n, o in enumerate(options, 1)))
    return mask_text("\n\n".join(lines))


class Crypto:
    """安全模式 of one official account: the token, the 43-character EncodingAESKey and the appid."""

    def __init__(self, token: str, encoding_aes_key: str, appid: str):
        try:
            key = base64.b64decode(encoding_aes_key + "=", validate=True)
        except ValueError:
            key = b""
        if len(encoding_aes_key) != 43 or len(key) != 32:
            raise ValueError("WECHAT_AES_KEY must be the 43-character EncodingAESKey")
        self.token, self.key, self.iv, self.appid = token, key, key[:16], appid.encode()

    def _cipher(self) -> Cipher:
        return Cipher(algorithms.AES(self.key), modes.CBC(self.iv))

    def decrypt(self, encrypted: str) -> bytes:
        try:
            data = base64.b64decode(encrypted, validate=True)
        except ValueError:
            raise ProtocolError("Encrypt is not base64") from None
        if not data or len(data) % 16:
            raise ProtocolError("Encrypt is not whole AES blocks")
        decryptor = self._cipher().decryptor()
        plain = decryptor.update(data) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise ProtocolError("bad padding")
        plain = plain[:-pad]
        if len(plain) < 20:
            raise ProtocolError("too short")
        (length,) = struct.unpack(">I", plain[16:20])
        message, appid = plain[20:20 + length], plain[20 + length:]
        if len(message) != length or not hmac.compare_digest(appid, self.appid):
            raise ProtocolError("another appid")
        return message

    def encrypt(self, message: str) -> str:
        body = message.encode()
        plain = os.urandom(16) + struct.pack(">I", len(body)) + body + self.appid
        pad = BLOCK - len(plain) % BLOCK
        plain += bytes([pad]) * pad
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()

    def encrypted_reply(self, reply_xml: str, nonce: str, timestamp: str | None = None) -> str:
        timestamp = timestamp or str(int(time.time()))
        encrypted = self.encrypt(reply_xml)
        return (f"<xml><Encrypt>{_cdata(encrypted)}</Encrypt>"
                f"<MsgSignature>{_cdata(signature(self.token, timestamp, nonce, encrypted))}</MsgSignature>"
                f"<TimeStamp>{timestamp}</TimeStamp><Nonce>{_cdata(nonce)}</Nonce></xml>")
