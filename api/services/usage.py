"""Usage records (共济记录, R12): what the family accounts paid, for each reader that may see them.

A record is a FamilyPayment row. Lists are newest first, keyset-paginated over (created_at, id); a person's list is
the merge of two index range scans (as authorizer, as beneficiary), so it costs the same at 20 thousand records as
at 2 million.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import joinedload

from api import idnumber, ratelimit
from api.errors import ApiError, not_found
from api.extensions import db
from api.masking import mask_id
from api.models import Binding, FamilyPayment, Institution, Person, Settlement, StaffUser
from api.pagination import decode_cursor, encode_cursor
from api.services import audit
from api.services.manual_reviews import serves
from api.services.people import person_by_id_number
from api.services.tx import unit_of_work
from api.timefmt import SHANGHAI


@dataclass(frozen=True)
class Period:
    """`from`/`to` as Shanghai dates, both included; None sets no bound."""
    start: dt.date | None = None
    end: dt.date | None = None

    def bounds(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        def utc(day: dt.date) -> dt.datetime:
            return dt.datetime.combine(day, dt.time(), SHANGHAI).astimezone(dt.timezone.utc)
        if self.start and self.end and self.start > self.end:
            raise ApiError("INVALID_PERIOD", 400, "from")
        return (utc(self.start) if self.start else None,
                utc(self.end + dt.timedelta(days=1)) if self.end else None)


def page(model, conditions: list, period: Period, limit: int, cursor: str | None, options=()):
    """Rows of `model` matching any of `conditions` (each served by an index), newest first: each condition is a
    range scan of at most limit + 1 rows, and the scans are merged here."""
    start, end = period.bounds()
    bounds = []
    if start:
        bounds.append(model.created_at >= start)
    if end:
        bounds.append(model.created_at < end)
    if cursor:
        at, row_id = decode_cursor(cursor)
        bounds.append(or_(model.created_at < at, and_(model.created_at == at, model.id < row_id)))
    found = {}
    for condition in conditions:
        query = select(model).where(condition, *bounds).order_by(model.created_at.desc(), model.id.desc()) \
            .limit(limit + 1).options(*options)
        for row in db.session.scalars(query).unique():
            found[row.id] = row
    rows = sorted(found.values(), key=lambda r: (r.created_at, r.id), reverse=True)
    next_cursor = encode_cursor(rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


_RECORD = (joinedload(FamilyPayment.institution), joinedload(FamilyPayment.authorizer),
           joinedload(FamilyPayment.beneficiary), joinedload(FamilyPayment.binding))


def of_person(person: Person, period: Period, limit: int, cursor: str | None):
    """Everything the person may see: what his account paid for his relatives, and what theirs paid for him."""
    return page(FamilyPayment, [FamilyPayment.authorizer_id == person.id, FamilyPayment.beneficiary_id == person.id],
                period, limit, cursor, _RECORD)


def of_binding(person: Person, binding_id: str, period: Period, limit: int, cursor: str | None):
    binding = db.session.get(Binding, binding_id)
    if binding is None or person.id not in (binding.authorizer_id, binding.beneficiary_id):
        raise not_found()
    return page(FamilyPayment, [FamilyPayment.binding_id == binding.id], period, limit, cursor, _RECORD)


def person_for_staff(staff: StaffUser, id_number: str) -> Person:
    """The person a clerk asks about, in his region; 404 otherwise (a number not in the registry alike)."""
    try:
        number = idnumber.normalize(id_number)
    except idnumber.InvalidIdNumber:
        raise ApiError("INVALID_ID_NUMBER", 400, "id_number") from None
    person = person_by_id_number(number)
    if person is None or not serves(staff, person):
        raise not_found()
    return person


def all_of_person(person: Person, period: Period) -> list[FamilyPayment]:
    """Every record of the person in the period, oldest first (a printed statement has no pages to turn)."""
    start, end = period.bounds()
    query = select(FamilyPayment).where(or_(FamilyPayment.authorizer_id == person.id,
                                            FamilyPayment.beneficiary_id == person.id)).options(*_RECORD)
    if start:
        query = query.where(FamilyPayment.created_at >= start)
    if end:
        query = query.where(FamilyPayment.created_at < end)
    return list(db.session.scalars(query.order_by(FamilyPayment.created_at, FamilyPayment.id).limit(100_000)))


def record_statement(staff: StaffUser, person: Person, kind: str) -> None:
    with unit_of_work():
        audit.record(f"staff:{staff.username}", f"usage_{kind}", target=mask_id(person.id_number),
                     detail={"person": mask_id(person.id_number)})


def for_terminal(id_number: str, card_number: str) -> Person:
    """12333 / 自助终端: the records of the person whose ID number and card number match. A mismatch answers
    exactly as an unknown person does (nothing tells which half was wrong), and both are rate limited per client
    and per ID number, so the pair cannot be guessed."""
    # fails closed: the pair is all that guards the records, so no unlimited guessing while the counters are away
    ratelimit.hit("terminal", id_number[:32], per_account="RATELIMIT_TERMINAL_PER_ID",
                  per_ip="RATELIMIT_TERMINAL_PER_CLIENT", fail_closed=True, unavailable_code="SERVICE_UNAVAILABLE")
    try:
        number = idnumber.normalize(id_number)
    except idnumber.InvalidIdNumber:
        number = None
    person = person_by_id_number(number) if number else None
    if person is None or not card_number or person.card_number != card_number.strip():
        raise ApiError("PERSON_NOT_FOUND", 404)
    return person


def institution_settlements(institution: Institution, patient_id_number: str | None, period: Period, limit: int,
                            cursor: str | None):
    """The institution's own settlements, by patient and time range."""
    condition = Settlement.institution_id == institution.id
    if patient_id_number:
        try:
            number = idnumber.normalize(patient_id_number)
        except idnumber.InvalidIdNumber:
            raise ApiError("INVALID_ID_NUMBER", 400, "patient_id_number") from None
        patient_id = db.session.scalar(select(Person.id).where(Person.id_number == number))
        condition = and_(condition, Settlement.patient_id == (patient_id or -1))
    return page(Settlement, [condition], period, limit, cursor,
                (joinedload(Settlement.patient), joinedload(Settlement.family_payments)
                 .joinedload(FamilyPayment.binding).joinedload(Binding.authorizer)))


def totals(records: list[FamilyPayment]) -> dict[tuple[str, str], int]:
    """Sums per (binding, Shanghai month) of what was not refunded, for the printed statement."""
    sums: dict[tuple[str, str], int] = {}
    for r in records:
        if r.refunded_at is None:
            key = (r.binding_id, r.created_at.astimezone(SHANGHAI).strftime("%Y-%m"))
            sums[key] = sums.get(key, 0) + r.amount_fen
    return sums
