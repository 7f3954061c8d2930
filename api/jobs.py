"""The background jobs services ask for, and the one small interface they enqueue them through.

Services name a job by the dotted path of its function in `workers.jobs`; the queue behind `job_queue()` (RQ,
see `workers.queues.RQJobQueue`) is set by `create_app`, so services never import the workers.
"""
from __future__ import annotations

import datetime as dt
from typing import Protocol

from flask import current_app

from api.settings import env_int

REVIEWS = "reviews"
NOTIFICATIONS = "notifications"
QUEUES = (REVIEWS, NOTIFICATIONS)

REVIEW_APPLICATION = "workers.jobs.review_application"
DELIVER_NOTIFICATION = "workers.jobs.deliver_notification"
DELIVER_NOTIFICATIONS = "workers.jobs.deliver_notifications"
DRAIN_NOTICES = "workers.jobs.drain_notices"
NOTICES_DOORBELL = "notices"  # rung by each settlement; the drain job it wakes sends every pending payment notice

JOB_TIMEOUT = 30  # seconds; reviews and deliveries take milliseconds
# A job still "started" this long after it began has lost its worker (killed, machine gone): run it again.
# It is also the review lease. GONGJI_STALE_AFTER_SECONDS shortens it only for the fault tests (tests/test_faults.py);
# in production it must stay above JOB_TIMEOUT, or a slow live job would be run a second time.
STALE_AFTER = dt.timedelta(seconds=env_int("GONGJI_STALE_AFTER_SECONDS", JOB_TIMEOUT + 15))


class JobQueue(Protocol):
    def enqueue(self, queue: str, func: str, job_id: str, *args) -> bool:
        """Enqueues `func(*args)` once per `job_id`; False when the queue cannot take it (the sweeper retries)."""

    def discard_queued(self, queue: str, job_ids: list[str]) -> int:
        """Drops jobs still waiting whose work was done another way; returns how many."""

    def wake(self, queue: str, func: str, doorbell: str) -> bool:
        """Enqueues `func()` unless a job this doorbell woke has not started yet (it clears the doorbell first
        thing, then reads what is pending: what was committed before the ring is seen by it); False when the
        queue cannot take it (the sweeper sends what is left)."""

    def answer_door(self, doorbell: str) -> None:
        """Clears the doorbell: the woken job calls it before it reads what is pending."""


def job_queue() -> JobQueue:
    return current_app.extensions["job_queue"]


def enqueue(queue: str, func: str, job_id: str, *args) -> bool:
    return job_queue().enqueue(queue, func, job_id, *args)


def wake(queue: str, func: str, doorbell: str) -> bool:
    return job_queue().wake(queue, func, doorbell)
