"""The unit of work: jobs and notices go out after its commit and never after a rollback; nested units join."""
import pytest
from sqlalchemy import func, select

from api import jobs
from api.extensions import db, redis_client
from api.models import Notification
from api.services import notifications, tx
from tests import factories


class _Recorder:
    """A job queue that records what it is asked, and whether the unit's rows were committed by then."""

    def __init__(self):
        self.calls = []

    def enqueue(self, queue, function, job_id, *args):
        committed = db.session.scalar(select(func.count()).select_from(Notification))  # a fresh transaction
        db.session.rollback()
        self.calls.append((queue, function, job_id, args, committed))
        return True

    def discard_queued(self, queue, job_ids):
        return 0


@pytest.fixture
def recorder(clean_app, monkeypatch):
    rec = _Recorder()
    monkeypatch.setitem(clean_app.extensions, "job_queue", rec)
    return rec


def test_jobs_and_notices_are_sent_after_the_commit(recorder):
    person = factories.person("王建国")
    with tx.unit_of_work() as unit:
        n = notifications.notify(person, "binding_revoked", "标题", "内容")
        unit.enqueue_after_commit(jobs.REVIEWS, jobs.REVIEW_APPLICATION, "review-x", "x")
        assert recorder.calls == []  # nothing leaves before the commit
    assert [c[:4] for c in recorder.calls] == [
        (jobs.REVIEWS, jobs.REVIEW_APPLICATION, "review-x", ("x",)),
        (jobs.NOTIFICATIONS, jobs.DELIVER_NOTIFICATIONS, f"notify-batch-{n.id}", ([n.id],))]
    assert all(committed == 1 for *_, committed in recorder.calls)  # the rows they name were committed


def test_a_rollback_sends_nothing_and_writes_nothing(recorder):
    person = factories.person("王建国")
    with pytest.raises(RuntimeError):
        with tx.unit_of_work() as unit:
            notifications.notify(person, "binding_revoked", "标题", "内容")
            unit.enqueue_after_commit(jobs.REVIEWS, jobs.REVIEW_APPLICATION, "review-x", "x")
            raise RuntimeError("boom")
    assert recorder.calls == []
    assert db.session.scalar(select(func.count()).select_from(Notification)) == 0
    assert not tx.in_unit()


def test_a_nested_unit_joins_the_outer_one(recorder):
    person = factories.person("王建国")
    with tx.unit_of_work() as outer:
        with tx.unit_of_work() as inner:
            assert inner is outer
            notifications.notify(person, "binding_revoked", "一", "内容")
        assert recorder.calls == []  # the inner block does not commit or dispatch
        notifications.notify(person, "binding_revoked", "二", "内容")
    ((*_, args, committed),) = recorder.calls  # one delivery job for both notices
    assert len(args[0]) == 2 and committed == 2


def test_notices_handed_to_a_job_are_not_sent_twice(recorder):
    person = factories.person("王建国")
    with tx.unit_of_work() as unit:
        notifications.notify(person, "binding_revoked", "标题", "内容")
        unit.hand_notices_to_job()
    assert recorder.calls == []


def test_writing_outside_a_unit_is_refused():
    with pytest.raises(RuntimeError):
        tx.current()


def test_services_enqueue_on_the_real_queue_after_commit(clean_app):
    """Through RQ: the job the unit asked for is in Redis after the commit."""
    with tx.unit_of_work() as unit:
        unit.enqueue_after_commit(jobs.REVIEWS, "workers.jobs.noop", "noop-uow-test", 1)
        assert not redis_client().exists("rq:job:noop-uow-test")
    assert redis_client().exists("rq:job:noop-uow-test")
