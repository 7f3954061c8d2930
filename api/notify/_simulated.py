"""What the simulated adapters share: failure injection through Redis, and recording the delivery."""
from flask import current_app

from api.extensions import redis_client
from api.models import utcnow


def fail_if_asked(channel: str) -> None:
    """With SIMULATED_CHANNEL_FAULTS on (the tests), a channel fails N times once the Redis counter
    `sim:fail:<channel>` (shared by processes) is set to N. Off, as in `make run`, it costs no round trip."""
    if not current_app.config["SIMULATED_CHANNEL_FAULTS"]:
        return
    from api.notify import DeliveryFailed
    key = f"sim:fail:{channel}"
    if redis_client().exists(key) and redis_client().decr(key) >= 0:
        raise DeliveryFailed(f"simulated {channel} outage")


def record(notification, channel: str, recipient: str, payload: dict) -> dict:
    """The Delivery row of what was "sent"; the caller inserts the batch's rows in one statement (unique per
    notification: a second send would fail the commit, not reach anyone)."""
    return {"notification_id": notification.id, "channel": channel, "recipient": recipient, "payload": payload,
            "sent_at": utcnow()}
