"""Binding applications (共济申请): submit and withdraw, and the one transition every step of the life cycle takes."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from api import idnumber, jobs, policy
from api.errors import ApiError, Refusal, not_found
from api.extensions import db
from api.messages import message
from api.models import Application, ApplicationEvent, Binding, Person, StaffUser, new_id, utcnow
from api.services import notifications, tx
from api.services.application_notices import STATUS_LABELS, announce  # noqa: F401  (STATUS_LABELS: views)
from api.services.logins import normalize_name
from api.services.people import facts_of, person_by_id_number, policy_for, policy_or_none
from api.services.rule_facts import refusal_for
from api.services.tx import transactional
from api.timefmt import local_today

FINAL = ("approved", "rejected", "withdrawn", "expired")


def record_event(app: Application, status: str, actor: str, code: str | None = None,
                 reason: str | None = None) -> None:
    """The timeline entry of a transition; flushed with the unit's other rows (one statement for a batch's)."""
    db.session.add(ApplicationEvent(application_id=app.id, status=status, actor=actor, reason_code=code,
                                    at=utcnow(), reason=reason or (message(code) if code else None)))


def decide(app: Application, status: str, actor: str, code: str | None, from_status: str,
           reason: str | None = None, channels: dict[int, str] | None = None,
           policy_: policy.Policy | None = None, notice: str | None = None) -> None:
    """Moves app from `from_status` to `status` (conditionally: a concurrent change wins, CONFLICT) with its
    effects: the timeline entry, the binding of an approval, the people's notices. Entering manual review sets
    its deadline from the authorizer's `policy_`.

    The loaded `app` keeps its old status until the commit expires it; callers read it after the commit.
    """
    now = utcnow()
    binding_id = new_id() if status == "approved" else None
    due = policy.review_deadline(policy_, now) if status == "manual_review" else None
    moved = db.session.execute(update(Application).where(Application.id == app.id,
                                                         Application.status == from_status)
                               .values(status=status, reason_code=code, updated_at=now, binding_id=binding_id,
                                       decided_at=now if status in FINAL else None, review_due_at=due,
                                       consent_due_at=None),
                               execution_options={"synchronize_session": False}).rowcount
    if not moved:
        raise ApiError("CONFLICT", 409)
    shown_reason = reason or (message(code) if code else None)
    record_event(app, status, actor, code, shown_reason)
    if binding_id:
        db.session.add(Binding(id=binding_id, authorizer_id=app.authorizer_id, beneficiary_id=app.beneficiary_id,
                               relation=app.relation, monthly_limit_fen=app.monthly_limit_fen,
                               per_payment_limit_fen=app.per_payment_limit_fen, valid_from=app.valid_from,
                               valid_until=app.valid_until, application_id=app.id))
    announce(app, status, shown_reason, channels, due=due, binding_id=binding_id, notice=notice)


def _name_refusal(authorizer: Person, beneficiary: Person | None, name: str) -> str | None:
    """The registry's name for the number must be the name given; R1 first: only an eligible authorizer learns
    that the name does not match the number."""
    if beneficiary is None or normalize_name(beneficiary.name) == normalize_name(name):
        return None
    return policy.authorizer_refusal(policy_for(authorizer.region_code), facts_of(authorizer)) \
        or "BENEFICIARY_NAME_MISMATCH"


def refusal_before_submit(authorizer: Person, name: str, id_number: str, relation: str) -> str | None:
    """What `submit` would refuse for these details, asked before anything is written (the bot checks the
    beneficiary before its summary): the engine's code, or the duplicate's; None when submit would go on.
    Reads only; the row locks the rules take on PostgreSQL end with the transaction, which this ends."""
    try:
        beneficiary = person_by_id_number(idnumber.normalize(id_number))
        return _name_refusal(authorizer, beneficiary, name) or refusal_for(authorizer, beneficiary, relation,
                                                                           duplicates_conflict=True)
    except idnumber.InvalidIdNumber:
        return "INVALID_ID_NUMBER"
    except ApiError as exc:  # DUPLICATE_BINDING / DUPLICATE_APPLICATION (409), REGION_NOT_COVERED
        return exc.code
    finally:
        db.session.rollback()


@transactional
def submit(authorizer: Person, data: dict, channel: str, staff: StaffUser | None = None,
           materials: list | None = None, materials_seen: list[str] | None = None) -> Application:
    """Checks R1–R5 at once (422/409 with the engine's code) and stores the application as `submitted`.

    `materials_seen`: at the window, the identity documents the clerk has seen (R4); online the login stands for them.
    """
    try:
        number = idnumber.normalize(data["beneficiary_id_number"])
    except idnumber.InvalidIdNumber:
        raise ApiError("INVALID_ID_NUMBER", 400, "beneficiary_id_number") from None
    beneficiary = person_by_id_number(number)
    if code := _name_refusal(authorizer, beneficiary, data["beneficiary_name"]):
        raise Refusal(code, "beneficiary_name" if code == "BENEFICIARY_NAME_MISMATCH" else None)
    code = refusal_for(authorizer, beneficiary, data["relation"], duplicates_conflict=True)
    if code:
        raise Refusal(code, "relation" if code.startswith(("RELATION", "SPOUSE", "PARENT")) else None)
    if policy.identity_documents_missing(policy_for(authorizer.region_code), channel, set(materials_seen or ())):
        raise Refusal("IDENTITY_DOCUMENTS_NOT_SEEN", "materials_seen")
    consent_days = policy.consent_needed(idnumber.birth_date(beneficiary.id_number), local_today(),
                                         policy_for(authorizer.region_code), policy_or_none(beneficiary.region_code))
    app = Application(authorizer_id=authorizer.id, beneficiary_id=beneficiary.id, relation=data["relation"],
                      monthly_limit_fen=data.get("monthly_limit_fen"),
                      per_payment_limit_fen=data.get("per_payment_limit_fen"),
                      valid_from=data.get("valid_from"), valid_until=data.get("valid_until"), channel=channel,
                      created_by_staff_id=staff.id if staff else None,
                      status="submitted" if consent_days is None else "awaiting_consent",
                      consent_due_at=None if consent_days is None else utcnow() + dt.timedelta(days=consent_days),
                      materials_seen=sorted(materials_seen) if materials_seen is not None else None)
    app.materials = list(materials or [])
    db.session.add(app)
    try:
        db.session.flush()
    except IntegrityError:  # a concurrent identical application won (unique pending pair)
        raise ApiError("DUPLICATE_APPLICATION", 409) from None
    record_event(app, "submitted", f"staff:{staff.username}" if staff else "applicant")
    if consent_days is not None:  # R13: waits for the beneficiary's own answer; no review job takes it meanwhile
        record_event(app, "awaiting_consent", "system")
        announce(app, "awaiting_consent", due=app.consent_due_at)
        return app
    announce(app, "submitted")
    unit = tx.current()
    unit.hand_notices_to_job()  # the review job sends the 受理 notices first thing: one job per application
    unit.enqueue_after_commit(jobs.REVIEWS, jobs.REVIEW_APPLICATION, f"review-{app.id}", app.id)
    return app


def visible_to(person: Person, application_id: str) -> Application:
    """The application if `person` is its authorizer or beneficiary; 404 exactly like a missing one otherwise."""
    app = db.session.get(Application, application_id)
    if app is None or person.id not in (app.authorizer_id, app.beneficiary_id):
        raise not_found()
    return app


def awaiting_consent_of(person: Person) -> list[Application]:
    """The applications waiting for the person's own answer as beneficiary (R13), newest first."""
    return list(db.session.scalars(select(Application).where(
        Application.beneficiary_id == person.id, Application.status == "awaiting_consent")
        .order_by(Application.created_at.desc(), Application.id.desc())))


def recent_of(person: Person, limit: int) -> list[Application]:
    """The person's latest applications, as applicant or as named beneficiary, newest first."""
    return list(db.session.scalars(list_for(person).order_by(Application.created_at.desc(), Application.id.desc())
                                   .limit(limit)))


def list_for(person: Person):
    return select(Application).where(or_(Application.authorizer_id == person.id,
                                         Application.beneficiary_id == person.id))


@transactional
def answer_consent(person: Person, application_id: str, agree: bool) -> Application:
    """R13: the beneficiary's own answer. Agreement sends the application to review (its job enqueued after the
    commit, as `submit` does); refusal ends it (CONSENT_DECLINED). Anyone but the beneficiary gets 404, as for an
    application that does not exist; an answer too late, or a second one, is a 409 that says which."""
    app = visible_to(person, application_id)
    if app.beneficiary_id != person.id:
        raise not_found()
    if already := {"withdrawn": "APPLICATION_WITHDRAWN", "expired": "APPLICATION_EXPIRED"}.get(app.status):
        raise ApiError(already, 409)
    if app.status != "awaiting_consent":
        raise ApiError("CONSENT_ANSWERED", 409)
    if app.consent_due_at is not None and app.consent_due_at <= utcnow():
        raise ApiError("APPLICATION_EXPIRED", 409)  # the sweeper has not come by yet: silence has run out
    try:
        if agree:
            decide(app, "submitted", "beneficiary", None, from_status="awaiting_consent", notice="consent_given")
            unit = tx.current()
            unit.hand_notices_to_job()  # the review job sends them first thing, as after `submit`
            unit.enqueue_after_commit(jobs.REVIEWS, jobs.REVIEW_APPLICATION, f"review-{app.id}", app.id)
        else:
            decide(app, "rejected", "beneficiary", "CONSENT_DECLINED", from_status="awaiting_consent",
                   notice="consent_declined")
    except ApiError:  # withdrawn, expired or answered meanwhile
        raise ApiError("CONSENT_ANSWERED", 409) from None
    return app


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
        decide(app, "withdrawn", "applicant", "WITHDRAWN_BY_APPLICANT", from_status=app.status)
    except ApiError:
        raise ApiError("APPLICATION_DECIDED", 409) from None
    return app
