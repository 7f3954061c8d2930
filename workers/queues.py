"""The RQ queues (JSON serializer) behind `api.jobs.JobQueue`: idempotent enqueueing by job id."""
from __future__ import annotations

import datetime as dt
import logging
import uuid

from redis.exceptions import RedisError
from rq import Queue, Retry
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from api.extensions import redis_client
from api.jobs import JOB_TIMEOUT, NOTIFICATIONS, QUEUES, REVIEWS, STALE_AFTER  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

RETRY = Retry(max=3, interval=[5, 30, 120])


def queue(name: str) -> Queue:
    return Queue(name, connection=redis_client(), serializer=JSONSerializer, default_timeout=JOB_TIMEOUT)


def enqueue(queue_name: str, func: str, job_id: str, *args) -> bool:
    """Enqueues `func(*args)` once per `job_id`; returns False (and logs) when Redis cannot take it.

    A lost enqueue is not lost work: the database row stays in its pending state and the sweeper
    (`workers.jobs.sweep`) enqueues it again.
    """
    try:
        q = queue(queue_name)
        try:  # a new id, the common case: one atomic check-and-save
            q.enqueue(func, *args, job_id=job_id, unique=True, retry=RETRY, result_ttl=300, failure_ttl=7 * 86400)
            return True
        except DuplicateJobError:
            pass
        try:
            existing = Job.fetch(job_id, connection=q.connection, serializer=JSONSerializer)
        except NoSuchJobError:  # gone meanwhile (its result expired)
            existing = None
        if existing is not None:
            status = existing.get_status(refresh=False)
            if status in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED):
                return True
            if status == JobStatus.STARTED and existing.started_at and dt.datetime.now(dt.timezone.utc) - \
                    existing.started_at.replace(tzinfo=dt.timezone.utc) < STALE_AFTER:
                return True
            # finished, failed, or abandoned by a dead worker: the database says there is work again
            existing.delete()
        q.enqueue(func, *args, job_id=job_id, unique=True, retry=RETRY, result_ttl=300, failure_ttl=7 * 86400)
        return True
    except DuplicateJobError:  # a concurrent enqueue of the same id won
        return True
    except (RedisError, OSError) as exc:
        log.warning("enqueue %s failed: %s; the sweeper will retry", job_id, type(exc).__name__)
        return False


# Removes each queued job (and its hash) that no worker has taken yet; a job already taken is left alone.
_DISCARD = """
local removed = 0
for i, job_id in ipairs(ARGV) do
  if redis.call('LREM', KEYS[1], 0, job_id) > 0 then
    redis.call('DEL', 'rq:job:' .. job_id)
    removed = removed + 1
  end
end
return removed
"""


def discard_queued(queue_name: str, job_ids: list[str]) -> int:
    """Drops still-queued jobs whose work was done another way (a review batch took their applications).

    Only an optimisation: a job already taken by a worker, or one this fails to drop, runs and finds nothing to do.
    """
    if not job_ids:
        return 0
    try:
        q = queue(queue_name)
        return q.connection.register_script(_DISCARD)(keys=[q.key], args=job_ids)
    except (RedisError, OSError) as exc:
        log.warning("could not drop %d redundant jobs: %s", len(job_ids), type(exc).__name__)
        return 0


# A doorbell left rung by a job that never ran (a lost enqueue, a crash) stops ringing after this; meanwhile the
# sweeper sends what is pending.
DOORBELL_TTL_SECONDS = 60


def wake(queue_name: str, func: str, doorbell: str) -> bool:
    """Coalesced wake-ups (a transactionally staged drain): one job for any number of rings until it starts."""
    try:
        if not redis_client().set(f"gongji:doorbell:{doorbell}", "1", nx=True, ex=DOORBELL_TTL_SECONDS):
            return True  # a woken job has not started yet: it will read what this ring's commit wrote
    except (RedisError, OSError) as exc:
        log.warning("doorbell %s failed: %s; the sweeper will send", doorbell, type(exc).__name__)
        return False
    return enqueue(queue_name, func, f"{doorbell}-{uuid.uuid4().hex}")


def answer_door(doorbell: str) -> None:
    redis_client().delete(f"gongji:doorbell:{doorbell}")


class RQJobQueue:
    """`api.jobs.JobQueue` on RQ; `create_app` installs it."""

    def wake(self, queue_name: str, func: str, doorbell: str) -> bool:
        return wake(queue_name, func, doorbell)

    def answer_door(self, doorbell: str) -> None:
        answer_door(doorbell)

    def enqueue(self, queue_name: str, func: str, job_id: str, *args) -> bool:
        return enqueue(queue_name, func, job_id, *args)

    def discard_queued(self, queue_name: str, job_ids: list[str]) -> int:
        return discard_queued(queue_name, job_ids)
