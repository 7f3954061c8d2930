"""The sweeper's work on applications (run by `workers.jobs.sweep` every few seconds): lost jobs, deadlines."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import or_, select

from api import jobs, policy
from api.errors import ApiError
from api.extensions import db
from api.models import Application, utcnow
from api.services.applications import decide
from api.services.people import policy_or_none
from api.services.tx import unit_of_work


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
                decide(db.session.get(Application, app_id), "expired", "system", "REVIEW_EXPIRED", "manual_review")
            count += 1
        except ApiError:  # decided meanwhile
            pass
    return count + expire_unanswered(now)


def expire_unanswered(now: dt.datetime | None = None) -> int:
    """R13: applications whose beneficiary did not answer by the policy's consent_days become `expired`."""
    now = now or utcnow()
    silent = db.session.scalars(select(Application.id).where(Application.status == "awaiting_consent",
                                                             Application.consent_due_at <= now)).all()
    db.session.rollback()
    count = 0
    for app_id in silent:
        try:
            with unit_of_work():
                decide(db.session.get(Application, app_id), "expired", "system", "CONSENT_EXPIRED",
                       "awaiting_consent", notice="consent_expired")
            count += 1
        except ApiError:  # answered or withdrawn meanwhile
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
    return sum(jobs.enqueue(jobs.REVIEWS, jobs.REVIEW_APPLICATION, f"review-{i}", i) for i in ids)
