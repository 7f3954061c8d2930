"""The job functions RQ runs: each takes ids, reloads state and calls a service; each is safe to run twice."""
import datetime as dt

from api.extensions import db


def _fresh_session(fn):
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        finally:
            db.session.remove()
    wrapper.__name__ = fn.__name__
    return wrapper


@_fresh_session
def review_application(application_id: str):
    from api.services import applications
    return applications.review(application_id)


@_fresh_session
def deliver_notification(notification_id: str):
    from api.services import notifications
    return notifications.deliver(notification_id)


@_fresh_session
def deliver_notifications(notification_ids: list):
    """Sends a batch (one transition's messages); a channel failure is retried by RQ, the sent ones are no-ops then."""
    from api.notify import DeliveryFailed
    from api.services import notifications
    statuses = notifications.deliver_many(notification_ids)
    if "retry" in statuses.values():
        raise DeliveryFailed("some notifications will be retried")
    return statuses


def noop(i=None):
    """An empty job, for measuring the queue's own overhead (`make bench-review`)."""
    return i


@_fresh_session
def sweep(grace_seconds: int = 30) -> dict:
    """Reconciles the database with the queues: nothing pending is left without a job."""
    from api.services import applications, notifications
    grace = dt.timedelta(seconds=grace_seconds)
    return {
        "reviews_requeued": applications.requeue_stuck(grace),
        "notifications_requeued": notifications.redeliver_pending(grace),
        "expired": applications.expire_overdue(),
    }
