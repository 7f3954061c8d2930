"""Manual review (人工审核) by reviewers: the queue of their region, and their decisions."""
from __future__ import annotations

from sqlalchemy import select

from api.errors import ApiError, Refusal, not_found
from api.extensions import db
from api.masking import mask_id, mask_text
from api.models import Application, Person, StaffUser
from api.services import audit
from api.services.applications import decide
from api.services.rule_facts import refusal_for
from api.services.tx import transactional


def serves(staff: StaffUser, authorizer: Person) -> bool:
    """A regional clerk or reviewer serves the insured of his province; one without a region serves all."""
    return staff.region_code is None or authorizer.region_code[:2] == staff.region_code


def review_queue(staff: StaffUser):
    query = select(Application).where(Application.status == "manual_review")
    if staff.region_code is not None:
        authorizers = select(Person.id).where(Person.region_code.startswith(staff.region_code, autoescape=True))
        query = query.where(Application.authorizer_id.in_(authorizers))
    return query


def for_staff(staff: StaffUser, application_id: str) -> Application:
    """The application if it is in the staff member's region; 404 exactly like a missing one otherwise."""
    app = db.session.get(Application, application_id)
    if app is None or not serves(staff, app.authorizer):
        raise not_found()
    return app


@transactional
def decide_manually(staff: StaffUser, application_id: str, decision: str, reason: str) -> Application:
    """A reviewer's decision (审核员): approve re-checks the rules under the people's row locks, since things may
    have changed; a rejection needs the reason the applicant will read."""
    if decision == "reject" and not reason:
        raise ApiError("REJECTION_REASON_REQUIRED", 400, "reason")
    reason = mask_text(reason)  # the people read it: an ID or phone number typed into it is masked
    app = for_staff(staff, application_id)
    if app.status != "manual_review":
        raise ApiError("APPLICATION_NOT_PENDING", 409)
    actor = f"staff:{staff.username}"
    try:
        if decision == "approve":
            code = refusal_for(app.authorizer, app.beneficiary, app.relation, deciding=app)
            if code:
                raise Refusal(code)
            decide(app, "approved", actor, None, "manual_review", reason or None)
        else:
            decide(app, "rejected", actor, "REJECTED_BY_REVIEWER", "manual_review", reason)
    except ApiError as exc:
        if exc.code == "CONFLICT":  # expired or decided by another reviewer meanwhile
            raise ApiError("APPLICATION_NOT_PENDING", 409) from None
        raise
    audit.record(actor, f"review_{decision}", app.id, {"person": mask_id(app.authorizer.id_number), "reason": reason})
    return app
