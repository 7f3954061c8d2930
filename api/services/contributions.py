"""R15 — paying a relative's 居民医保 individual contribution from the authorizer's account (代缴).

The registry says what each resident owes for a year (`resident_contributions.csv`: id_number, year, amount_fen,
status due | paid). The authorizer of an active binding pays his beneficiary's due contribution of a year from his
shareable balance, whole or not at all, through the ledger to the province's 居民医保 fund account, after
confirming the 代缴承诺书. It is paid once, whoever pays and through whatever channel: the contribution's row moves
from `due` to `paid` conditionally, the payment row is unique per contribution, and the ledger reference
`contribution:<id>` is unique — so two authorizers paying at once pay once, and the second hears ALREADY_PAID.
"""
from __future__ import annotations

from pathlib import Path

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from api import ledger, policy
from api.errors import ApiError, not_found
from api.extensions import db
from api.masking import mask_name
from api.models import (Binding, ContributionPayment, LedgerAccount, Person, ResidentContribution, StaffUser,
                        utcnow)
from api.services import audit_log, notifications
from api.services.people import facts_of_many, policies_of
from api.services.rule_facts import lock_people
from api.services.manual_reviews import serves
from api.services.tx import unit_of_work

COLUMNS = ("id_number", "year", "amount_fen", "status")
MIN_YEAR, MAX_YEAR = 2000, 2100
COMMITMENT = ("我保证所提供信息真实、准确，代缴的居民医保费用由我本人的职工医保个人账户支付，"
              "并愿意承担相应的法律责任。已通过本渠道代缴的，请勿再通过其他渠道重复缴费。")
# 400 INVALID_INPUT; 403 NOT_AUTHORIZER; 404; 409 BINDING_NOT_ACTIVE / ALREADY_PAID; 422 the rest
_STATUS = {"ALREADY_PAID": 409, "BINDING_NOT_ACTIVE": 409, "NOT_AUTHORIZER": 403, "COMMITMENT_REQUIRED": 400}


def fund_account_code(region_code: str) -> str:
    """The 居民医保 fund account of the beneficiary's province: where a 代缴 goes."""
    return f"resident_fund:{region_code[:2]}"


# --- the registry file ------------------------------------------------------------------------------------------

def import_file(path: Path, report, progress) -> None:
    """resident_contributions.csv, validated whole (`file:line: reason`) and written in the file's transaction.

    New rows are inserted, changed ones updated. A contribution paid here (代缴) stays paid whatever an older
    export says; one the registry reports paid (another channel) becomes paid and can no longer be paid here.
    """
    from api.services.registry import RowError, _fen, _id_number, _read_csv
    rows = _read_csv(path, report, COLUMNS)
    pt, ct = Person.__table__, ResidentContribution.__table__
    persons = dict(db.session.execute(select(pt.c.id_number, pt.c.id)).all())
    existing = {(r.person_id, r.year): r for r in db.session.execute(
        select(ct.c.id, ct.c.person_id, ct.c.year, ct.c.amount_fen, ct.c.status, ct.c.paid_by))}
    parsed, first_line = [], {}
    for line, row in rows:
        try:
            number = _id_number(row["id_number"], "id_number", persons)
            if number not in persons:
                raise RowError("id_number 不在参保人员登记中（persons.csv）")
            if not row["year"].isdigit() or not MIN_YEAR <= int(row["year"]) <= MAX_YEAR:
                raise RowError(f"year 须为 {MIN_YEAR}–{MAX_YEAR} 之间的年度")
            amount = _fen(row["amount_fen"], "amount_fen")
            if amount == 0:
                raise RowError("amount_fen 应缴金额须大于 0")
            if row["status"] not in policy.CONTRIBUTION_STATUSES:
                raise RowError(f"status 须为 {'|'.join(policy.CONTRIBUTION_STATUSES)}")
            key = (persons[number], int(row["year"]))
            if key in first_line:
                raise RowError(f"同一人同一年度与第 {first_line[key]} 行重复")
        except RowError as exc:
            report.error(line, str(exc))
            continue
        first_line[key] = line
        parsed.append((key, amount, row["status"]))
    progress(report.name, "校验", len(rows), len(rows))
    if not report.ok:
        return
    inserts, updates = [], []
    for (person_id, year), amount, status in parsed:
        old = existing.get((person_id, year))
        if old is None:
            inserts.append({"person_id": person_id, "year": year, "amount_fen": amount, "status": status,
                            "paid_by": "registry" if status == "paid" else None, "updated_at": utcnow()})
        elif old.paid_by == "family" or (old.amount_fen, old.status) == (amount, status):
            report.unchanged += 1
        else:
            updates.append({"id": old.id, "amount_fen": amount, "status": status,
                            "paid_by": "registry" if status == "paid" else None})
    for row in updates:  # few: a year's contributions change rarely
        db.session.execute(update(ct).where(ct.c.id == row["id"], or_(ct.c.paid_by.is_(None),
                                                                       ct.c.paid_by != "family"))
                           .values(amount_fen=row["amount_fen"], status=row["status"], paid_by=row["paid_by"],
                                   updated_at=utcnow()))
    for start in range(0, len(inserts), 5000):
        db.session.execute(ct.insert(), inserts[start:start + 5000])
    report.inserted, report.updated = len(inserts), len(updates)
    progress(report.name, "写入", len(rows), len(rows))


def _fund_account(code: str) -> LedgerAccount:
    """The fund's ledger account, created on first use (a savepoint: two first payments at once are no error)."""
    query = select(LedgerAccount).where(LedgerAccount.code == code)
    account = db.session.scalar(query)
    if account is None:
        try:
            with db.session.begin_nested():
                db.session.add(LedgerAccount(code=code, kind="fund", balance_fen=0))
        except IntegrityError:
            pass
        account = db.session.scalar(query)
    return account


# --- paying -----------------------------------------------------------------------------------------------------

def _refuse(code: str, field: str | None = None) -> ApiError:
    return ApiError(code, _STATUS.get(code, 422), field)


def pay(person: Person, binding_id: str, year: int, commitment: bool, channel: str,
        staff: StaffUser | None = None) -> ContributionPayment:
    """The authorizer pays his beneficiary's due contribution of `year` (see the module); refusals are ApiErrors.
    At the window (`staff`) the clerk's action is audited in the same transaction as the money."""
    with unit_of_work():
        binding = db.session.get(Binding, binding_id)
        if binding is None or person.id not in (binding.authorizer_id, binding.beneficiary_id):
            raise not_found()
        if person.id != binding.authorizer_id:
            raise _refuse("NOT_AUTHORIZER")
        if not commitment:
            raise _refuse("COMMITMENT_REQUIRED", "commitment")
        # the people's rows first (as a settlement takes them), then what is true now
        lock_people(sorted({binding.authorizer_id, binding.beneficiary_id}))
        db.session.refresh(binding, with_for_update=True)  # then the binding, as a settlement takes it
        if binding.status != "active":
            raise _refuse("BINDING_NOT_ACTIVE")
        authorizer, beneficiary = binding.authorizer, binding.beneficiary
        facts = facts_of_many([authorizer, beneficiary])
        policies = policies_of([authorizer.region_code])
        region_policy = policies.get(authorizer.region_code[:2])
        code = policy.binding_end_code(region_policy, facts[authorizer.id], facts[beneficiary.id])
        if code:  # changed in the registry, not yet swept: as good as ended
            raise _refuse(code)
        contribution = db.session.scalar(select(ResidentContribution).where(
            ResidentContribution.person_id == beneficiary.id, ResidentContribution.year == year)
            .execution_options(populate_existing=True))
        code = policy.contribution_refusal(region_policy, facts[authorizer.id], facts[beneficiary.id],
                                           contribution.amount_fen if contribution else None,
                                           contribution.status if contribution else None)
        if code:
            raise _refuse(code, "year" if code == "NOTHING_DUE" else None)
        # conditional: a payment committed meanwhile (another authorizer, the registry) wins
        if not db.session.execute(update(ResidentContribution)
                                  .where(ResidentContribution.id == contribution.id,
                                         ResidentContribution.status == "due")
                                  .values(status="paid", paid_by="family", updated_at=utcnow()),
                                  execution_options={"synchronize_session": False}).rowcount:
            raise _refuse("ALREADY_PAID")
        amount = contribution.amount_fen
        current, prior = ledger.personal_accounts(authorizer)
        a = facts[authorizer.id]
        from_current, from_prior = policy.split_debit(amount, a.balance_fen - a.prior_year_fen, a.prior_year_fen,
                                                      family_policy=region_policy)
        fund = _fund_account(fund_account_code(beneficiary.region_code))
        entries = [ledger.Entry(account.id, -part, binding.id)
                   for account, part in ((current, from_current), (prior, from_prior)) if part]
        entries.append(ledger.Entry(fund.id, amount))
        try:
            txn = ledger.post("contribution", entries, reference=f"contribution:{contribution.id}",
                              memo=f"居民医保代缴 {year}")
        except ledger.InsufficientFunds:  # spent meanwhile: nothing of it is paid
            raise _refuse("BALANCE_SHORT") from None
        except IntegrityError:
            raise _refuse("ALREADY_PAID") from None
        payment = ContributionPayment(contribution_id=contribution.id, binding_id=binding.id,
                                      payer_id=authorizer.id, beneficiary_id=beneficiary.id, year=year,
                                      amount_fen=amount, transaction_id=txn.id, channel=channel)
        db.session.add(payment)
        db.session.flush()
        to_a = f"【{policy.RELATIONS[binding.relation]} {mask_name(beneficiary.name)}】"
        from_b = f"【{policy.RELATIONS[policy.INVERSE[binding.relation]]} {mask_name(authorizer.name)}】"
        notifications.notify(authorizer, "contribution_paid", "居民医保代缴成功",
                             f"您已用医保个人账户为{to_a}缴纳 {year} 年度居民医保个人缴费 {policy.money(amount)} 元。"
                             "缴费证明可在“代缴记录”中下载，请勿再通过其他渠道重复缴费。", binding_id=binding.id)
        notifications.notify(beneficiary, "contribution_paid", "居民医保已代缴",
                             f"{from_b}已用其医保个人账户为您缴纳 {year} 年度居民医保个人缴费 {policy.money(amount)} 元，"
                             "请勿再通过其他渠道重复缴费。", binding_id=binding.id)
        if staff is not None:
            audit_log.record_staff(staff, "window_contribution", payment.id, authorizer,
                                   {"year": year, "amount_fen": amount})
    db.session.refresh(payment)
    return payment


def list_for(person: Person):
    """The person's 代缴 payments, as payer and as beneficiary (for api.pagination.paginate)."""
    return select(ContributionPayment).where(or_(ContributionPayment.payer_id == person.id,
                                                 ContributionPayment.beneficiary_id == person.id))


def visible_to(person: Person, payment_id: str) -> ContributionPayment:
    payment = db.session.get(ContributionPayment, payment_id)
    if payment is None or person.id not in (payment.payer_id, payment.beneficiary_id):
        raise not_found()
    return payment


def for_staff(staff, payment_id: str) -> ContributionPayment:
    """A payment whose payer the clerk serves (his region); 404 otherwise, like a missing one."""
    payment = db.session.get(ContributionPayment, payment_id)
    if payment is None or not serves(staff, payment.payer):
        raise not_found()
    return payment
