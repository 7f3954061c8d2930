"""Payment notices go out through one coalesced drain job (jobs.DRAIN_NOTICES), not a job per settlement: every
settlement rings a doorbell after its commit; the first ring since the last drain started enqueues the drain, the
others ride on it. Real RQ, real Redis, over HTTP."""
import datetime as dt

from sqlalchemy import select

from api import jobs
from api.extensions import db, redis_client
from api.models import Notification
from tests.lifecycle_helpers import run_worker
from tests.test_settlements import authorizer, bind, bill, patient, settle, world  # noqa: F401 (fixture)
from workers.queues import queue

DOORBELL_KEY = f"gongji:doorbell:{jobs.NOTICES_DOORBELL}"


def _queued_drains() -> list[str]:
    return [job_id for job_id in queue(jobs.NOTIFICATIONS).job_ids if job_id.startswith(jobs.NOTICES_DOORBELL)]


def _payment_notices() -> list[Notification]:
    db.session.rollback()
    return list(db.session.scalars(select(Notification).where(Notification.kind == "family_payment")
                                   .order_by(Notification.created_at)))


def test_many_settlements_wake_one_drain_that_sends_every_notice(client, world):
    payers = []
    for n in range(3):
        p = patient(name=f"共济人{n}")
        a = authorizer(f"授权人{n}")
        bind(a, p)
        payers.append((p, a))
    for p, _ in payers:
        assert settle(client, world["gz"], bill(p, [1000])).status_code == 201
    assert len(_queued_drains()) == 1  # three rings, one job
    assert redis_client().exists(DOORBELL_KEY)
    assert {n.delivery_status for n in _payment_notices()} == {"pending"}

    run_worker()
    notices = _payment_notices()
    assert len(notices) == 3 and {n.delivery_status for n in notices} == {"sent"}
    assert {n.person_id for n in notices} == {a.id for _, a in payers}
    assert not redis_client().exists(DOORBELL_KEY) and _queued_drains() == []

    p, a = payers[0]  # after a drain, the next settlement rings again
    assert settle(client, world["gz"], bill(p, [500])).status_code == 201
    assert len(_queued_drains()) == 1
    run_worker()
    assert [n.delivery_status for n in _payment_notices()] == ["sent"] * 4


def test_a_ring_after_the_drain_read_the_table_wakes_another(client, world):
    """The drain clears the doorbell before it reads what is pending: a notice committed after that read rings a
    doorbell that is no longer rung, and gets a drain of its own."""
    p, a = patient(name="先到"), authorizer("先到父")
    bind(a, p)
    assert settle(client, world["gz"], bill(p, [1000])).status_code == 201
    assert len(_queued_drains()) == 1
    redis_client().delete(DOORBELL_KEY)  # as the drain does first thing, before it has run
    q, b = patient(name="后到"), authorizer("后到父")
    bind(b, q)
    assert settle(client, world["gz"], bill(q, [1000])).status_code == 201
    assert len(_queued_drains()) == 2
    run_worker()
    assert [n.delivery_status for n in _payment_notices()] == ["sent", "sent"]


def test_a_notice_left_sending_by_a_dead_drainer_is_sent_by_the_next_drain(client, world):
    from api.services import notifications
    p, a = patient(name="患者"), authorizer("患者父")
    bind(a, p)
    assert settle(client, world["gz"], bill(p, [1000])).status_code == 201
    notice = _payment_notices()[0]
    notice.delivery_status, notice.sending_until = "sending", dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5)
    db.session.commit()
    assert notifications.drain() == {}  # under another's live lease: left alone
    notice = _payment_notices()[0]
    notice.sending_until = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    db.session.commit()
    assert notifications.drain() == {"sent": 1}
    assert _payment_notices()[0].delivery_status == "sent"
