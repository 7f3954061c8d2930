"""Notification channel adapters behind one interface: `send(notification, person, user_id) -> dict` (a Delivery
row), where user_id is the person's id on that channel (his openid; None for SMS, which goes to his phone).

The adapters here are simulated: each returns the record of what it would send (the caller inserts it in its
transaction, unique per notification) instead of calling the platform. A real adapter keeps the same signature.
"""
from api.notify import alipay, sms, wechat

ADAPTERS = {"wechat": wechat, "alipay": alipay, "sms": sms}


class DeliveryFailed(Exception):
    """The channel refused or did not answer; the job retries later."""


def adapter_for(channel: str):
    return ADAPTERS[channel]
