"""Staff actions in the audit trail with the person concerned (masked), and the trail as admins page through it."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, or_, select

from api.errors import ApiError
from api.extensions import db
from api.masking import mask_id
from api.models import AuditEvent, Person, StaffUser
from api.pagination import decode_cursor, encode_cursor
from api.services import audit
from api.services.tx import unit_of_work
from api.services.usage import Period


def person_detail(person: Person | None, detail: dict | None = None) -> dict:
    """An audit detail naming the person concerned, masked (GET /staff/audit shows it as `person`)."""
    return {**({"person": mask_id(person.id_number)} if person is not None else {}), **(detail or {})}


def record_staff(staff: StaffUser, action: str, target: str | None, person: Person | None,
                 detail: dict | None = None) -> None:
    """In the caller's transaction."""
    audit.record(f"staff:{staff.username}", action, target, person_detail(person, detail))


def record_staff_now(staff: StaffUser, action: str, target: str | None, person: Person | None,
                     detail: dict | None = None) -> None:
    """In a transaction of its own (a read, such as a printout, writes only this)."""
    with unit_of_work():
        record_staff(staff, action, target, person, detail)


def page(actor: str | None, action: str | None, start: dt.date | None, end: dt.date | None, limit: int,
         cursor: str | None) -> tuple[list[AuditEvent], str | None]:
    """Newest first, keyset-paginated over (at, id)."""
    query = select(AuditEvent)
    if actor:
        query = query.where(AuditEvent.actor == actor)
    if action:
        query = query.where(AuditEvent.action == action)
    lower, upper = Period(start, end).bounds()
    if lower:
        query = query.where(AuditEvent.at >= lower)
    if upper:
        query = query.where(AuditEvent.at < upper)
    if cursor:
        at, row_id = decode_cursor(cursor)
        try:
            last_id = int(row_id)
        except ValueError:
            raise ApiError("INVALID_INPUT", 400, "cursor") from None
        query = query.where(or_(AuditEvent.at < at, and_(AuditEvent.at == at, AuditEvent.id < last_id)))
    rows = list(db.session.scalars(query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1].at, str(rows[limit - 1].id)) if len(rows) > limit else None
    return rows[:limit], next_cursor
