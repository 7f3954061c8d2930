"""Notifications (F5): written in the same transaction as the change they report, delivered by a job, at least once
and deduplicated by the notification id."""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from rq.timeouts import BaseTimeoutException
from sqlalchemy import and_, bindparam, func, insert, or_, select, update

from api.errors import not_found
from api.extensions import db, writing
from api.models import ChannelAccount, Delivery, Notification, Person, new_id, utcnow
from api.jobs import DELIVER_NOTIFICATION, NOTIFICATIONS, STALE_AFTER, enqueue
from api.notify import DeliveryFailed, DeliveryRefused, adapter_for
from api.services import tx
from api.services.tx import unit_of_work

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
# every kind of notice, one place (the OpenAPI document's enum reads it): the steps of an application, the end of
# a binding, each family payment and its refund (R12), a suspension of networked settlement and its lifting (R9)
KINDS = (*(f"application_{status}" for status in ("awaiting_consent", "submitted", "manual_review", "approved", "rejected", "withdrawn",
                                                  "expired")),
         "binding_revoked", "family_payment", "family_refund", "settlement_suspended", "settlement_resumed",
         "binding_ended", "contribution_paid")  # R14 automatic end, R15 代缴
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
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
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
        retry = _pending_of(application_ids)  # a row left `sending` is the sweeper's once its lease has passed
    for nid in retry:
        enqueue(NOTIFICATIONS, DELIVER_NOTIFICATION, f"notify-{nid}", nid)


def _pending_of(application_ids: list[str]) -> list[str]:
    try:
        return list(db.session.scalars(select(Notification.id).where(
            Notification.application_id.in_(application_ids), Notification.delivery_status == "pending")))
    except Exception:  # the database is away too: the sweeper (redeliver_pending) sends them later
        return []
    finally:
        db.session.rollback()


# --- delivery: claim, send, record ------------------------------------------------------------------------------

# How long a `sending` row stays with the deliverer that claimed it. Longer than a job may run (RQ stops it after
# JOB_TIMEOUT), so a live deliverer has always finished (or been stopped) before anyone may take the row again.
SENDING_LEASE = STALE_AFTER


@dataclass(frozen=True)
class Outgoing:
    """A claimed notification as its adapter sees it, read before the claim's commit: sending needs no session."""
    id: str
    person_id: int
    channel: str
    kind: str
    title: str
    body: str
    attempts: int  # this attempt included
    user_id: str | None  # the person's openid on the channel


@dataclass(frozen=True)
class Recipient:
    id: int
    phone: str


def deliver_many(ids: list[str] | None = None, application_ids: list[str] | None = None) -> dict[str, str]:
    """Sends the pending ones among `ids` (or the applications') through their channel adapters: at least once,
    deduplicated by the notification id.

    Three steps. Claim (one commit for the batch): the rows become `sending` under a lease. Send: each adapter is
    called with the notification id as its dedup key, with no transaction open and no row locked (a provider may
    take seconds). Record (one commit): `sent` with its unique Delivery row, back to `pending` for a retry, or
    `failed`. A row another deliverer holds under a live lease is left to it; a row whose lease has passed (its
    deliverer died between send and record) is claimed again and sent again, with the same dedup key.

    Returns every id's status: sent, failed (refused, or gave up after MAX_ATTEMPTS), retry (the channel failed this
    time), sending (another deliverer holds it), or what it already was.
    """
    result: dict[str, str] = {}
    lease, batch, _ = _claim(ids, application_ids, result)
    if batch:
        outcomes: dict[str, tuple[str, dict | str]] = {}
        try:
            _send_each(batch, outcomes)
        finally:  # what went out is recorded even when the job's time runs out mid-batch; the rest is released
            _record(batch, outcomes, lease, result)
    return {nid: result.get(nid, "missing") for nid in (ids if ids is not None else result)}


# What the drain job (jobs.DRAIN_NOTICES, woken by every settlement) sends: the payment notices, the busiest kind.
DRAINED_KINDS = ("family_payment",)
DRAIN_BATCH = 200


def drain() -> dict[str, int]:
    """Sends every pending notice of DRAINED_KINDS (and any left `sending` past its lease), oldest first, a batch at
    a time, as deliver_many does; each batch starts after the last one's newest, so a notice is tried once per
    drain. Returns how many ended in each status."""
    result: dict[str, str] = {}
    after = None
    while True:
        lease, batch, after = _claim(None, None, result, drain_from=after)
        if not batch:
            break
        outcomes: dict[str, tuple[str, dict | str]] = {}
        try:
            _send_each(batch, outcomes)
        finally:
            _record(batch, outcomes, lease, result)
    counts: dict[str, int] = {}
    for status in result.values():
        counts[status] = counts.get(status, 0) + 1
    return counts


def _claim(ids, application_ids, result: dict[str, str], drain_from: tuple | None = None,
           ) -> tuple[dt.datetime, list[tuple[Outgoing, Recipient]], tuple | None]:
    """Marks the due rows `sending` until the returned lease, in one commit; notes the others' status in result.
    The rows are those of `ids`, of `application_ids`, or (a drain: `ids` and `application_ids` None) the next
    DRAIN_BATCH due notices of DRAINED_KINDS after `drain_from` (created_at, id), skipping rows another drainer has
    locked. Returns the lease, the batch and where the rows read end (created_at, id)."""
    now = utcnow()
    lease = now + SENDING_LEASE
    with writing():
        # the row locks serialize claimers (held for this short transaction only, never while sending)
        query = select(Notification).order_by(Notification.created_at, Notification.id)
        if ids is not None:
            query = query.where(Notification.id.in_(ids)).with_for_update()
        elif application_ids is not None:
            query = query.where(Notification.application_id.in_(application_ids),
                                Notification.delivery_status.in_(("pending", "sending"))).with_for_update()
        else:
            query = query.where(Notification.kind.in_(DRAINED_KINDS), or_(
                Notification.delivery_status == "pending",
                and_(Notification.delivery_status == "sending", Notification.sending_until <= now)))
            if drain_from is not None:
                at, last_id = drain_from
                query = query.where(or_(Notification.created_at > at,
                                        and_(Notification.created_at == at, Notification.id > last_id)))
            query = query.limit(DRAIN_BATCH).with_for_update(skip_locked=True)
        rows = db.session.scalars(query).all()
        due = [n for n in rows if n.delivery_status == "pending" or
               (n.delivery_status == "sending" and (n.sending_until is None or n.sending_until <= now))]
        result.update((n.id, n.delivery_status) for n in rows)  # sent, failed, or sending under another's lease
        end = (rows[-1].created_at, rows[-1].id) if rows else None
        if not due:
            db.session.rollback()
            return lease, [], end
        person_ids = {n.person_id for n in due}
        people = {pid: Recipient(pid, phone) for pid, phone in
                  db.session.execute(select(Person.id, Person.phone).where(Person.id.in_(person_ids)))}
        user_ids = _channel_user_ids(person_ids)
        batch = [(Outgoing(n.id, n.person_id, n.channel, n.kind, n.title, n.body, n.attempts + 1,
                           user_ids.get((n.person_id, n.channel))), people[n.person_id]) for n in due]
        db.session.execute(update(Notification).where(Notification.id.in_([n.id for n in due]))
                           .values(delivery_status="sending", sending_until=lease, attempts=Notification.attempts + 1)
                           .execution_options(synchronize_session=False))
        db.session.commit()
    return lease, batch, end


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


def _send_each(batch: list[tuple[Outgoing, Recipient]], outcomes: dict[str, tuple[str, dict | str]]) -> None:
    """Calls each adapter; fills `outcomes` as it goes, id → ("sent", Delivery row) or ("retry" | "failed", error)."""
    for n, person in batch:
        try:
            outcomes[n.id] = ("sent", adapter_for(n.channel).send(n, person, n.user_id, n.id))
            continue
        except BaseTimeoutException:
            raise
        except DeliveryRefused as exc:  # the channel will never take it: no retries
            outcomes[n.id] = ("failed", str(exc))
        except DeliveryFailed as exc:  # adapters fail before they record anything
            outcomes[n.id] = ("failed" if n.attempts >= MAX_ATTEMPTS else "retry", str(exc))
        except Exception as exc:  # an adapter's fault: logged with its traceback, the rest of the batch still goes
            log.exception("notification %s: the %s adapter failed", n.id, n.channel)
            outcomes[n.id] = ("failed" if n.attempts >= MAX_ATTEMPTS else "retry", type(exc).__name__)
        log.warning("notification %s delivery failed (%s attempts): %s", n.id, n.attempts, outcomes[n.id][1])


def _record(batch: list[tuple[Outgoing, Recipient]], outcomes: dict[str, tuple[str, dict | str]],
            lease: dt.datetime, result: dict[str, str]) -> None:
    """Records the batch's outcomes in one commit, each only while this deliverer still holds the row (once its
    lease has passed another may have claimed it, and that one records it). Rows not tried go back to pending."""
    table = Notification.__table__
    held = (table.c.delivery_status == "sending", table.c.sending_until == lease)
    sent = {nid: row for nid, (status, row) in outcomes.items() if status == "sent"}
    others = [{"nid": nid, "status": "pending" if status == "retry" else status, "error": error[:200]}
              for nid, (status, error) in outcomes.items() if status != "sent"]
    untried = [n.id for n, _ in batch if n.id not in outcomes]
    with writing():
        recorded = set()
        if sent:
            recorded = set(db.session.scalars(
                update(table).where(table.c.id.in_(list(sent)), *held)
                .values(delivery_status="sent", sent_at=utcnow(), sending_until=None).returning(table.c.id)))
            if recorded:
                db.session.execute(insert(Delivery), [row for nid, row in sent.items() if nid in recorded])
        if others:
            db.session.execute(update(table).where(table.c.id == bindparam("nid"), *held).values(
                delivery_status=bindparam("status"), last_error=bindparam("error"), sending_until=None), others)
        if untried:
            db.session.execute(update(table).where(table.c.id.in_(untried), *held).values(
                delivery_status="pending", sending_until=None, attempts=table.c.attempts - 1))
        db.session.commit()
    for nid, (status, _) in outcomes.items():
        result[nid] = status if status != "sent" else ("sent" if nid in recorded else "sending")
    result.update((nid, "retry") for nid in untried)


def deliver(notification_id: str) -> str:
    """Sends one notification; raises DeliveryFailed when the channel failed and it should be retried. Another
    deliverer holding it (`sending`) is left to finish: should it die, the sweeper sends it after its lease."""
    status = deliver_many([notification_id])[notification_id]
    if status == "retry":
        raise DeliveryFailed(f"notification {notification_id} will be retried")
    return status


def redeliver_pending(older_than: dt.timedelta) -> int:
    """Sweeper: enqueue pending notifications whose job may have been lost (Redis down, worker killed), and those
    left `sending` by a deliverer that died between claim and record, once their lease has passed."""
    now = utcnow()
    ids = db.session.scalars(select(Notification.id).where(or_(
        and_(Notification.delivery_status == "pending", Notification.created_at < now - older_than),
        and_(Notification.delivery_status == "sending", Notification.sending_until < now))).limit(1000)).all()
    db.session.rollback()
    attempts = {}
    for nid in ids:
        attempts[nid] = enqueue(NOTIFICATIONS, DELIVER_NOTIFICATION, f"notify-{nid}", nid)
    return sum(attempts.values())


def inbox(person: Person, unread_only: bool):
    query = select(Notification).where(Notification.person_id == person.id)
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    return query


def unread_count(person: Person) -> int:
    return db.session.scalar(select(func.count()).select_from(Notification).where(
        Notification.person_id == person.id, Notification.read_at.is_(None)))


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
