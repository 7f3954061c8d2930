"""Reading the registry for the rules: a person's facts and the policy of his region."""
from __future__ import annotations

from sqlalchemy import select

from api import ledger
from api.errors import ApiError
from api.extensions import db
from api.models import Person, RegionPolicy
from api.policy import PersonFacts, Policy


def policy_or_none(region_code: str) -> Policy | None:
    row = db.session.get(RegionPolicy, region_code[:2])
    return None if row is None else Policy.from_dict(row.data)


def policy_for(region_code: str) -> Policy:
    found = policy_or_none(region_code)
    if found is None:
        raise ApiError("OUT_OF_SCOPE", 422)
    return found


def facts_of(person: Person) -> PersonFacts:
    account = ledger.account_of(person)
    total, prior = account or (0, 0)
    return PersonFacts(
        id_number=person.id_number, insurance_type=person.insurance_type, status=person.status,
        region_code=person.region_code, balance_fen=total, prior_year_fen=prior,
        has_account=person.insurance_type == "employee" and account is not None,
        settlement_suspended=person.settlement_suspended,
    )


def person_by_id_number(id_number: str) -> Person | None:
    return db.session.scalar(select(Person).where(Person.id_number == id_number))
