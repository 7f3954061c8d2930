"""What the simulated adapters share: failure injection through Redis, a log of the sends, recording the delivery."""
from flask import current_app

from api.extensions import redis_client
from api.notify.base import DeliveryFailed, delivery_record


def fail_if_asked(channel: str) -> None:
    """With SIMULATED_CHANNEL_FAULTS on (the tests), a channel fails N times once the Redis counter
    `sim:fail:<channel>` (shared by processes) is set to N. Off, as in `make run`, it costs no round trip."""
    if not current_app.config["SIMULATED_CHANNEL_FAULTS"]:
        return
    key = f"sim:fail:{channel}"
    if redis_client().exists(key) and redis_client().decr(key) >= 0:
        raise DeliveryFailed(f"simulated {channel} outage")


def record(notification, channel: str, recipient: str, payload: dict, dedup_key: str | None = None) -> dict:
    """The Delivery row of what was "sent". With SIMULATED_CHANNEL_FAULTS on, the platform's side is kept too: each
    send's dedup key is appended to `sim:sent:<channel>`, so tests see what reached the platform, and how often."""
    if current_app.config["SIMULATED_CHANNEL_FAULTS"]:
        redis_client().rpush(f"sim:sent:{channel}", dedup_key or notification.id)
    return delivery_record(notification, channel, recipient, payload)
