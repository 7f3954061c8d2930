"""Notification channel adapters behind one interface: `send(notification, person) -> dict` (a Delivery row).

The adapters here are simulated: each returns the record of what it would send (the caller inserts it in its
transaction, unique per notification) instead of calling the platform. A real adapter keeps the same signature.
"""
from api.notify import alipay, sms, wechat

ADAPTERS = {"wechat": wechat, "alipay": alipay, "sms": sms}


class DeliveryFailed(Exception):
    """The channel refused or did not answer; the job retries later."""


def adapter_for(channel: str):
    return ADAPTERS[channel]
