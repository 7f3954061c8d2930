"""The job functions RQ runs: each takes ids, reloads state and calls a service; each is safe to run twice."""
import datetime as dt
import functools
import logging

from rq.timeouts import BaseTimeoutException

from api.extensions import db
from api.jobs import NOTICES_DOORBELL, job_queue
from api.masking import mask_text
from api.notify import DeliveryFailed
from api.services import idempotency, materials, notifications, reviews, sweeper

log = logging.getLogger(__name__)


class JobFailed(RuntimeError):
    """What RQ keeps of a failed job (in Redis, for days): the error's type and masked text, nothing else; the
    traceback goes to the log, whose formatter masks it too. (A database error's text quotes its parameters.)"""


def _job(fn):
    """A job's frame: a session of its own, ended after the job; a failure recorded masked (see JobFailed)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except BaseTimeoutException:
            raise  # RQ's own: it knows what to do with it
        except Exception as exc:
            # a channel that failed this time (DeliveryFailed) is retried: no traceback needed
            log.warning("job %s failed: %s", fn.__name__, exc, exc_info=not isinstance(exc, DeliveryFailed))
            raise JobFailed(f"{type(exc).__name__}: {mask_text(str(exc))[:500]}") from None
        finally:
            db.session.remove()
    return wrapper


@_job
def review_application(application_id: str):
    return reviews.review(application_id)


@_job
def deliver_notification(notification_id: str):
    return notifications.deliver(notification_id)


@_job
def deliver_notifications(notification_ids: list):
    """Sends a batch (one transition's messages); a channel failure is retried by RQ, the sent ones are no-ops then."""
    statuses = notifications.deliver_many(notification_ids)
    if "retry" in statuses.values():
        raise DeliveryFailed("some notifications will be retried")
    return statuses


@_job
def drain_notices():
    """Woken by settlements (api.jobs.NOTICES_DOORBELL): the doorbell is cleared first, so a notice committed after
    this drain read what was pending rings again and wakes the next one."""
    job_queue().answer_door(NOTICES_DOORBELL)
    counts = notifications.drain()
    if counts.get("retry"):
        raise DeliveryFailed(f"{counts['retry']} notifications will be retried")
    return counts


def noop(i=None):
    """An empty job, for measuring the queue's own overhead (`make bench-review`)."""
    return i


@_job
def sweep(grace_seconds: int = 30) -> dict:
    """Reconciles the database with the queues: nothing pending is left without a job; and deletes uploads that
    no application took within a day, and Idempotency-Keys older than a day."""
    grace = dt.timedelta(seconds=grace_seconds)
    return {
        "reviews_requeued": sweeper.requeue_stuck(grace),
        "notifications_requeued": notifications.redeliver_pending(grace),
        "expired": sweeper.expire_overdue(),
        "orphan_materials_deleted": materials.sweep_orphans(),
        "idempotency_keys_forgotten": idempotency.forget_old(),
    }
