"""The double-entry ledger: every movement of money is a transaction whose postings, in integer 分, sum to zero.

A personal account can never go below zero. The guard is in the database operation itself — a conditional
`UPDATE … WHERE balance_fen + :delta >= 0` whose row count is checked — so that it holds under concurrency on
PostgreSQL (the WHERE clause is re-evaluated after a concurrent writer commits) and on SQLite (one writer at a
time, transactions begun IMMEDIATE); a CHECK constraint is the last line of defence.

Only personal accounts keep a running balance (`balance_fen`): the guard reads it, and a person's page shows it.
The counterpart accounts — an institution's, the registry's funding — keep none (their `balance_fen` stays 0):
every settlement of a hospital, every credit of a registry import, would otherwise update that one row, and all of
them would wait on its lock in turn. Their balance is the sum of their postings (`balance()`), read when asked.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from api.extensions import db
from api.models import LedgerAccount, LedgerTransaction, Person, Posting, utcnow

PERSONAL_KINDS = ("personal_current", "personal_prior")
REGISTRY_ACCOUNT = "registry:funding"  # the counterpart of balances loaded from the registry


class InsufficientFunds(Exception):
    """A posting would take a personal account below zero; nothing of the transaction was written."""

    def __init__(self, account_code: str):
        super().__init__(account_code)
        self.account_code = account_code


class UnbalancedTransaction(ValueError):
    pass


@dataclass(frozen=True)
class Entry:
    account_id: int
    amount_fen: int            # positive raises the balance, negative lowers it
    binding_id: str | None = None


def system_account(code: str, kind: str = "registry") -> LedgerAccount:
    account = db.session.scalar(select(LedgerAccount).where(LedgerAccount.code == code))
    if account is None:
        account = LedgerAccount(code=code, kind=kind, balance_fen=0)
        db.session.add(account)
        db.session.flush()
    return account


def institution_account(institution_id: int) -> LedgerAccount:
    """The institution's account, created on first use (a savepoint, so a concurrent first use is no error)."""
    query = select(LedgerAccount).where(LedgerAccount.institution_id == institution_id)
    account = db.session.scalar(query)
    if account is None:
        try:
            with db.session.begin_nested():
                db.session.add(LedgerAccount(code=f"institution:{institution_id}", kind="institution",
                                             institution_id=institution_id, balance_fen=0))
        except IntegrityError:
            pass
        account = db.session.scalar(query)
    return account


def postings_of(transaction_id: int) -> list[Posting]:
    return list(db.session.scalars(select(Posting).where(Posting.transaction_id == transaction_id)
                                   .order_by(Posting.id)))


def personal_accounts(person: Person) -> tuple[LedgerAccount, LedgerAccount]:
    """The person's (current-year, prior-year 历年) accounts, created empty on first use."""
    found = {a.kind: a for a in db.session.scalars(
        select(LedgerAccount).where(LedgerAccount.person_id == person.id))}
    for kind in PERSONAL_KINDS:
        if kind not in found:
            found[kind] = LedgerAccount(code=f"person:{person.id}:{kind.split('_')[1]}", kind=kind,
                                        person_id=person.id, balance_fen=0)
            db.session.add(found[kind])
    db.session.flush()
    return found["personal_current"], found["personal_prior"]


def post(kind: str, entries: list[Entry], reference: str | None = None, memo: str | None = None) -> LedgerTransaction:
    """Writes one balanced transaction inside the caller's database transaction.

    Raises InsufficientFunds (the caller rolls back) when a personal account would go below zero.
    Accounts are updated in id order, so concurrent transactions lock rows in one order and cannot deadlock.
    """
    entries = [e for e in entries if e.amount_fen != 0]
    if any(type(e.amount_fen) is not int for e in entries):  # bool is an int too; not money
        raise UnbalancedTransaction("amounts must be integer fen")
    if sum(e.amount_fen for e in entries) != 0:
        raise UnbalancedTransaction("postings must sum to zero")
    txn = LedgerTransaction(kind=kind, reference=reference, memo=memo)
    db.session.add(txn)
    db.session.flush()
    personal = _personal({e.account_id for e in entries})
    for entry in sorted(entries, key=lambda e: e.account_id):
        if entry.account_id in personal:
            _apply(entry.account_id, entry.amount_fen)
        db.session.add(Posting(transaction_id=txn.id, account_id=entry.account_id, amount_fen=entry.amount_fen,
                               binding_id=entry.binding_id))
    db.session.flush()
    return txn


def _personal(account_ids) -> set[int]:
    """Which of these accounts are personal (keep a running balance)."""
    found, ids = set(), sorted(account_ids)
    for start in range(0, len(ids), 1000):
        found.update(db.session.scalars(select(LedgerAccount.id).where(LedgerAccount.id.in_(ids[start:start + 1000]),
                                                                     LedgerAccount.kind.in_(PERSONAL_KINDS))))
    return found


def _apply(account_id: int, delta: int) -> None:
    """Changes a personal account's balance, never below zero."""
    table = LedgerAccount.__table__
    stmt = (update(table).where(table.c.id == account_id, table.c.balance_fen + delta >= 0)
            .values(balance_fen=table.c.balance_fen + delta))
    if db.session.execute(stmt, execution_options={"synchronize_session": False}).rowcount != 1:
        code = db.session.scalar(select(LedgerAccount.code).where(LedgerAccount.id == account_id))
        raise InsufficientFunds(code or str(account_id))
    # keep loaded objects in step with the row
    for obj in db.session.identity_map.values():
        if isinstance(obj, LedgerAccount) and obj.id == account_id:
            db.session.expire(obj, ["balance_fen"])


def balance(account_id: int) -> int:
    """Any account's balance as its postings say (a counterpart's only balance; a personal account's cache is
    checked against it by check())."""
    return int(db.session.scalar(select(func.coalesce(func.sum(Posting.amount_fen), 0))
                                 .where(Posting.account_id == account_id)))


def account_of(person: Person) -> tuple[int, int] | None:
    """(total, prior-year part) of a person's personal account in 分, or None when he has none; one query."""
    return accounts_of([person.id]).get(person.id)


def accounts_of(person_ids) -> dict[int, tuple[int, int]]:
    """account_of for several people in one query; people without a personal account are left out."""
    parts: dict[int, dict[str, int]] = {}
    for person_id, kind, balance in db.session.execute(
            select(LedgerAccount.person_id, LedgerAccount.kind, LedgerAccount.balance_fen)
            .where(LedgerAccount.person_id.in_(set(person_ids)))):
        parts.setdefault(person_id, {})[kind] = balance
    return {pid: (p.get("personal_current", 0) + p.get("personal_prior", 0), p.get("personal_prior", 0))
            for pid, p in parts.items()}


def balance_of(person: Person) -> tuple[int, int]:
    """(total, prior-year part) of a person's personal account, in 分 (0, 0 without one)."""
    return account_of(person) or (0, 0)


def has_account(person: Person) -> bool:
    return account_of(person) is not None


def check() -> list[str]:
    """Every transaction sums to zero, every personal account's balance equals its postings and is not negative,
    and no counterpart account keeps a balance of its own; returns the mismatches."""
    problems = []
    for txn_id, total in db.session.execute(
            select(Posting.transaction_id, func.sum(Posting.amount_fen)).group_by(Posting.transaction_id)
            .having(func.sum(Posting.amount_fen) != 0)):
        problems.append(f"transaction {txn_id} sums to {total}, not 0")
    sums = dict(db.session.execute(select(Posting.account_id, func.sum(Posting.amount_fen))
                                   .group_by(Posting.account_id)).all())
    # columns, not entities: an account object already in the session would keep its loaded (stale) balance
    for account_id, code, kind, cached in db.session.execute(
            select(LedgerAccount.id, LedgerAccount.code, LedgerAccount.kind, LedgerAccount.balance_fen)
            .order_by(LedgerAccount.id)):
        if kind not in PERSONAL_KINDS:
            if cached != 0:
                problems.append(f"account {code} keeps a balance of {cached}; a counterpart account keeps none")
            continue
        expected = int(sums.get(account_id, 0) or 0)
        if cached != expected:
            problems.append(f"account {code} balance {cached} != postings {expected}")
        if cached < 0:
            problems.append(f"account {code} is negative: {cached}")
    return problems


@dataclass(frozen=True)
class Movement:
    """One transaction for post_many: what post() takes, as a value."""
    kind: str
    entries: list[Entry]
    reference: str | None = None
    memo: str | None = None


def post_many(movements: list[Movement]) -> list[int]:
    """Writes many balanced transactions at once (bulk loads), inside the caller's database transaction.

    Same tables and invariants as post(), in a handful of statements instead of several per transaction: one
    INSERT for the transactions (fastest when every movement has a reference), one executemany for the postings,
    and one guarded UPDATE per account with its net change (in account id order, as post() does); the guard holds
    for the net change, as the caller's database transaction commits all of them or none.
    Raises UnbalancedTransaction before writing anything, or InsufficientFunds when a personal account would end
    below zero (the caller rolls back).
    Returns the new transaction ids in the order of `movements`.
    """
    if not movements:
        return []
    cleaned = []
    for movement in movements:
        entries = [e for e in movement.entries if e.amount_fen != 0]
        if any(type(e.amount_fen) is not int for e in entries):  # bool is an int too; not money
            raise UnbalancedTransaction("amounts must be integer fen")
        if sum(e.amount_fen for e in entries) != 0:
            raise UnbalancedTransaction("postings must sum to zero")
        cleaned.append(entries)

    txn_table, posting_table, account_table = (LedgerTransaction.__table__, Posting.__table__,
                                               LedgerAccount.__table__)
    now = utcnow()
    rows = [{"kind": m.kind, "reference": m.reference, "memo": m.memo, "created_at": now} for m in movements]
    references = [m.reference for m in movements]
    if all(references) and len(set(references)) == len(references):
        # Unique references let a plain executemany be matched to its ids afterwards; SQLite can only return
        # ids in parameter order one row per statement, which is ten times slower.
        db.session.execute(insert(txn_table), rows)
        ids_by_reference = {}
        for start in range(0, len(references), 1000):
            ids_by_reference.update(db.session.execute(
                select(txn_table.c.reference, txn_table.c.id)
                .where(txn_table.c.reference.in_(references[start:start + 1000]))).all())
        txn_ids = [ids_by_reference[r] for r in references]
    else:
        txn_ids = list(db.session.scalars(
            insert(txn_table).returning(txn_table.c.id, sort_by_parameter_order=True), rows))
    postings = []
    net: dict[int, int] = {}
    for txn_id, entries in zip(txn_ids, cleaned):
        for entry in sorted(entries, key=lambda e: e.account_id):
            postings.append({"transaction_id": txn_id, "account_id": entry.account_id,
                             "amount_fen": entry.amount_fen, "binding_id": entry.binding_id})
            net[entry.account_id] = net.get(entry.account_id, 0) + entry.amount_fen
    if postings:
        db.session.execute(insert(posting_table), postings)

    personal = _personal(account_id for account_id, delta in net.items() if delta != 0)
    changes = [{"b_id": account_id, "b_delta": delta} for account_id, delta in sorted(net.items())
               if delta != 0 and account_id in personal]
    if changes:
        # The guard of _apply(), for every row: a personal account may not end below zero.
        stmt = (update(account_table)
                .where(account_table.c.id == bindparam("b_id"))
                .where(account_table.c.balance_fen + bindparam("b_delta") >= 0)
                .values(balance_fen=account_table.c.balance_fen + bindparam("b_delta")))
        updated = db.session.execute(stmt, changes, execution_options={"synchronize_session": False}).rowcount
        if updated != len(changes):
            raise InsufficientFunds(_first_overdrawn(net))
        touched = set(net)
        for obj in list(db.session.identity_map.values()):
            if isinstance(obj, LedgerAccount) and obj.id in touched:
                db.session.expire(obj, ["balance_fen"])
    return txn_ids


def _first_overdrawn(net: dict[int, int]) -> str:
    """The code of a personal account that a net change would take below zero (for the error)."""
    negative = [account_id for account_id, delta in net.items() if delta < 0]
    for start in range(0, len(negative), 1000):
        rows = db.session.execute(select(LedgerAccount.id, LedgerAccount.code, LedgerAccount.balance_fen)
                                  .where(LedgerAccount.id.in_(negative[start:start + 1000]),
                                         LedgerAccount.kind.in_(PERSONAL_KINDS)))
        for account_id, code, balance in rows:
            if balance + net[account_id] < 0:
                return code
    return "unknown"
