"""Binding applications (共济申请): submit, review (automatic and manual), withdraw, expire — one transaction each."""
from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass

from flask import g
from rq.timeouts import BaseTimeoutException
from sqlalchemy import insert, literal, or_, select, union_all, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload, selectinload

from api import idnumber, policy
from api.errors import ApiError, Refusal, not_found
from api.extensions import db, writing
from api.masking import mask_name, mask_text
from api.messages import message
from api.models import Application, ApplicationEvent, Binding, Kinship, Person, StaffUser, new_id, utcnow
from api.services import notifications
from api.services.accounts import normalize_name
from api.services.people import (facts_of, facts_of_many, person_by_id_number, policies_of, policy_for,
                                 policy_or_none)
from api.services.tx import transactional, unit_of_work
from api.settings import env_str
from api.timefmt import SHANGHAI
from workers.queues import REVIEWS, STALE_AFTER, after_commit, discard_queued, enqueue

log = logging.getLogger(__name__)
FINAL = ("approved", "rejected", "withdrawn", "expired")
LEASE = STALE_AFTER  # a reviewing worker's claim; after it the application may be reviewed again

STATUS_LABELS = {
    "submitted": "已提交", "reviewing": "审核中", "manual_review": "人工审核中", "approved": "审核通过",
    "rejected": "未通过", "withdrawn": "已撤回", "expired": "已过期",
}


# --- what the rules read: facts, policies, links ----------------------------------------------------------------

@dataclass(frozen=True)
class _Link:
    kind: str  # binding | application (in progress)
    id: str
    authorizer_id: int
    beneficiary_id: int
    relation: str


class RuleContext:
    """What R1–R5 read about a set of authorizer/beneficiary pairs, loaded in a handful of queries whatever the
    number of pairs: their policies, the people's facts, and every active binding or application in progress
    of the authorizers (as authorizer) and the beneficiaries (as beneficiary), with the other side's facts.

    On PostgreSQL the people's rows are locked first (`lock_people`), so what is read stays true until the commit.
    """

    def __init__(self, pairs: list[tuple[Person, Person]]):
        people = {p.id: p for pair in pairs for p in pair}
        lock_people(list(people))
        self.policies = policies_of({p.region_code for p in people.values()})
        authorizers, beneficiaries = {a.id for a, _ in pairs}, {b.id for _, b in pairs}
        pending = select(literal("application"), Application.id, Application.authorizer_id,
                         Application.beneficiary_id, Application.relation) \
            .where(Application.status.in_(policy.PENDING_APPLICATION),
                   or_(Application.authorizer_id.in_(authorizers), Application.beneficiary_id.in_(beneficiaries)))
        active = select(literal("binding"), Binding.id, Binding.authorizer_id, Binding.beneficiary_id,
                        Binding.relation) \
            .where(Binding.status == "active",
                   or_(Binding.authorizer_id.in_(authorizers), Binding.beneficiary_id.in_(beneficiaries)))
        self.links = {row[1]: _Link(*row) for row in db.session.execute(union_all(active, pending))}
        others = {pid for link in self.links.values() for pid in (link.authorizer_id, link.beneficiary_id)} - people.keys()
        if others:
            people.update({p.id: p for p in db.session.scalars(select(Person).where(Person.id.in_(others)))})
        self.facts = facts_of_many(people.values())

    def policy_of(self, person: Person) -> policy.Policy:
        found = self.policies.get(person.region_code[:2])
        if found is None:
            raise ApiError("REGION_NOT_COVERED", 422)
        return found

    def duplicate(self, authorizer: Person, beneficiary: Person) -> str | None:
        """DUPLICATE_BINDING or DUPLICATE_APPLICATION when this very pair already has one."""
        for link in self.links.values():
            if (link.authorizer_id, link.beneficiary_id) == (authorizer.id, beneficiary.id):
                return "DUPLICATE_BINDING" if link.kind == "binding" else "DUPLICATE_APPLICATION"
        return None

    def refusal(self, authorizer: Person, beneficiary: Person, relation: str,
                exclude_application: str | None = None) -> str | None:
        """R1–R3/R5 for the pair under the authorizer's policy (REGION_NOT_COVERED when his region has none)."""
        links = [link for link in self.links.values() if link.id != exclude_application]
        return policy.application_refusal(
            self.policy_of(authorizer), self.facts[authorizer.id], self.facts[beneficiary.id], relation,
            [policy.ExistingLink(k.relation, self.facts[k.beneficiary_id]) for k in links
             if k.authorizer_id == authorizer.id],
            [policy.ExistingLink(k.relation, self.facts[k.authorizer_id]) for k in links
             if k.beneficiary_id == beneficiary.id],
            beneficiary_policy=self.policies.get(beneficiary.region_code[:2]))

    def forget(self, application_id: str) -> None:
        """An application of the set was turned down: it no longer counts against the caps of the others."""
        self.links.pop(application_id, None)


def _refusal_for(authorizer: Person, beneficiary: Person | None, relation: str,
                 exclude_application: str | None = None, duplicates_conflict: bool = False) -> str | None:
    """R1–R3/R5 for one pair. With `duplicates_conflict` an existing binding or application of the same pair
    answers 409 first."""
    if beneficiary is None:  # not in the registry: the engine says BENEFICIARY_NOT_INSURED (after R1)
        app_policy = policy_for(authorizer.region_code)
        return policy.application_refusal(app_policy, facts_of(authorizer), None, relation, [], [])
    context = RuleContext([(authorizer, beneficiary)])
    if duplicates_conflict and authorizer.id != beneficiary.id and (code := context.duplicate(authorizer, beneficiary)):
        raise ApiError(code, 409)
    return context.refusal(authorizer, beneficiary, relation, exclude_application)


# --- notifications of each transition ---------------------------------------------------------------------------

def _label(relation: str) -> str:
    return policy.RELATIONS.get(relation, relation)


def _announce(app: Application, status: str, reason: str | None = None,
              channels: dict[int, str] | None = None, due: dt.datetime | None = None) -> None:
    """Tells the authorizer and the beneficiary what happened, each from his own side (names masked)."""
    a, b = app.authorizer, app.beneficiary
    by = f"，预计{due.astimezone(SHANGHAI):%Y年%m月%d日}前完成" if due else ""
    to_a = f"【{_label(app.relation)} {mask_name(b.name)}】"
    from_b = f"【{_label(policy.INVERSE[app.relation])} {mask_name(a.name)}】"
    texts = {
        "submitted": (f"您为{to_a}提交的家庭共济申请已受理，受理编号 {app.receipt_no}，审核结果将另行通知。",
                      f"{from_b}已申请将其职工医保个人账户与您家庭共济，审核结果将另行通知。"),
        "manual_review": (f"您为{to_a}申请的家庭共济需人工审核{by}，请耐心等待。",
                          f"{from_b}为您申请的家庭共济需人工审核{by}，请耐心等待。"),
        "approved": (f"您为{to_a}申请的家庭共济已审核通过，即日起可使用。",
                     f"{from_b}的职工医保个人账户已与您家庭共济。就医购药时请出示您本人的医保卡或医保电子凭证。"),
        "rejected": (f"您为{to_a}申请的家庭共济未通过审核：{reason}",
                     f"{from_b}为您申请的家庭共济未通过审核：{reason}"),
        "withdrawn": (f"您为{to_a}提交的家庭共济申请已撤回。", f"{from_b}已撤回为您申请的家庭共济。"),
        "expired": (f"您为{to_a}申请的家庭共济超过审核期限未完成，申请已失效，请重新申请。",
                    f"{from_b}为您申请的家庭共济已失效。"),
    }
    title = f"家庭共济申请{STATUS_LABELS[status]}"
    to_authorizer, to_beneficiary = texts[status]
    channels = channels or notifications.channels_for([a, b])
    notifications.notify(a, f"application_{status}", title, to_authorizer, application_id=app.id,
                         channel=channels[a.id])
    notifications.notify(b, f"application_{status}", title, to_beneficiary, application_id=app.id,
                         channel=channels[b.id])


def _event(app: Application, status: str, actor: str, code: str | None = None, reason: str | None = None) -> None:
    """The timeline entry of a transition; flushed with the unit's other rows (one statement for a batch's)."""
    db.session.add(ApplicationEvent(application_id=app.id, status=status, actor=actor, reason_code=code,
                                    at=utcnow(), reason=reason or (message(code) if code else None)))


# --- submit ---------------------------------------------------------------------------------------------------

@transactional
def submit(authorizer: Person, data: dict, channel: str, staff: StaffUser | None = None,
           materials: list | None = None) -> Application:
    """Checks R1–R3/R5 at once (422/409 with the engine's code) and stores the application as `submitted`."""
    try:
        number = idnumber.normalize(data["beneficiary_id_number"])
    except idnumber.InvalidIdNumber:
        raise ApiError("INVALID_ID_NUMBER", 400, "beneficiary_id_number") from None
    beneficiary = person_by_id_number(number)
    if beneficiary is not None and normalize_name(beneficiary.name) != normalize_name(data["beneficiary_name"]):
        # R1 first: only an eligible authorizer learns that the name does not match the number
        if code := policy.authorizer_refusal(policy_for(authorizer.region_code), facts_of(authorizer)):
            raise Refusal(code)
        raise Refusal("BENEFICIARY_NAME_MISMATCH", "beneficiary_name")
    code = _refusal_for(authorizer, beneficiary, data["relation"], duplicates_conflict=True)
    if code:
        raise Refusal(code, "relation" if code.startswith(("RELATION", "SPOUSE", "PARENT")) else None)
    app = Application(authorizer_id=authorizer.id, beneficiary_id=beneficiary.id, relation=data["relation"],
                      monthly_limit_fen=data.get("monthly_limit_fen"),
                      per_payment_limit_fen=data.get("per_payment_limit_fen"),
                      valid_until=data.get("valid_until"), channel=channel,
                      created_by_staff_id=staff.id if staff else None, status="submitted")
    app.materials = list(materials or [])
    db.session.add(app)
    try:
        db.session.flush()
    except IntegrityError:  # a concurrent identical application won (unique pending pair)
        raise ApiError("DUPLICATE_APPLICATION", 409) from None
    _event(app, "submitted", f"staff:{staff.username}" if staff else "applicant")
    _announce(app, "submitted")
    notifications.leave_new_to_job()  # the review job sends the 受理 notices first thing: one job per application
    after_commit(REVIEWS, "workers.jobs.review_application", f"review-{app.id}", app.id)
    return app


# --- review (worker) -------------------------------------------------------------------------------------------
# A review job reviews its own application and, while it is at it, up to BATCH - 1 others still waiting in
# `submitted`: when the workers fall behind, one claim, one decision transaction and one delivery transaction
# serve many applications, and the jobs of those others find nothing left to do.
BATCH = 50
MAX_REVIEW_ATTEMPTS = 5  # claims of one application (RQ's retries, the sweeper's); then a reviewer decides


def claim(application_id: str) -> list[str]:
    """submitted → reviewing (or re-claim a review whose worker died) for the application and for up to
    BATCH - 1 others waiting; [] when the application is not to be reviewed (a second delivery, a decided one)."""
    status, lease_until, attempts = db.session.execute(
        select(Application.status, Application.lease_until, Application.review_attempts)
        .where(Application.id == application_id)).one_or_none() or (None, None, 0)
    db.session.rollback()
    if not (status == "submitted" or (status == "reviewing" and (lease_until is None or lease_until < utcnow()))):
        return []  # read only: a job whose application a batch already took costs no write
    if attempts >= MAX_REVIEW_ATTEMPTS:
        _hand_to_reviewer(application_id, status)
        return []
    with writing():
        return _claim(application_id)


def _hand_to_reviewer(application_id: str, status: str) -> None:
    """An application whose automatic review kept failing goes to a reviewer, not round the queue forever."""
    log.error("automatic review of %s failed %d times; handed to a reviewer", application_id, MAX_REVIEW_ATTEMPTS)
    try:
        with unit_of_work():
            app = db.session.get(Application, application_id, with_for_update=True)
            if app.status == "reviewing" and app.lease_until and app.lease_until > utcnow():
                return  # a review has claimed it meanwhile
            region = policy_or_none(app.authorizer.region_code)
            if region is None:  # as the review itself would: his region has left the scheme
                _decide(app, "rejected", "system", "REGION_NOT_COVERED", from_status=app.status)
            else:
                _decide(app, "manual_review", "system", "AUTO_REVIEW_FAILED", from_status=app.status, policy_=region)
    except ApiError:  # decided meanwhile
        pass


def _claim(application_id: str) -> list[str]:
    now = utcnow()
    claimed = dict(status="reviewing", lease_until=now + LEASE, review_attempts=Application.review_attempts + 1,
                   updated_at=now)
    first = db.session.execute(
        update(Application).where(Application.id == application_id, Application.status == "submitted")
        .values(**claimed)).rowcount
    if not first and not db.session.execute(
            update(Application).where(Application.id == application_id, Application.status == "reviewing",
                                      Application.lease_until < now).values(**claimed)).rowcount:
        db.session.rollback()
        return []
    waiting = select(Application.id).where(Application.status == "submitted", Application.id != application_id) \
        .order_by(Application.created_at).limit(BATCH - 1).with_for_update(skip_locked=True).scalar_subquery()
    others = db.session.scalars(update(Application).where(Application.id.in_(waiting),
                                                          Application.status == "submitted")
                                .values(**claimed).returning(Application.id),
                                execution_options={"synchronize_session": False}).all()
    fresh = ([application_id] if first else []) + list(others)
    if fresh:
        db.session.execute(insert(ApplicationEvent), [
            {"application_id": i, "status": "reviewing", "actor": "system", "at": now} for i in fresh])
    db.session.commit()
    return [application_id, *others]


def review(application_id: str) -> str | None:
    """The automatic review (R11): re-check R1–R5, then the kinship registry and the materials (R4).

    Three short transactions, whatever the batch's size: the claim, the decisions with their notices, the
    delivery of every notice pending for the batch (its 受理 notices too). Returns the application's outcome.
    """
    batch = claim(application_id)
    if not batch:
        return None
    discard_queued(REVIEWS, [f"review-{i}" for i in batch if i != application_id])  # their jobs: nothing left to do
    try:
        if delay := env_str("GONGJI_TEST_REVIEW_DELAY"):  # lets tests/test_faults.py kill a worker mid-review
            time.sleep(float(delay))
        outcomes = _review_claimed(batch)
    except Exception:
        _release(batch)
        raise
    finally:
        notifications.deliver_pending_of_applications(batch)
    if isinstance(outcomes.get(application_id), Exception):
        raise outcomes[application_id]  # RQ retries the job; the application was released for it
    return outcomes.get(application_id)


def _review_claimed(batch: list[str]) -> dict[str, str | Exception | None]:
    """Decides the claimed applications in one transaction; should that transaction fail, each in one of its own,
    so that one application's fault does not hold up the others. One whose review fails is released (its lease
    ends now, so that a retry or the sweeper takes it again); one withdrawn meanwhile is left alone (None)."""
    try:
        return _decide_batch(batch)
    except BaseTimeoutException:
        raise
    except Exception:
        if len(batch) == 1:
            raise
        log.exception("the transaction of a batch of %d reviews failed; deciding them one by one", len(batch))
    outcomes: dict[str, str | Exception | None] = {}
    for app_id in batch:
        try:
            outcomes.update(_decide_batch([app_id]))
        except BaseTimeoutException:
            raise
        except Exception as exc:  # noqa: BLE001 - released for a retry; the others go on
            log.exception("review of %s failed; released for a retry", app_id)
            outcomes[app_id] = exc
            _release([app_id])
    return outcomes


def _decide_batch(batch: list[str]) -> dict[str, str | Exception | None]:
    """One transaction: reads what the rules need for all the applications at once, then decides each."""
    outcomes: dict[str, str | Exception | None] = dict.fromkeys(batch)
    with unit_of_work():
        apps = db.session.scalars(
            select(Application).where(Application.id.in_(batch), Application.status == "reviewing")
            .options(joinedload(Application.authorizer, innerjoin=True),
                     joinedload(Application.beneficiary, innerjoin=True), selectinload(Application.materials))
            .order_by(Application.created_at).with_for_update(of=Application)).unique().all()
        if not apps:
            return outcomes
        context = RuleContext([(app.authorizer, app.beneficiary) for app in apps])
        kinship = _kinship_records(apps)
        channels = notifications.channels_for({p for app in apps for p in (app.authorizer, app.beneficiary)})
        with db.session.no_autoflush:  # the decisions read nothing back: their rows go in at the commit
            for app in apps:
                try:
                    outcome = _outcome(app, context, kinship)
                except BaseTimeoutException:
                    raise
                except Exception as exc:  # noqa: BLE001 - one application's fault must not stop the batch
                    log.exception("review of %s failed; released for a retry", app.id)
                    outcomes[app.id] = exc
                    continue
                if outcome.status == "rejected":
                    context.forget(app.id)
                deadline_from = context.policy_of(app.authorizer) if outcome.status == "manual_review" else None
                _decide(app, outcome.status, "system", outcome.code, from_status="reviewing", channels=channels,
                        policy_=deadline_from)
                outcomes[app.id] = outcome.status
        if failed := [i for i, o in outcomes.items() if isinstance(o, Exception)]:
            _release(failed)
        notifications.leave_new_to_job()  # review() delivers them with the 受理 notices, in one transaction
    return outcomes


def _outcome(app: Application, context: RuleContext, kinship: list[tuple[str, str, str]]) -> policy.ReviewOutcome:
    try:
        code = context.refusal(app.authorizer, app.beneficiary, app.relation, exclude_application=app.id)
    except ApiError as exc:  # REGION_NOT_COVERED: his region has left the scheme since the submit
        code = exc.code
    if code:
        return policy.ReviewOutcome("rejected", code)
    a, b = app.authorizer.id_number, app.beneficiary.id_number
    confirmed = policy.kinship_matches(app.relation, [r for r in kinship if {r[0], r[1]} == {a, b}], a, b)
    return policy.review_outcome(context.policy_of(app.authorizer), confirmed, {m.kind for m in app.materials})


def _kinship_records(apps: list[Application]) -> list[tuple[str, str, str]]:
    """The kinship registry's records between the applications' people (R4), in one query."""
    numbers = {p.id_number for app in apps for p in (app.authorizer, app.beneficiary)}
    return [tuple(r) for r in db.session.execute(
        select(Kinship.id_number_a, Kinship.id_number_b, Kinship.relation)
        .where(Kinship.id_number_a.in_(numbers), Kinship.id_number_b.in_(numbers)))]


def lock_people(person_ids) -> None:
    """On PostgreSQL, locks the people's rows until the commit (in id order, so that two transactions cannot
    deadlock) and reloads them: decisions about the same people take turns and read what is true now, so the
    rules (and the caps of R3 and R5) hold under concurrency. FOR NO KEY UPDATE, so that rows merely pointing at a
    person (a channel account, a notification, a settlement) are not held up. SQLite needs nothing: its writers
    already take turns."""
    if db.session.get_bind().dialect.name != "sqlite" and person_ids:
        db.session.scalars(select(Person).where(Person.id.in_(person_ids)).order_by(Person.id)
                           .with_for_update(key_share=True).execution_options(populate_existing=True)).all()


def _release(batch: list[str]) -> None:
    """Ends the lease of applications whose review failed, so that a retry (or the sweeper) claims them at once;
    inside a transaction it joins it, else it runs in one of its own."""
    released = update(Application).where(Application.id.in_(batch), Application.status == "reviewing") \
        .values(lease_until=utcnow())
    if g.get("in_unit"):
        db.session.execute(released, execution_options={"synchronize_session": False})
        return
    try:
        db.session.rollback()
        with writing():
            db.session.execute(released, execution_options={"synchronize_session": False})
            db.session.commit()
    except Exception:  # the lease will expire by itself
        db.session.rollback()


def _decide(app: Application, status: str, actor: str, code: str | None, from_status: str,
            reason: str | None = None, channels: dict[int, str] | None = None,
            policy_: policy.Policy | None = None) -> None:
    """Moves app from `from_status` to `status` (conditionally: a concurrent change wins) with its effects.
    Entering manual review sets its deadline from the authorizer's `policy_`.

    The loaded `app` keeps its old status until the commit expires it; callers read it after the commit.
    """
    now = utcnow()
    binding_id = new_id() if status == "approved" else None
    due = policy.review_deadline(policy_, now) if status == "manual_review" else None
    moved = db.session.execute(update(Application).where(Application.id == app.id,
                                                         Application.status == from_status)
                               .values(status=status, reason_code=code, updated_at=now, binding_id=binding_id,
                                       decided_at=now if status in FINAL else None, review_due_at=due),
                               execution_options={"synchronize_session": False}).rowcount
    if not moved:
        raise ApiError("CONFLICT", 409)
    shown_reason = reason or (message(code) if code else None)
    _event(app, status, actor, code, shown_reason)
    if binding_id:
        db.session.add(Binding(id=binding_id, authorizer_id=app.authorizer_id, beneficiary_id=app.beneficiary_id,
                               relation=app.relation, monthly_limit_fen=app.monthly_limit_fen,
                               per_payment_limit_fen=app.per_payment_limit_fen, valid_until=app.valid_until,
                               application_id=app.id))
    _announce(app, status, shown_reason, channels, due=due)


# --- people and staff ------------------------------------------------------------------------------------------

def visible_to(person: Person, application_id: str) -> Application:
    """The application if `person` is its authorizer or beneficiary; 404 exactly like a missing one otherwise."""
    app = db.session.get(Application, application_id)
    if app is None or person.id not in (app.authorizer_id, app.beneficiary_id):
        raise not_found()
    return app


def list_for(person: Person):
    return select(Application).where(or_(Application.authorizer_id == person.id,
                                         Application.beneficiary_id == person.id))


@transactional
def withdraw(person: Person, application_id: str) -> Application:
    app = visible_to(person, application_id)
    if app.authorizer_id != person.id:
        raise ApiError("FORBIDDEN", 403)
    if already := {"withdrawn": "APPLICATION_WITHDRAWN", "expired": "APPLICATION_EXPIRED"}.get(app.status):
        raise ApiError(already, 409)  # a second tap, or too late: say which
    if app.status not in policy.PENDING_APPLICATION:
        raise ApiError("APPLICATION_DECIDED", 409)
    notifications.send_pending_with_new(app.id)  # a 受理 notice the review job has not sent yet goes first
    try:
        _decide(app, "withdrawn", "applicant", "WITHDRAWN_BY_APPLICANT", from_status=app.status)
    except ApiError:
        raise ApiError("APPLICATION_DECIDED", 409) from None
    return app


def review_queue():
    return select(Application).where(Application.status == "manual_review")


@transactional
def decide_manually(staff: StaffUser, application_id: str, decision: str, reason: str) -> Application:
    """A reviewer's decision (审核员): approve re-checks the rules, since things may have changed; a rejection
    needs the reason the applicant will read."""
    if decision == "reject" and not reason:
        raise ApiError("REJECTION_REASON_REQUIRED", 400, "reason")
    reason = mask_text(reason)  # the people read it: an ID or phone number typed into it is masked
    app = db.session.get(Application, application_id)
    if app is None:
        raise not_found()
    if app.status != "manual_review":
        raise ApiError("APPLICATION_NOT_PENDING", 409)
    actor = f"staff:{staff.username}"
    try:
        if decision == "approve":
            code = _refusal_for(app.authorizer, app.beneficiary, app.relation, exclude_application=app.id)
            if code:
                raise Refusal(code)
            _decide(app, "approved", actor, None, "manual_review", reason or None)
        else:
            _decide(app, "rejected", actor, "REJECTED_BY_REVIEWER", "manual_review", reason)
    except ApiError as exc:
        if exc.code == "CONFLICT":  # expired or decided by another reviewer meanwhile
            raise ApiError("APPLICATION_NOT_PENDING", 409) from None
        raise
    from api.services.audit import record
    record(actor, f"review_{decision}", app.id, {"reason": reason})
    return app


# --- sweeper ---------------------------------------------------------------------------------------------------

def expire_overdue(now: dt.datetime | None = None) -> int:
    """Manual reviews not decided by their deadline become `expired` (one indexed query finds them)."""
    now = now or utcnow()
    _date_undated_reviews()
    overdue = db.session.scalars(select(Application.id).where(Application.status == "manual_review",
                                                              Application.review_due_at <= now)).all()
    db.session.rollback()
    count = 0
    for app_id in overdue:
        try:
            with unit_of_work():
                _decide(db.session.get(Application, app_id), "expired", "system", "REVIEW_EXPIRED",
                        "manual_review")
            count += 1
        except ApiError:  # decided meanwhile
            pass
    return count


def _date_undated_reviews() -> None:
    """Gives a deadline to manual reviews that have none: moved there by a process still running the code of
    before `review_due_at` (a rolling deploy), after the migration's backfill. Counted, as there, from when the
    application entered manual review, under its region's policy."""
    undated = db.session.scalars(select(Application.id).where(Application.status == "manual_review",
                                                              Application.review_due_at.is_(None))).all()
    db.session.rollback()
    for app_id in undated:
        with unit_of_work():
            app = db.session.get(Application, app_id)
            entered = max((e.at for e in app.events if e.status == "manual_review"), default=app.updated_at)
            app.review_due_at = policy.review_deadline(policy_or_none(app.authorizer.region_code), entered)


def requeue_stuck(older_than: dt.timedelta) -> int:
    """Applications whose review job was lost (Redis down at submit, worker killed) are enqueued again."""
    now = utcnow()
    ids = db.session.scalars(select(Application.id).where(or_(
        (Application.status == "submitted") & (Application.created_at < now - older_than),
        (Application.status == "reviewing") & (Application.lease_until < now)))).all()
    db.session.rollback()
    return sum(enqueue(REVIEWS, "workers.jobs.review_application", f"review-{i}", i) for i in ids)
