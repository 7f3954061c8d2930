"""What the rules of R1–R5 read from the database: the people's facts, their policies and their links."""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import literal, or_, select, union_all

from api import policy
from api.errors import ApiError
from api.extensions import db
from api.models import Application, Binding, Person
from api.services.people import facts_of, facts_of_many, policies_of, policy_for


@dataclass(frozen=True)
class _Link:
    kind: str  # binding | application (in progress)
    id: str
    authorizer_id: int
    beneficiary_id: int
    relation: str  # what the beneficiary is to the authorizer
    created_at: object


class RuleContext:
    """What R1–R5 read about a set of authorizer/beneficiary pairs, loaded in a handful of queries whatever the
    number of pairs: their policies, the people's facts, and every active binding or application in progress
    of any of the people, as authorizer or as beneficiary, with the other side's facts.

    On PostgreSQL the people's rows are locked first (`lock_people`), so what is read stays true until the commit.
    """

    def __init__(self, pairs: list[tuple[Person, Person]]):
        people = {p.id: p for pair in pairs for p in pair}
        lock_people(list(people))
        self.policies = policies_of({p.region_code for p in people.values()})
        ids = list(people)
        pending = select(literal("application"), Application.id, Application.authorizer_id,
                         Application.beneficiary_id, Application.relation, Application.created_at) \
            .where(Application.status.in_(policy.PENDING_APPLICATION),
                   or_(Application.authorizer_id.in_(ids), Application.beneficiary_id.in_(ids)))
        active = select(literal("binding"), Binding.id, Binding.authorizer_id, Binding.beneficiary_id,
                        Binding.relation, Binding.created_at) \
            .where(Binding.status == "active", or_(Binding.authorizer_id.in_(ids), Binding.beneficiary_id.in_(ids)))
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

    def links_of(self, person_id: int, deciding: Application | None = None) -> list[policy.ExistingLink]:
        """The person's links seen from his side: what the other one is to him, and the part he plays.

        An application being decided is measured against the bindings and the applications filed before it: the
        older one has the first claim, so that two applications that exclude each other do not block each other.
        """
        seen = []
        for link in self.links.values():
            if deciding is not None and (link.id == deciding.id or (
                    link.kind == "application" and (link.created_at, link.id) > (deciding.created_at, deciding.id))):
                continue
            if link.authorizer_id == person_id:
                seen.append(policy.ExistingLink(link.relation, self.facts[link.beneficiary_id], "authorizer"))
            elif link.beneficiary_id == person_id:
                seen.append(policy.ExistingLink(policy.INVERSE[link.relation], self.facts[link.authorizer_id],
                                                "beneficiary"))
        return seen

    def refusal(self, authorizer: Person, beneficiary: Person, relation: str,
                deciding: Application | None = None) -> str | None:
        """R1–R3/R5 for the pair under the authorizer's policy (REGION_NOT_COVERED when his region has none);
        `deciding` is the application under review, when it is one."""
        return policy.application_refusal(
            self.policy_of(authorizer), self.facts[authorizer.id], self.facts[beneficiary.id], relation,
            self.links_of(authorizer.id, deciding), self.links_of(beneficiary.id, deciding),
            beneficiary_policy=self.policies.get(beneficiary.region_code[:2]))

    def forget(self, application_id: str) -> None:
        """An application of the set was turned down: it no longer counts against the caps of the others."""
        self.links.pop(application_id, None)


def refusal_for(authorizer: Person, beneficiary: Person | None, relation: str,
                deciding: Application | None = None, duplicates_conflict: bool = False) -> str | None:
    """R1–R3/R5 for one pair, under the people's row locks. With `duplicates_conflict` an existing binding or
    application of the same pair answers 409 first."""
    if beneficiary is None:  # not in the registry: the engine says BENEFICIARY_NOT_INSURED (after R1)
        return policy.application_refusal(policy_for(authorizer.region_code), facts_of(authorizer), None,
                                          relation, [], [])
    context = RuleContext([(authorizer, beneficiary)])
    if duplicates_conflict and authorizer.id != beneficiary.id and (code := context.duplicate(authorizer, beneficiary)):
        raise ApiError(code, 409)
    return context.refusal(authorizer, beneficiary, relation, deciding)


def lock_people(person_ids) -> None:
    """On PostgreSQL, locks the people's rows until the commit (in id order, so that two transactions cannot
    deadlock) and reloads them: decisions about the same people take turns and read what is true now, so the
    rules (and the caps of R3 and R5) hold under concurrency. FOR NO KEY UPDATE, so that rows merely pointing at a
    person (a channel account, a notification, a settlement) are not held up. SQLite needs nothing: its writers
    already take turns."""
    if db.session.get_bind().dialect.name != "sqlite" and person_ids:
        db.session.scalars(select(Person).where(Person.id.in_(person_ids)).order_by(Person.id)
                           .with_for_update(key_share=True).execution_options(populate_existing=True)).all()
