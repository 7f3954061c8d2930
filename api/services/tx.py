"""The unit of work: one database transaction, and the jobs and notices that go out once it has committed."""
from __future__ import annotations

import functools
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

from sqlalchemy import event

from api import jobs
from api.extensions import db, writing

_KEY = "unit_of_work"  # where a session keeps the unit it is running


@dataclass(frozen=True)
class Job:
    queue: str
    func: str
    job_id: str
    args: tuple


class UnitOfWork:
    """What a service call runs in (一次业务办理的事务): it owns the transaction, and collects the jobs to enqueue
    and the notices to deliver after the commit, so that no job ever names a row that is not committed yet.

    A crash after the commit loses nothing: the rows are committed as pending, and the sweeper finds them.
    """

    def __init__(self) -> None:
        self.jobs: list[Job] = []
        self.notices: list[str] = []  # ids of notifications to deliver, in order
        self.drain = False            # payment notices written: wake the drain (jobs.DRAIN_NOTICES)

    def enqueue_after_commit(self, queue: str, func: str, job_id: str, *args) -> None:
        self.jobs.append(Job(queue, func, job_id, args))

    def deliver_after_commit(self, notification_ids: list[str]) -> None:
        self.notices.extend(notification_ids)

    def drain_after_commit(self) -> None:
        """The unit wrote payment notices (the busiest kind): they go out with every other pending one of their
        kind, in one drain job however many units ring for it meanwhile, instead of a job each."""
        self.drain = True

    def hand_notices_to_job(self) -> None:
        """The notices collected so far are sent by a job this unit enqueues (a review job sends its application's
        受理 notices first thing): one job, not two."""
        self.notices.clear()

    def _dispatch(self) -> None:
        for job in self.jobs:
            jobs.enqueue(job.queue, job.func, job.job_id, *job.args)
        if self.drain:
            jobs.wake(jobs.NOTIFICATIONS, jobs.DRAIN_NOTICES, jobs.NOTICES_DOORBELL)
        if self.notices:
            # named after the newest: an older pending notice sent along may have a job of its own,
            # `notify-<id>`, and a job of that name would be taken for this one and dropped
            jobs.enqueue(jobs.NOTIFICATIONS, jobs.DELIVER_NOTIFICATIONS, f"notify-batch-{self.notices[-1]}",
                         list(self.notices))


def current() -> UnitOfWork:
    """The unit of work the session is running; services that write call this inside one."""
    unit = db.session().info.get(_KEY)
    if unit is None:
        raise RuntimeError("no unit of work: wrap the service call in `unit_of_work()`")
    return unit


@contextmanager
def unit_of_work() -> Iterator[UnitOfWork]:
    """Runs the block in a unit of work: the outermost commits and then dispatches; nested ones join it."""
    session = db.session()
    if (outer := session.info.get(_KEY)) is not None:
        yield outer
        return
    with _running(session) as unit:
        try:
            with writing():
                yield unit
                session.commit()
        except BaseException:
            session.rollback()
            raise
    unit._dispatch()


@contextmanager
def _running(session) -> Iterator[UnitOfWork]:
    """A new unit, the session's while the block runs."""
    unit = session.info[_KEY] = UnitOfWork()
    try:
        yield unit
    finally:
        session.info.pop(_KEY, None)


def in_unit() -> bool:
    return _KEY in db.session().info


def transactional(fn):
    """A service function that runs in a unit of work of its own (or joins the caller's)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with unit_of_work():
            return fn(*args, **kwargs)
    return wrapper


# --- a unit inside a transaction the caller owns ----------------------------------------------------------------

_DEFERRED = "units_after_commit"


@contextmanager
def within_callers_transaction() -> Iterator[UnitOfWork]:
    """A unit of work for a block of a transaction that its caller begins and commits (a registry import's file):
    services called in the block notify and enqueue as in any unit, and what they collected goes out after that
    transaction's commit — nothing after a rollback. Inside a running unit, the block joins it."""
    session = db.session()
    if (outer := session.info.get(_KEY)) is not None:
        yield outer
        return
    with _running(session) as unit:
        yield unit
    if not session.info.get("dispatch_after_commit_hooked"):
        event.listen(session, "after_commit", _dispatch_deferred)
        event.listen(session, "after_rollback", _drop_deferred)
        session.info["dispatch_after_commit_hooked"] = True
    session.info.setdefault(_DEFERRED, []).append(unit)


def _dispatch_deferred(session) -> None:
    for unit in session.info.pop(_DEFERRED, []):
        unit._dispatch()


def _drop_deferred(session) -> None:
    session.info.pop(_DEFERRED, None)
