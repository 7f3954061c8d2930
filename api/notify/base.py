"""What every notification adapter shares: its failures and the Delivery row it returns."""
from api.models import utcnow


class DeliveryFailed(Exception):
    """The channel refused or did not answer; the job retries later."""


class DeliveryRefused(DeliveryFailed):
    """The channel will never take this one (the person refused the subscription, no address on it): the
    notification is marked failed at once, without retries. It stays in the person's inbox."""


def delivery_record(notification, channel: str, recipient: str, payload: dict) -> dict:
    """The Delivery row of what was sent; the caller inserts the batch's rows in one statement (unique per
    notification: a second record of the same notification fails that commit)."""
    return {"notification_id": notification.id, "channel": channel, "recipient": recipient, "payload": payload,
            "sent_at": utcnow()}
