"""WeChat subscribe message (订阅消息), simulated: the template message that would go to the person's openid."""
from api.notify import _simulated

TEMPLATE_ID = "FAMILY_MUTUAL_AID_STATUS"


def send(notification, person, openid: str | None):
    _simulated.fail_if_asked("wechat")
    payload = {"touser": openid, "template_id": TEMPLATE_ID,
               "data": {"thing1": {"value": _fit(notification.title)}, "thing2": {"value": _fit(notification.body)}},
               "page": f"pages/notifications/detail?id={notification.id}"}  # the whole text, one tap away
    return _simulated.record(notification, "wechat", openid or "", payload)


def _fit(text: str, limit: int = 20) -> str:
    """A subscribe message's `thing` holds 20 characters: a longer text visibly ends in …, not mid-word."""
    return text if len(text) <= limit else text[:limit - 1] + "…"
