"""Automatic review (自动审核, R11) by the workers: claims with leases, batches, and the decisions of R1–R5 and R4.

A review job reviews its own application and, while it is at it, up to BATCH - 1 others still waiting in
`submitted`: when the workers fall behind, one claim, one decision transaction and one delivery transaction
serve many applications, and the jobs of those others find nothing left to do.
"""
from __future__ import annotations

import logging
import time

from rq.timeouts import BaseTimeoutException
from sqlalchemy import insert, select, update
from sqlalchemy.orm import joinedload, selectinload

from api import jobs, policy
from api.errors import ApiError
from api.extensions import db, writing
from api.models import Application, ApplicationEvent, Kinship, utcnow
from api.services import notifications, tx
from api.services.applications import decide
from api.services.people import policy_or_none
from api.services.rule_facts import RuleContext
from api.settings import env_str

log = logging.getLogger(__name__)
BATCH = 50
MAX_REVIEW_ATTEMPTS = 5  # claims of one application (RQ's retries, the sweeper's); then a reviewer decides
LEASE = jobs.STALE_AFTER  # a reviewing worker's claim; after it the application may be reviewed again


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
        _hand_to_reviewer(application_id)
        return []
    with writing():
        return _claim(application_id)


def _hand_to_reviewer(application_id: str) -> None:
    """An application whose automatic review kept failing goes to a reviewer, not round the queue forever."""
    log.error("automatic review of %s failed %d times; handed to a reviewer", application_id, MAX_REVIEW_ATTEMPTS)
    try:
        with tx.unit_of_work():
            app = db.session.get(Application, application_id, with_for_update=True)
            if app.status == "reviewing" and app.lease_until and app.lease_until > utcnow():
                return  # a review has claimed it meanwhile
            region = policy_or_none(app.authorizer.region_code)
            if region is None:  # as the review itself would: his region has left the scheme
                decide(app, "rejected", "system", "REGION_NOT_COVERED", from_status=app.status)
            else:
                decide(app, "manual_review", "system", "AUTO_REVIEW_FAILED", from_status=app.status, policy_=region)
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
    # their jobs have nothing left to do
    jobs.job_queue().discard_queued(jobs.REVIEWS, [f"review-{i}" for i in batch if i != application_id])
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
    with tx.unit_of_work() as unit:
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
                decide(app, outcome.status, "system", outcome.code, from_status="reviewing", channels=channels,
                       policy_=deadline_from)
                outcomes[app.id] = outcome.status
        if failed := [i for i, o in outcomes.items() if isinstance(o, Exception)]:
            _release(failed)
        unit.hand_notices_to_job()  # review() delivers them with the 受理 notices, in one transaction
    return outcomes


def _outcome(app: Application, context: RuleContext, kinship: list[tuple[str, str, str]]) -> policy.ReviewOutcome:
    try:
        code = context.refusal(app.authorizer, app.beneficiary, app.relation, deciding=app)
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


def _release(batch: list[str]) -> None:
    """Ends the lease of applications whose review failed, so that a retry (or the sweeper) claims them at once;
    inside a unit of work it joins it, else it runs in one of its own."""
    released = update(Application).where(Application.id.in_(batch), Application.status == "reviewing") \
        .values(lease_until=utcnow())
    if tx.in_unit():
        db.session.execute(released, execution_options={"synchronize_session": False})
        return
    try:
        db.session.rollback()
        with writing():
            db.session.execute(released, execution_options={"synchronize_session": False})
            db.session.commit()
    except Exception:  # the lease will expire by itself
        db.session.rollback()
