"""Settlement at 定点医药机构 (结算, R7–R10): quote, settle and refund, the family accounts paying through the ledger.

A settlement reads and moves money under locks: the patient's and his authorizers' rows (people first, in id
order) and his active bindings, so that a revocation, a new limit or another settlement of the same people waits
for it or is waited for; the ledger's conditional updates guard every balance besides. One ledger transaction
moves every fen of a settlement, and one reverses it.

Quote and settle read and write through api/services/settlement_store.py (a few plain statements: settlement is
the service's busiest write); this module checks, plans with the policy engine and answers. Refunds and the rest
are rarer and use the ORM.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.orm import joinedload

from api import idnumber, ledger, policy
from api.auth import voucher_holder
from api.errors import ApiError, not_found
from api.extensions import db
from api.masking import mask_id, mask_name
from api.models import (Binding, FamilyPayment, ImpersonationAttempt, Institution, Person, Settlement, StaffUser,
                        new_id, utcnow)
from api.services import audit, notifications
from api.services import settlement_store as store
from api.services.settlement_store import Breakdown
from api.services.people import facts_from, policies_at
from api.services.rule_facts import lock_people
from api.services.tx import unit_of_work
from api.timefmt import local_iso, local_today

IMPERSONATION_WINDOW = dt.timedelta(days=30)
IMPERSONATIONS_BEFORE_SUSPENSION = 3  # the third refusal within the window suspends networked settlement (R9)


def request_hash(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


# --- who may settle -------------------------------------------------------------------------------------------

class _Impersonation(Exception):
    """R9 refused: recorded after the settlement's transaction is rolled back (the record must stay)."""

    def __init__(self, patient: store.PersonRow, kind: str, holder_id: int | None):
        super().__init__(kind)
        self.patient, self.kind, self.holder_id = patient, kind, holder_id


def _id_number(body: dict) -> str:
    try:
        return idnumber.normalize(body["patient_id_number"])
    except idnumber.InvalidIdNumber:
        raise ApiError("INVALID_ID_NUMBER", 400, "patient_id_number") from None


def _check_patient(institution: Institution, found: store.Patient | None, credential: str) -> store.PersonRow:
    """R8 (a designated institution), R9 (the patient's own credential), a settleable patient; 4xx otherwise.
    A credential that is not the patient's raises _Impersonation, to be recorded once this transaction is gone."""
    if not institution.designated:
        raise ApiError("NOT_DESIGNATED", 403)
    if found is None:
        raise ApiError("PATIENT_NOT_FOUND", 422, "patient_id_number")
    patient = found.person
    if credential and credential == patient.card_number:  # his own card: no query to name him
        kind, holder_id, expired = "card", patient.id, False
    else:
        kind, holder_id, expired = _credential(credential)
    if holder_id != patient.id:
        raise _Impersonation(patient, kind, holder_id)
    if expired:
        raise ApiError("VOUCHER_EXPIRED", 403, "credential")
    code = policy.settlement_refusal(facts_from(patient, None), credential_is_patients=True,
                                     institution_designated=True)
    if code:
        raise ApiError(code, 403 if code == "SETTLEMENT_SUSPENDED" else 422)
    return patient


def _credential(credential: str) -> tuple[str, int | None, bool]:
    """(kind, the holder's person id or None, expired) of a card number or a 医保电子凭证 code."""
    found = voucher_holder(credential)
    if found is not None:
        return "voucher", found[0], found[1]
    holder = db.session.scalar(select(Person.id).where(Person.card_number == credential)) if credential else None
    return ("card", holder, False) if holder is not None else ("unknown", None, False)


def _record_impersonation(institution: Institution, refused: _Impersonation) -> None:
    """冒名就医: recorded against the credential's holder; his third within 30 days suspends his networked settlement
    until a reviewer lifts it, and he is told."""
    patient, holder_id = refused.patient, refused.holder_id
    with unit_of_work():
        db.session.add(ImpersonationAttempt(holder_id=holder_id, patient_id=patient.id,
                                            institution_id=institution.id, credential_kind=refused.kind))
        audit.record(f"institution:{institution.code}", "impersonation_refused", target=mask_id(patient.id_number),
                     detail={"credential_kind": refused.kind})
        if holder_id is None:
            return
        lock_people([holder_id])
        db.session.flush()
        recent = db.session.scalar(select(func.count()).select_from(ImpersonationAttempt).where(
            ImpersonationAttempt.holder_id == holder_id, ImpersonationAttempt.at >= utcnow() - IMPERSONATION_WINDOW))
        holder = db.session.get(Person, holder_id)
        if recent >= IMPERSONATIONS_BEFORE_SUSPENSION and not holder.settlement_suspended:
            holder.settlement_suspended, holder.suspended_at = True, utcnow()
            holder.suspension_reason = "IMPERSONATION_REPEATED"
            notifications.notify(holder, "settlement_suspended", "医保联网结算已暂停",
                                 f"您的医保卡（医保电子凭证）30天内{recent}次被他人用于就医结算，按规定已暂停您的联网结算。"
                                 "钱可以共济，码（卡）不能共用。如有疑问，请携带身份证到医保经办窗口办理恢复。")


# --- the plan -------------------------------------------------------------------------------------------------

@dataclass
class _Plan:
    breakdown: Breakdown
    patient: store.PersonRow
    facts: store.Facts
    own_split: tuple[int, int]                                          # (当年, 历年) from his own account
    family: list[tuple[store.BindingRow, int, tuple[int, int]]]        # (binding, amount, (当年, 历年))
    own_balance_after_fen: int                                          # his account's balance once paid (0: none)


# The HIS gateway's options (api/his/): `pooling(patient, eligible_fen, his region's policy or None)` is the fund's
# part, computed under the patient's lock instead of taken from the body; `use_accounts=False` (acct_used_flag "0")
# leaves every account out.
Pooling = Callable[[store.PersonRow, int, "policy.Policy | None"], int]


def _plan(sql: store.Sql, institution: Institution, found: store.Patient, body: dict, use_accounts: bool = True,
          pooling: Pooling | None = None) -> _Plan:
    """R7–R10 on what is true now: locks and reads the people, bindings and accounts (settlement_store.read), then
    asks the engine."""
    items, pooled_fen = body["items"], body["pooled_fen"]
    total = sum(item["amount_fen"] for item in items)
    eligible = policy.eligible_fen(items)
    if pooling is None and pooled_fen > eligible:
        raise ApiError("POOLED_EXCEEDS_ELIGIBLE", 422, "pooled_fen")
    facts = store.read(sql, found.person.id, found.authorizer_ids if use_accounts else [], institution.id,
                       with_bindings=use_accounts)
    patient = facts.people[found.person.id]
    code = policy.settlement_refusal(facts_from(patient, None), credential_is_patients=True,
                                     institution_designated=True)
    if code:  # changed while the locks were awaited
        raise ApiError(code, 403 if code == "SETTLEMENT_SUSPENDED" else 422)
    people = {pid: facts_from(person, facts.balances(pid)) for pid, person in facts.people.items()}
    policies = policies_at({person.region_code[:2]: person.policy_version for person in facts.people.values()})
    if pooling is not None:
        pooled_fen = pooling(patient, eligible, policies.get(patient.region_code[:2]))
    sources, by_id = [], {}
    for b in facts.bindings:
        authorizer = facts.people[b.authorizer_id]
        authorizer_policy = policies.get(authorizer.region_code[:2])
        if authorizer_policy is None:  # his region has left the scheme: his account shares nothing
            continue
        by_id[b.id] = b
        sources.append(policy.FamilySource(
            binding_id=b.id, authorizer=people[b.authorizer_id], policy=authorizer_policy, created_at=b.created_at,
            priority=b.priority, monthly_limit_fen=b.monthly_limit_fen, used_this_month_fen=b.used_this_month_fen,
            per_payment_limit_fen=b.per_payment_limit_fen, valid_until=b.valid_until, valid_from=b.valid_from,
            beneficiary=people[patient.id]))  # R14: people who no longer qualify pay nothing, swept or not
    own = people[patient.id]
    own_available = own.balance_fen if own.has_account and use_accounts else 0
    plan = policy.plan_payment(total - pooled_fen, eligible - pooled_fen, own_available,
                               sources, institution.region_code, local_today(),
                               patient_policy=policies.get(patient.region_code[:2]))
    own_split = policy.split_debit(plan.own_account_fen, own.balance_fen - own.prior_year_fen, own.prior_year_fen)
    family, shown = [], []
    for binding_id, amount in plan.family:
        b = by_id[binding_id]
        a = people[b.authorizer_id]
        family.append((b, amount, policy.split_debit(amount, a.balance_fen - a.prior_year_fen, a.prior_year_fen,
                                                      family_policy=policies[a.region_code[:2]])))
        shown.append(family_part(b.id, b.relation, facts.people[b.authorizer_id], amount))
    breakdown = Breakdown(total_fen=total, eligible_fen=eligible, pooled_fen=pooled_fen,
                          personal_burden_fen=total - pooled_fen, own_account_fen=plan.own_account_fen,
                          cash_fen=plan.cash_fen, family=shown)
    own_left = own.balance_fen - plan.own_account_fen if patient.insurance_type == "employee" else 0
    return _Plan(breakdown, patient, facts, own_split, family, own_left)


def family_part(binding_id: str, relation_of_binding: str, authorizer, amount_fen: int) -> dict:
    """One family payment as the institution and the patient see it (the authorizer masked)."""
    relation = policy.INVERSE[relation_of_binding]  # what the authorizer is to the patient
    return {"binding_id": binding_id, "amount_fen": amount_fen, "relation": relation,
            "relation_label": policy.RELATIONS[relation],
            "authorizer": {"name": mask_name(authorizer.name), "id_number": mask_id(authorizer.id_number)}}


# --- quote, settle, refund --------------------------------------------------------------------------------------

def quote(institution: Institution, body: dict, use_accounts: bool = True, pooling: Pooling | None = None) -> Breakdown:
    """预结算: what a settlement of this bill would pay from each account now; nothing moves."""
    number = _id_number(body)
    try:
        sql = store.Sql()
        found = store.patient(sql, number, institution.id, None)
        _check_patient(institution, found, body["credential"])
        return _plan(sql, institution, found, body, use_accounts, pooling).breakdown
    except _Impersonation as refused:
        db.session.rollback()
        _record_impersonation(institution, refused)
        raise ApiError("IMPERSONATION", 403, "credential") from None
    finally:
        db.session.rollback()  # the locks taken for a true answer are let go at once


@dataclass(frozen=True)
class Settled:
    """The settlement just written, as the HIS gateway's `on_settled` sees it."""
    id: str
    created_at: dt.datetime
    own_balance_fen: int  # the patient's own account's balance after it (0 without one)


def settle(institution: Institution, body: dict, idempotency_key: str, use_accounts: bool = True,
           pooling: Pooling | None = None,
           on_settled: Callable[[Settled, Breakdown], None] | None = None) -> tuple[dict, bool]:
    """结算: pays the bill (R10 order) in one ledger transaction; returns (the answer, replayed). The same
    Idempotency-Key and body answer the first settlement again (replayed = True), another body with it is 409.
    `on_settled` runs in that transaction (the HIS gateway records its own rows there, so that they and the money
    commit together)."""
    digest = request_hash(body)
    try:
        number = idnumber.normalize(body["patient_id_number"])
    except idnumber.InvalidIdNumber:
        number = None
    try:
        with unit_of_work() as unit:
            sql = store.Sql()
            found = store.patient(sql, number, institution.id, idempotency_key) if number else None
            existing = found.existing if found else store.settlement_by_key(sql, institution.id, idempotency_key)
            if existing is not None:
                return _replay(existing, digest), True
            if number is None:
                raise ApiError("INVALID_ID_NUMBER", 400, "patient_id_number")
            _check_patient(institution, found, body["credential"])
            answer = _settle(sql, unit, institution, found, body, idempotency_key, digest, use_accounts, pooling,
                             on_settled)
    except _Impersonation as refused:
        _record_impersonation(institution, refused)
        raise ApiError("IMPERSONATION", 403, "credential") from None
    except store.DuplicateKey:  # the same key won by a concurrent request: its settlement is the answer
        with unit_of_work():
            existing = store.settlement_by_key(store.Sql(), institution.id, idempotency_key)
        return _replay(existing, digest), True
    return answer, False


def _replay(existing: tuple[str, str], digest: str) -> dict:
    settlement_id, first_digest = existing
    if first_digest != digest:
        raise ApiError("IDEMPOTENCY_KEY_REUSED", 409, "Idempotency-Key")
    return answer_of(_loaded(settlement_id))


def _loaded(settlement_id: str) -> Settlement:
    """A settlement with what its answer shows (patient, family payments, their bindings and authorizers)."""
    return db.session.scalars(select(Settlement).where(Settlement.id == settlement_id).options(
        joinedload(Settlement.patient), joinedload(Settlement.family_payments).joinedload(FamilyPayment.binding)
        .joinedload(Binding.authorizer))).unique().one()


def answer_of(s: Settlement) -> dict:
    """A settlement as institutions see it (SettlementOut)."""
    return {
        "id": s.id, "status": s.status, "total_fen": s.total_fen, "eligible_fen": s.eligible_fen,
        "pooled_fen": s.pooled_fen, "personal_burden_fen": s.personal_burden_fen,
        "own_account_fen": s.own_account_fen, "cash_fen": s.cash_fen,
        "family": [family_part(p.binding_id, p.binding.relation, p.binding.authorizer, p.amount_fen)
                   for p in s.family_payments],
        "patient": {"name": mask_name(s.patient.name), "id_number": mask_id(s.patient.id_number)},
        "created_at": local_iso(s.created_at), "refunded_at": local_iso(s.refunded_at),
    }


def _settle(sql: store.Sql, unit, institution: Institution, found: store.Patient, body: dict, key: str, digest: str,
            use_accounts: bool, pooling: Pooling | None, on_settled) -> dict:
    plan = _plan(sql, institution, found, body, use_accounts, pooling)
    b, patient, facts = plan.breakdown, plan.patient, plan.facts
    outcome = store.Outcome(id=new_id(), institution_id=institution.id, patient_id=patient.id, key=key,
                            request_hash=digest, items=body["items"], amounts=b, memo=f"{institution.code} 结算")
    outcome.entries = _entries(facts, patient.id, plan.own_split, None)
    for binding, amount, split in plan.family:
        outcome.entries += _entries(facts, binding.authorizer_id, split, binding.id)
        outcome.payments.append(store.Payment(
            binding, amount, "家庭共济账户支付提醒",
            f"您的医保个人账户为【{policy.RELATIONS[binding.relation]} {mask_name(patient.name)}】"
            f"在【{institution.name}】支付 {policy.money(amount)} 元。"))
    if outcome.entries:
        outcome.counterpart_account_id = facts.institution_account_id or \
            ledger.institution_account(institution.id).id
    now = utcnow()
    try:
        if store.write(sql, outcome, now):
            unit.drain_after_commit()  # the payment notices: one drain job for all that ring meanwhile
    except store.Overdrawn:  # impossible under the locks; never half a payment if it happens
        raise ApiError("CONFLICT", 409) from None
    if on_settled is not None:
        on_settled(Settled(outcome.id, now, plan.own_balance_after_fen), b)
    return {"id": outcome.id, "status": "settled", **b.__dict__,
            "patient": {"name": mask_name(patient.name), "id_number": mask_id(patient.id_number)},
            "created_at": local_iso(now), "refunded_at": None}


def _entries(facts: store.Facts, person_id: int, split: tuple[int, int],
             binding_id: str | None) -> list[tuple[int, int, str | None]]:
    """The debits of a person's account: (account id, −amount, binding id) from 当年 and 历年."""
    return [(facts.accounts[(person_id, kind)].id, -amount, binding_id)
            for kind, amount in (("personal_current", split[0]), ("personal_prior", split[1])) if amount]


def refund(institution: Institution, settlement_id: str,
           on_refunded: Callable[[Settlement], None] | None = None) -> Settlement:
    """退费: reverses the settlement exactly — each account gets back what it paid, the month's use goes back down —
    once; a second refund is 409, another institution's settlement is 404. `on_refunded` runs in its transaction."""
    with unit_of_work():
        settlement = db.session.get(Settlement, settlement_id)
        if settlement is None or settlement.institution_id != institution.id:
            raise not_found()
        now = utcnow()
        if not db.session.execute(update(Settlement).where(Settlement.id == settlement.id,
                                                           Settlement.status == "settled")
                                  .values(status="refunded", refunded_at=now),
                                  execution_options={"synchronize_session": False}).rowcount:
            raise ApiError("ALREADY_REFUNDED", 409)
        if settlement.transaction_id is not None:
            reversal = [ledger.Entry(p.account_id, -p.amount_fen, p.binding_id)
                        for p in ledger.postings_of(settlement.transaction_id)]
            settlement.refund_transaction_id = ledger.post("refund", reversal, reference=f"refund:{settlement.id}",
                                                           memo=f"{institution.code} 退费").id
        db.session.execute(update(FamilyPayment).where(FamilyPayment.settlement_id == settlement.id)
                           .values(refunded_at=now), execution_options={"synchronize_session": False})
        for payment in settlement.family_payments:
            binding = payment.binding
            notifications.notify(payment.authorizer, "family_refund", "家庭共济退费提醒",
                                 f"【{policy.RELATIONS[binding.relation]} {mask_name(payment.beneficiary.name)}】"
                                 f"在【{institution.name}】的 {policy.money(payment.amount_fen)} 元已退费，"
                                 "已退回您的医保个人账户。", binding_id=binding.id)
        if on_refunded is not None:
            on_refunded(settlement)
    db.session.refresh(settlement)
    return settlement


# --- suspension (R9) ---------------------------------------------------------------------------------------------

def set_suspension(staff: StaffUser, person: Person, suspended: bool, reason: str) -> Person:
    """A reviewer lifts (or sets) a person's settlement suspension; audited, and the person is told."""
    with unit_of_work():
        lock_people([person.id])
        db.session.refresh(person)
        if person.settlement_suspended == suspended:
            raise ApiError("SUSPENSION_UNCHANGED", 409)
        person.settlement_suspended = suspended
        person.suspended_at = utcnow() if suspended else None
        person.suspension_reason = reason if suspended else None
        audit.record(f"staff:{staff.username}", "settlement_suspension_lifted" if not suspended
                     else "settlement_suspension_set", target=mask_id(person.id_number),
                     detail={"person": mask_id(person.id_number), "reason": reason})
        if suspended:
            notifications.notify(person, "settlement_suspended", "医保联网结算已暂停",
                                 f"您的联网结算已暂停：{reason}。如有疑问，请携带身份证到医保经办窗口咨询。")
        else:
            notifications.notify(person, "settlement_resumed", "医保联网结算已恢复",
                                 "您的联网结算已恢复，就医购药时请出示您本人的医保卡或医保电子凭证。")
    return person
