"""Usage records (共济记录, R12): what the family accounts paid, for each reader that may see them.

A record is a FamilyPayment row. Lists are newest first, keyset-paginated over (created_at, id); a person's list is
the merge of two index range scans (as authorizer, as beneficiary), so it costs the same at 20 thousand records as
at 2 million.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import aliased, joinedload

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


def page(model, conditions: list, period: Period, limit: int, cursor: str | None, options=(), base=None, make=None):
    """Rows of `model` matching any of `conditions` (each served by an index), newest first: each condition is a
    range scan of at most limit + 1 rows, and the scans are merged here. With `base` (a select of columns) and
    `make` (a row to an object with id and created_at), columns are read instead of entities."""
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
        query = (select(model).options(*options) if base is None else base) \
            .where(condition, *bounds).order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)
        rows = db.session.scalars(query).unique() if make is None else map(make, db.session.execute(query))
        for row in rows:
            found[row.id] = row
    rows = sorted(found.values(), key=lambda r: (r.created_at, r.id), reverse=True)
    next_cursor = encode_cursor(rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


_RECORD = (joinedload(FamilyPayment.institution), joinedload(FamilyPayment.authorizer),
           joinedload(FamilyPayment.beneficiary), joinedload(FamilyPayment.binding))


@dataclass(frozen=True)
class Party:
    name: str
    id_number: str


@dataclass(frozen=True)
class Place:
    code: str
    name: str


@dataclass(frozen=True)
class BindingRef:
    relation: str


@dataclass(frozen=True)
class Record:
    """A usage record as its readers see it: a FamilyPayment's columns and, by the names of its relationships, what
    the lists show of its institution, people and binding (read as columns, one row each, no entities)."""
    id: str
    created_at: dt.datetime
    amount_fen: int
    settlement_id: str
    binding_id: str
    authorizer_id: int
    beneficiary_id: int
    refunded_at: dt.datetime | None
    institution: Place
    authorizer: Party
    beneficiary: Party
    binding: BindingRef


_AUTHORIZER, _BENEFICIARY = aliased(Person), aliased(Person)
_RECORD_COLUMNS = select(
    FamilyPayment.id, FamilyPayment.created_at, FamilyPayment.amount_fen, FamilyPayment.settlement_id,
    FamilyPayment.binding_id, FamilyPayment.authorizer_id, FamilyPayment.beneficiary_id, FamilyPayment.refunded_at,
    Institution.code, Institution.name, _AUTHORIZER.name, _AUTHORIZER.id_number, _BENEFICIARY.name,
    _BENEFICIARY.id_number, Binding.relation,
).join(Institution, Institution.id == FamilyPayment.institution_id) \
    .join(_AUTHORIZER, _AUTHORIZER.id == FamilyPayment.authorizer_id) \
    .join(_BENEFICIARY, _BENEFICIARY.id == FamilyPayment.beneficiary_id) \
    .join(Binding, Binding.id == FamilyPayment.binding_id)


def _record(row) -> Record:
    return Record(*row[:8], institution=Place(row[8], row[9]), authorizer=Party(row[10], row[11]),
                  beneficiary=Party(row[12], row[13]), binding=BindingRef(row[14]))


def _records(conditions: list, period: Period, limit: int, cursor: str | None):
    return page(FamilyPayment, conditions, period, limit, cursor, base=_RECORD_COLUMNS, make=_record)


def of_person(person: Person, period: Period, limit: int, cursor: str | None):
    """Everything the person may see: what his account paid for his relatives, and what theirs paid for him."""
    return _records([FamilyPayment.authorizer_id == person.id, FamilyPayment.beneficiary_id == person.id],
                    period, limit, cursor)


def of_binding(person: Person, binding_id: str, period: Period, limit: int, cursor: str | None):
    binding = db.session.get(Binding, binding_id)
    if binding is None or person.id not in (binding.authorizer_id, binding.beneficiary_id):
        raise not_found()
    return _records([FamilyPayment.binding_id == binding.id], period, limit, cursor)


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
