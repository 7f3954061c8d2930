"""Alipay mini-program message (小程序消息), simulated: what would go to the person's Alipay user id."""
from api.notify import _simulated


def send(notification, person, user_id: str | None, dedup_key: str | None = None):
    _simulated.fail_if_asked("alipay")
    payload = {"to_user_id": user_id, "title": notification.title, "content": notification.body}
    return _simulated.record(notification, "alipay", user_id or "", payload, dedup_key)
