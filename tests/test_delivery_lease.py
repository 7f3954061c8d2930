"""Deliveries at least once, deduplicated by the notification id: claimed as `sending` under a lease, sent outside any
transaction, recorded after; a crash between send and record is sent again after the lease, and recorded once."""
import datetime as dt
import threading
import time

import pytest
from rq.timeouts import JobTimeoutException
from sqlalchemy import event, select

from api.extensions import db, redis_client
from api.models import Delivery, Notification, new_id, utcnow
from api.notify import sms
from api.services import notifications
from tests import factories
from tests.fault_helpers import count, fresh
from tests.lifecycle_helpers import run_worker
from workers import jobs


@pytest.fixture
def wife(clean_app):
    factories.load_policies()
    return factories.person("李秀英", insurance_type="resident", balance_fen=None, phone="13912345678", male=False)


def notice(person) -> str:
    nid = new_id()
    db.session.add(Notification(id=nid, person_id=person.id, kind="binding_revoked", title="家庭共济已解除",
                                body="您的家庭共济关系已解除。", channel="sms"))
    db.session.commit()
    return nid


def provider_saw(channel: str = "sms") -> list[str]:
    """The dedup keys the simulated provider received, in order (one per send)."""
    return [k.decode() for k in redis_client().lrange(f"sim:sent:{channel}", 0, -1)]


def test_a_crash_between_send_and_record_is_sent_again_after_the_lease_with_the_same_key(client, wife, monkeypatch):
    nid = notice(wife)
    monkeypatch.setattr(notifications, "SENDING_LEASE", dt.timedelta(seconds=1))

    def crash(*args):
        raise RuntimeError("the worker died after the provider took the message")
    monkeypatch.setattr(notifications, "_record", crash)
    with pytest.raises(RuntimeError):
        notifications.deliver_many([nid])
    monkeypatch.undo()

    n = fresh().get(Notification, nid)
    assert (n.delivery_status, n.attempts) == ("sending", 1) and n.sending_until > utcnow()
    assert provider_saw() == [nid] and count(Delivery) == 0
    # while the lease lives, neither a job nor the sweeper sends it again
    assert jobs.deliver_notification(nid) == "sending"
    assert jobs.sweep(grace_seconds=0)["notifications_requeued"] == 0
    assert provider_saw() == [nid]

    time.sleep(1.1)  # the lease passes
    assert jobs.sweep(grace_seconds=0)["notifications_requeued"] == 1
    run_worker()
    n = fresh().get(Notification, nid)
    assert (n.delivery_status, n.attempts, n.sending_until) == ("sent", 2, None)
    assert provider_saw() == [nid, nid]  # at least once: sent again, with the same dedup key
    assert fresh().scalars(select(Delivery.notification_id)).all() == [nid]  # recorded once
    assert jobs.sweep(grace_seconds=0)["notifications_requeued"] == 0


def test_a_second_deliverer_leaves_a_row_held_under_a_live_lease(clean_app, wife, monkeypatch):
    nid = notice(wife)
    sending, release = threading.Event(), threading.Event()
    simulated_send = sms.send

    def slow_send(*args):
        sending.set()
        assert release.wait(20)
        return simulated_send(*args)
    monkeypatch.setattr(sms, "send", slow_send)

    first = {}

    def deliverer():
        with clean_app.app_context():
            first.update(notifications.deliver_many([nid]))
    thread = threading.Thread(target=deliverer)
    thread.start()
    try:
        assert sending.wait(20)  # the first deliverer is talking to the provider, the row claimed
        started = time.monotonic()
        assert notifications.deliver_many([nid]) == {nid: "sending"}
        assert time.monotonic() - started < 5  # no row lock is held while the provider is called
        assert fresh().get(Notification, nid).delivery_status == "sending"
    finally:
        release.set()
        thread.join(20)
    assert first == {nid: "sent"}
    assert provider_saw() == [nid] and count(Delivery) == 1


def test_a_batch_is_claimed_in_one_commit_and_recorded_in_another(clean_app, wife):
    ids = [notice(wife) for _ in range(3)]
    commits = []
    listener = lambda conn: commits.append(1)  # noqa: E731
    event.listen(db.engine, "commit", listener)
    try:
        assert notifications.deliver_many(ids) == {nid: "sent" for nid in ids}
    finally:
        event.remove(db.engine, "commit", listener)
    assert len(commits) == 2
    assert provider_saw() == ids and count(Delivery) == 3


def test_a_job_stopped_mid_batch_records_what_went_out_and_releases_the_rest(clean_app, wife, monkeypatch):
    first, second = notice(wife), notice(wife)
    simulated_send = sms.send

    def send(n, *args):
        if n.id == second:
            raise JobTimeoutException("the job's time is up")
        return simulated_send(n, *args)
    monkeypatch.setattr(sms, "send", send)
    with pytest.raises(JobTimeoutException):
        notifications.deliver_many([first, second])
    statuses = {nid: (status, attempts) for nid, status, attempts in fresh().execute(
        select(Notification.id, Notification.delivery_status, Notification.attempts))}
    assert statuses == {first: ("sent", 1), second: ("pending", 0)}
    assert count(Delivery) == 1


def test_a_record_after_the_lease_was_taken_over_does_not_record_twice(clean_app, wife, monkeypatch):
    """A deliverer slower than its lease: the row was claimed again meanwhile; only the current holder records it."""
    nid = notice(wife)
    monkeypatch.setattr(notifications, "SENDING_LEASE", dt.timedelta(seconds=-1))  # lapses at once
    simulated_send = sms.send
    nested = []

    def send(*args):
        if not nested:  # while the first deliverer is at the provider, a second one takes the lapsed row
            nested.append(None)
            nested[0] = notifications.deliver_many([nid])
        return simulated_send(*args)
    monkeypatch.setattr(sms, "send", send)
    assert notifications.deliver_many([nid]) == {nid: "sending"}
    assert nested == [{nid: "sent"}]
    assert provider_saw() == [nid, nid] and count(Delivery) == 1
    assert fresh().get(Notification, nid).delivery_status == "sent"
