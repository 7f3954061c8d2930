"""Reading the registry for the rules: a person's facts and the policy of his region."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select

from api import ledger
from api.errors import ApiError
from api.extensions import db
from api.models import Person, RegionPolicy
from api.policy import PersonFacts, Policy, shareable_balance


# Parsed policies of this process by province, with the row's updated_at they were parsed from: a policy is
# parsed once, and again only when the registry has changed it (every process sees the change at its next read).
_parsed: dict[str, tuple[object, Policy]] = {}


def policies_of(region_codes) -> dict[str, Policy]:
    """The policies of the provinces of `region_codes`, by province code, in one query (of their versions only,
    when this process has parsed them already)."""
    provinces = {code[:2] for code in region_codes}
    return policies_at(dict(db.session.execute(select(RegionPolicy.province_code, RegionPolicy.updated_at)
                                               .where(RegionPolicy.province_code.in_(provinces))).all()))


def policies_at(versions: dict[str, dt.datetime | None]) -> dict[str, Policy]:
    """The policies of these versions (province code → updated_at, as read beside the people they govern; None
    where the province has none), parsed again only when a version changed."""
    versions = {code: version for code, version in versions.items() if version is not None}
    stale = [code for code, version in versions.items() if _parsed.get(code, (None,))[0] != version]
    if stale:
        for code, version, data in db.session.execute(
                select(RegionPolicy.province_code, RegionPolicy.updated_at, RegionPolicy.data)
                .where(RegionPolicy.province_code.in_(stale))):
            _parsed[code] = (version, Policy.from_dict(data))
    return {code: _parsed[code][1] for code in versions if code in _parsed}


def all_policies() -> list[Policy]:
    """Every region's policy, by province code (GET /policies, the coverage checker)."""
    codes = db.session.scalars(select(RegionPolicy.province_code)).all()
    found = policies_of(codes)
    return [found[code] for code in sorted(found)]


def policy_or_none(region_code: str) -> Policy | None:
    return policies_of([region_code]).get(region_code[:2])


def policy_for(region_code: str) -> Policy:
    found = policy_or_none(region_code)
    if found is None:
        raise ApiError("REGION_NOT_COVERED", 422)
    return found


def facts_of(person: Person) -> PersonFacts:
    return facts_of_many([person])[person.id]


def facts_of_many(persons) -> dict[int, PersonFacts]:
    """Each person's facts by id, with the balances of all of them read in one query."""
    accounts = ledger.accounts_of([p.id for p in persons])
    return {person.id: facts_from(person, accounts.get(person.id)) for person in persons}


def facts_from(person, balances: tuple[int, int] | None) -> PersonFacts:
    """What the rules know of a person (a Person, or a row with its columns) and his account's (total, 历年) balance,
    None without an account."""
    total, prior = balances or (0, 0)
    return PersonFacts(id_number=person.id_number, insurance_type=person.insurance_type, status=person.status,
                       region_code=person.region_code, balance_fen=total, prior_year_fen=prior,
                       has_account=person.insurance_type == "employee" and balances is not None,
                       settlement_suspended=bool(person.settlement_suspended))


def person_by_id_number(id_number: str) -> Person | None:
    return db.session.scalar(select(Person).where(Person.id_number == id_number))


@dataclass(frozen=True)
class Profile:
    """What a person's own page shows (GET /me, a login's answer), read once: his facts and his region's policy."""
    person: Person
    facts: PersonFacts
    policy: Policy | None

    @property
    def shareable_fen(self) -> int | None:
        return None if self.policy is None else shareable_balance(self.policy, self.facts)


def profile(person: Person) -> Profile:
    return Profile(person, facts_of(person), policy_or_none(person.region_code))
