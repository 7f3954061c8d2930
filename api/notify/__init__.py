"""Notification channel adapters behind one interface: `send(notification, person, user_id, dedup_key) -> dict` (a
Delivery row), where user_id is the person's id on that channel (his openid; None for SMS, which goes to his phone)
and dedup_key (the notification id) is the same on every attempt to send that notification.

`CHANNEL_ADAPTERS` chooses the set. The simulated adapters return the record of what they would send instead of
calling the platform; the real WeChat one calls it (`wechat.py`). A channel whose real adapter is not written yet
(Alipay, SMS) refuses with `real`, so those notifications are marked failed and stay in the inbox.
"""
from flask import current_app

from api.notify import alipay, sms, wechat
from api.notify.base import DeliveryFailed, DeliveryRefused

__all__ = ["DeliveryFailed", "DeliveryRefused", "adapter_for"]

ADAPTERS = {"wechat": wechat, "alipay": alipay, "sms": sms}
REAL_ADAPTERS = {"wechat": wechat.real}


class NotOpen:
    """A channel with no real adapter yet: nothing is sent, nothing retried."""

    def __init__(self, channel: str):
        self.channel = channel

    def send(self, notification, person, user_id, dedup_key):
        raise DeliveryRefused(f"no real {self.channel} adapter")


def adapter_for(channel: str):
    if current_app.config["CHANNEL_ADAPTERS"] == "real":
        return REAL_ADAPTERS.get(channel) or NotOpen(channel)
    return ADAPTERS[channel]
