"""Notifications (F5): written in the same transaction as the change they report, delivered by a job, exactly once."""
from __future__ import annotations

import datetime as dt
import logging

from rq.timeouts import BaseTimeoutException
from sqlalchemy import insert, select, update

from api.errors import not_found
from api.extensions import db, writing
from api.models import ChannelAccount, Delivery, Notification, Person, new_id, utcnow
from api.notify import DeliveryFailed, adapter_for
from api.jobs import NOTIFICATIONS, enqueue
from api.services import tx
from api.services.tx import unit_of_work

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
# The channel a notification goes out on follows the mini-program the person uses; others get an SMS.
CHANNEL_OF_LOGIN = {"wechat": "wechat", "alipay": "alipay"}


def channel_for(person: Person) -> str:
    return channels_for([person])[person.id]


def channels_for(persons) -> dict[int, str]:
    """Each person's notification channel, by id, in one query: the mini-program he used last, else SMS."""
    latest: dict[int, str] = {}
    for person_id, channel, _ in _accounts_newest_first({p.id for p in persons}):
        latest.setdefault(person_id, channel)
    return {p.id: CHANNEL_OF_LOGIN.get(latest.get(p.id, ""), "sms") for p in persons}


def notify(person: Person, kind: str, title: str, body: str, application_id: str | None = None,
           binding_id: str | None = None, channel: str | None = None) -> Notification:
    """Adds an inbox message to the unit of work in progress, which delivers it after its commit (in one job for
    all of the unit's notices; the rows are committed as `pending`, so a crash before that job loses nothing:
    the sweeper, `redeliver_pending`, sends what is left)."""
    n = Notification(id=new_id(), person_id=person.id, kind=kind, title=title, body=body,
                     application_id=application_id, binding_id=binding_id,
                     channel=channel or channel_for(person))
    db.session.add(n)  # flushed with the rest of the unit, in one statement per table
    tx.current().deliver_after_commit([n.id])
    return n


def send_pending_with_new(application_id: str) -> None:
    """The application's notices still pending (its 受理 notices, left to a review job that now has nothing to do)
    go out with this unit's new ones, before them: people hear of the steps in their order."""
    pending = db.session.scalars(select(Notification.id).where(
        Notification.application_id == application_id, Notification.delivery_status == "pending")
        .order_by(Notification.created_at, Notification.id)).all()
    tx.current().deliver_after_commit(list(pending))


def deliver_pending_of_applications(application_ids: list[str]) -> None:
    """Sends what is pending about the applications (their 受理 notices, their decisions), oldest first; what
    fails is left to a job of its own, with retries (and to the sweeper behind it)."""
    try:
        statuses = deliver_many(application_ids=application_ids)
        retry = [nid for nid, status in statuses.items() if status == "retry"]
    except BaseTimeoutException:  # the job's time is up: RQ, not this handler, decides what happens
        raise
    except Exception:
        db.session.rollback()
        log.exception("delivery for applications %s failed; queued", application_ids)
        retry = _pending_of(application_ids)
    for nid in retry:
        enqueue(NOTIFICATIONS, "workers.jobs.deliver_notification", f"notify-{nid}", nid)


def _pending_of(application_ids: list[str]) -> list[str]:
    try:
        return list(db.session.scalars(select(Notification.id).where(
            Notification.application_id.in_(application_ids), Notification.delivery_status == "pending")))
    except Exception:  # the database is away too: the sweeper (redeliver_pending) sends them later
        return []
    finally:
        db.session.rollback()


def deliver_many(ids: list[str] | None = None, application_ids: list[str] | None = None) -> dict[str, str]:
    """Sends the pending ones among `ids` (or the applications') through their channel adapters, in one
    transaction, each once.

    Returns every id's status: sent, failed (gave up after MAX_ATTEMPTS), retry (the channel failed this time),
    or what it already was. The row lock and the unique Delivery row make a concurrent second send impossible.
    """
    result = {}
    with writing():
        query = select(Notification).order_by(Notification.created_at, Notification.id).with_for_update()
        if ids is not None:
            query = query.where(Notification.id.in_(ids))
        else:
            query = query.where(Notification.application_id.in_(application_ids),
                                Notification.delivery_status == "pending")
        rows = db.session.scalars(query).all()
        pending = {n.person_id for n in rows if n.delivery_status == "pending"}
        people = {p.id: p for p in db.session.scalars(select(Person).where(Person.id.in_(pending)))}
        user_ids = _channel_user_ids(pending)
        with db.session.no_autoflush:  # one flush at the end: the updates and deliveries go in a statement each
            deliveries = _send_each(rows, people, user_ids, result)
        if deliveries:
            db.session.execute(insert(Delivery), deliveries)
        db.session.commit()
    return {nid: result.get(nid, "missing") for nid in (ids if ids is not None else result)}


def _channel_user_ids(person_ids) -> dict[tuple[int, str], str]:
    """Each person's user id (openid) on each channel he logged in with, in one query; the latest login wins."""
    found: dict[tuple[int, str], str] = {}
    for person_id, channel, openid in _accounts_newest_first(person_ids):
        found.setdefault((person_id, channel), openid)
    return found


def _accounts_newest_first(person_ids):
    """(person id, channel, openid) of the people's channel accounts, the most recently used first."""
    return db.session.execute(
        select(ChannelAccount.person_id, ChannelAccount.channel, ChannelAccount.openid)
        .where(ChannelAccount.person_id.in_(person_ids))
        .order_by(ChannelAccount.last_login_at.desc().nulls_last(), ChannelAccount.id.desc()))


def _send_each(rows: list[Notification], people: dict[int, Person], user_ids: dict[tuple[int, str], str],
               result: dict[str, str]) -> list[dict]:
    deliveries = []
    for n in rows:
        if n.delivery_status != "pending":
            result[n.id] = n.delivery_status
            continue
        n.attempts += 1
        try:
            user_id = user_ids.get((n.person_id, n.channel))
            deliveries.append(adapter_for(n.channel).send(n, people[n.person_id], user_id))
            n.delivery_status, n.sent_at = "sent", utcnow()
        except DeliveryFailed as exc:  # adapters fail before they record anything
            n.last_error = str(exc)[:200]
            if n.attempts >= MAX_ATTEMPTS:
                n.delivery_status = "failed"
            log.warning("notification %s delivery failed (%s attempts): %s", n.id, n.attempts, exc)
        result[n.id] = "retry" if n.delivery_status == "pending" else n.delivery_status
    return deliveries


def deliver(notification_id: str) -> str:
    """Sends one notification, once; raises DeliveryFailed when the channel failed and it should be retried."""
    status = deliver_many([notification_id])[notification_id]
    if status == "retry":
        raise DeliveryFailed(f"notification {notification_id} will be retried")
    return status


def redeliver_pending(older_than: dt.timedelta) -> int:
    """Sweeper: enqueue pending notifications whose job may have been lost (Redis down, worker killed)."""
    cutoff = utcnow() - older_than
    ids = db.session.scalars(select(Notification.id).where(
        Notification.delivery_status == "pending", Notification.created_at < cutoff).limit(1000)).all()
    db.session.rollback()
    attempts = {}
    for nid in ids:
        attempts[nid] = enqueue(NOTIFICATIONS, "workers.jobs.deliver_notification", f"notify-{nid}", nid)
    return sum(attempts.values())


def inbox(person: Person, unread_only: bool):
    query = select(Notification).where(Notification.person_id == person.id)
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    return query


def mark_read(person: Person, notification_id: str) -> Notification:
    n = db.session.get(Notification, notification_id)
    if n is None or n.person_id != person.id:
        raise not_found()
    if n.read_at is None:
        with unit_of_work():
            db.session.execute(update(Notification).where(Notification.id == n.id,
                                                          Notification.read_at.is_(None))
                               .values(read_at=utcnow()))
        db.session.refresh(n)
    return n
