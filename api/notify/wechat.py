"""WeChat subscribe message (订阅消息): the message shaped once, sent by a simulated adapter or the real one."""
import logging

from flask import current_app
from redis.exceptions import RedisError

from api import wechat_api
from api.notify import _simulated
from api.notify.base import DeliveryFailed, DeliveryRefused, delivery_record

log = logging.getLogger(__name__)

TEMPLATE_ID = "FAMILY_MUTUAL_AID_STATUS"  # the simulated one's; the real one is WECHAT_TEMPLATE_ID
SEND_PATH = "/cgi-bin/message/subscribe/send"
USER_REFUSED = 43101  # the person has not accepted (or has used up) a subscription to this template


def subscribe_message(notification, openid: str | None) -> dict:
    """The body of POST /cgi-bin/message/subscribe/send: title and text cut to fit, the whole text one tap away."""
    return {"touser": openid, "template_id": current_app.config.get("WECHAT_TEMPLATE_ID") or TEMPLATE_ID,
            "page": f"pages/notifications/detail?id={notification.id}",
            "data": {"thing1": {"value": _fit(notification.title)}, "thing2": {"value": _fit(notification.body)}}}


def _fit(text: str, limit: int = 20) -> str:
    """A subscribe message's `thing` holds 20 characters: a longer text visibly ends in …, not mid-word."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def send(notification, person, openid: str | None, dedup_key: str | None = None):
    """Simulated: the message that would go to the person's openid."""
    _simulated.fail_if_asked("wechat")
    return _simulated.record(notification, "wechat", openid or "", subscribe_message(notification, openid), dedup_key)


class RealSender:
    """Sends through WeChat. Its API takes no idempotency key: the dedup key (the notification id) goes to the log
    with each send, and our side sends a notification again only after a crash between send and record."""

    def send(self, notification, person, openid: str | None, dedup_key: str):
        if not openid:
            raise DeliveryRefused("no WeChat openid for this person")
        message = subscribe_message(notification, openid)
        try:
            wechat_api.call_with_token("POST", SEND_PATH, message)
        except wechat_api.WeChatError as exc:
            if exc.errcode == USER_REFUSED:
                raise DeliveryRefused(f"wechat {exc}") from None
            raise DeliveryFailed(f"wechat {exc}") from None
        except (wechat_api.WeChatUnavailable, RedisError) as exc:
            raise DeliveryFailed(f"wechat unavailable: {exc}") from None
        log.info("wechat subscribe message sent for notification %s", dedup_key)
        return delivery_record(notification, "wechat", openid, message)


real = RealSender()
