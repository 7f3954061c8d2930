"""What a settlement reads and writes, as a few plain SQL statements on the session's own connection.

Settlement is the busiest write of the service: every bill of every 定点医药机构 in a city. Through the ORM it took
27 statements and about 30 ms of Python; here it takes eight to eleven, run through the driver's cursor inside the
session's transaction (so they commit or roll back with it, and the unit of work still sends the notices after the
commit). Nothing here decides anything: the rules stay in the policy engine (api/policy.py), the bookkeeping rules
in the ledger's terms (balanced postings, personal accounts guarded in the UPDATE itself, accounts updated in id
order), and the plan in api/services/settlements.py.

The statements are written once for PostgreSQL and SQLite: `:name` parameters (rewritten to psycopg's `%(name)s`),
`IN` lists expanded, and `FOR … UPDATE` only on PostgreSQL, where the people's rows are locked in id order and the
bindings' rows after them, as everywhere else (api/services/rule_facts.lock_people). SQLite's writers already take
turns (BEGIN IMMEDIATE).
"""
from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache

from api.extensions import db
from api.models import new_id
from api.services.notifications import CHANNEL_OF_LOGIN
from api.timefmt import month_start_utc


class DuplicateKey(Exception):
    """The institution's Idempotency-Key was taken by a settlement committed meanwhile."""


class Overdrawn(Exception):
    """A personal account would go below zero (impossible under the locks; nothing is written if it happens)."""


@lru_cache(maxsize=256)
def _pyformat(statement: str) -> str:
    return re.sub(r"(?<![:\w]):(\w+)", r"%(\1)s", statement.replace("%", "%%"))


class Sql:
    """The session's connection, through its driver's cursor."""

    def __init__(self) -> None:
        connection = db.session.connection()
        self.postgres = connection.dialect.name == "postgresql"
        self.integrity_error = connection.dialect.dbapi.IntegrityError
        self.cursor = connection.connection.driver_connection.cursor()

    def run(self, statement: str, params: dict | None = None):
        self.cursor.execute(_pyformat(statement) if self.postgres else statement, params or {})
        return self.cursor

    def rows(self, statement: str, params: dict | None = None) -> list[tuple]:
        return self.run(statement, params).fetchall()

    def locking(self, clause: str) -> str:
        return f" {clause}" if self.postgres else ""

    def time(self, value: dt.datetime | None):
        """An aware UTC datetime as the UTCDateTime columns store it."""
        if value is None:
            return None
        naive = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return naive if self.postgres else naive.strftime("%Y-%m-%d %H:%M:%S.%f")

    @staticmethod
    def read_time(value) -> dt.datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = dt.datetime.fromisoformat(value)
        return value.replace(tzinfo=dt.timezone.utc)

    @staticmethod
    def read_date(value) -> dt.date | None:
        return dt.date.fromisoformat(value) if isinstance(value, str) else value

    def json(self, placeholder: str) -> str:
        return f"CAST({placeholder} AS json)" if self.postgres else placeholder


def _in(name: str, values) -> tuple[str, dict]:
    """An IN list: `(:name_0, :name_1 …)` and its parameters."""
    params = {f"{name}_{i}": value for i, value in enumerate(values)}
    return "(" + ", ".join(f":{key}" for key in params) + ")", params


# --- reads --------------------------------------------------------------------------------------------------------

@dataclass
class PersonRow:
    """A person as the settlement needs him: who he is, and the version of his region's policy."""
    id: int
    id_number: str
    name: str
    insurance_type: str
    status: str
    region_code: str
    settlement_suspended: bool
    card_number: str | None = None
    policy_version: dt.datetime | None = None


@dataclass
class Patient:
    person: PersonRow
    authorizer_ids: list[int]                  # of his active bindings, before they are locked
    existing: tuple[str, str] | None = None    # (settlement id, request hash) under this Idempotency-Key


@dataclass
class BindingRow:
    id: str
    authorizer_id: int
    relation: str
    monthly_limit_fen: int | None
    per_payment_limit_fen: int | None
    valid_from: dt.date | None
    valid_until: dt.date | None
    priority: int | None
    created_at: dt.datetime
    used_this_month_fen: int
    channel: str                               # where the authorizer hears of a payment


@dataclass
class Account:
    id: int
    balance_fen: int


@dataclass
class Facts:
    """What is true now of the patient, his authorizers and their accounts, read under their locks."""
    people: dict[int, PersonRow]
    bindings: list[BindingRow]
    accounts: dict[tuple[int, str], Account]   # (person id, personal_current | personal_prior)
    institution_account_id: int | None

    def balances(self, person_id: int) -> tuple[int, int] | None:
        """(total, 历年 part), or None without a personal account."""
        current, prior = self.accounts.get((person_id, "personal_current")), \
            self.accounts.get((person_id, "personal_prior"))
        if current is None and prior is None:
            return None
        prior_fen = prior.balance_fen if prior else 0
        return (current.balance_fen if current else 0) + prior_fen, prior_fen


_PERSON_COLUMNS = "p.id, p.id_number, p.name, p.insurance_type, p.status, p.region_code, p.settlement_suspended"


def _person(row) -> PersonRow:
    return PersonRow(id=row[0], id_number=row[1], name=row[2], insurance_type=row[3], status=row[4],
                     region_code=row[5], settlement_suspended=bool(row[6]))


def patient(sql: Sql, id_number: str, institution_id: int, key: str | None) -> Patient | None:
    """The patient by ID number, the authorizers of his active bindings, and a settlement already made under the
    institution's `key`; one statement."""
    rows = sql.rows(
        f"SELECT {_PERSON_COLUMNS}, p.card_number, b.authorizer_id, "
        "(SELECT s.id FROM settlements s WHERE s.institution_id = :institution AND s.idempotency_key = :key), "
        "(SELECT s.request_hash FROM settlements s WHERE s.institution_id = :institution AND s.idempotency_key = :key) "
        "FROM persons p LEFT JOIN bindings b ON b.beneficiary_id = p.id AND b.status = 'active' "
        "WHERE p.id_number = :number",
        {"number": id_number, "institution": institution_id, "key": key})
    if not rows:
        return None
    person = _person(rows[0])
    person.card_number = rows[0][7]
    existing = (rows[0][9], rows[0][10]) if rows[0][9] is not None else None
    return Patient(person, sorted({row[8] for row in rows if row[8] is not None}), existing)


def settlement_by_key(sql: Sql, institution_id: int, key: str) -> tuple[str, str] | None:
    rows = sql.rows("SELECT id, request_hash FROM settlements WHERE institution_id = :institution "
                    "AND idempotency_key = :key", {"institution": institution_id, "key": key})
    return tuple(rows[0]) if rows else None


def read(sql: Sql, patient_id: int, authorizer_ids: list[int], institution_id: int,
         with_bindings: bool = True) -> Facts:
    """Locks the patient and his authorizers (id order), then his active bindings, and reads them with the month's
    use of each binding and every account involved; three statements. A binding that became active after the
    patient was read, with an authorizer not locked here, is left out of this settlement."""
    ids, params = _in("person", sorted({patient_id, *authorizer_ids}))
    people = {}
    for row in sql.rows(f"SELECT {_PERSON_COLUMNS}, rp.updated_at FROM persons p "
                        "LEFT JOIN region_policies rp ON rp.province_code = substr(p.region_code, 1, 2) "
                        f"WHERE p.id IN {ids} ORDER BY p.id" + sql.locking("FOR NO KEY UPDATE OF p"), params):
        person = _person(row)
        person.policy_version = sql.read_time(row[7])
        people[person.id] = person
    bindings = []
    if with_bindings:
        for row in sql.rows(
                "SELECT b.id, b.authorizer_id, b.relation, b.monthly_limit_fen, b.per_payment_limit_fen, b.valid_from, "
                "b.valid_until, b.priority, b.created_at, "
                "(SELECT COALESCE(SUM(f.amount_fen), 0) FROM family_payments f WHERE f.binding_id = b.id "
                " AND f.created_at >= :month AND f.refunded_at IS NULL), "
                "(SELECT c.channel FROM channel_accounts c WHERE c.person_id = b.authorizer_id "
                " ORDER BY c.last_login_at DESC NULLS LAST, c.id DESC LIMIT 1) "
                "FROM bindings b WHERE b.beneficiary_id = :patient AND b.status = 'active' ORDER BY b.id"
                + sql.locking("FOR UPDATE OF b"),
                {"patient": patient_id, "month": sql.time(month_start_utc())}):
            if row[1] not in people:
                continue
            bindings.append(BindingRow(
                id=row[0], authorizer_id=row[1], relation=row[2], monthly_limit_fen=row[3],
                per_payment_limit_fen=row[4], valid_from=sql.read_date(row[5]), valid_until=sql.read_date(row[6]),
                priority=row[7], created_at=sql.read_time(row[8]), used_this_month_fen=int(row[9]),
                channel=CHANNEL_OF_LOGIN.get(row[10] or "", "sms")))
    accounts, institution_account = {}, None
    for account_id, person_id, kind, balance in sql.rows(
            f"SELECT id, person_id, kind, balance_fen FROM ledger_accounts WHERE person_id IN {ids} "
            "OR institution_id = :institution", {**params, "institution": institution_id}):
        if person_id is None:
            institution_account = account_id
        else:
            accounts[(person_id, kind)] = Account(account_id, balance)
    return Facts(people, bindings, accounts, institution_account)


# --- writes -------------------------------------------------------------------------------------------------------

@dataclass
class Payment:
    """What one binding pays, and the notice its authorizer gets."""
    binding: BindingRow
    amount_fen: int
    title: str
    body: str


@dataclass
class Breakdown:
    """What each account pays of a bill (the answer of a quote and of a settlement)."""
    total_fen: int
    eligible_fen: int
    pooled_fen: int
    personal_burden_fen: int
    own_account_fen: int
    cash_fen: int
    family: list[dict] = field(default_factory=list)  # {binding_id, authorizer, relation, relation_label, amount_fen}


@dataclass
class Outcome:
    """A settlement to write: its row, the ledger entries (account id, amount, binding id) and the family payments."""
    id: str
    institution_id: int
    patient_id: int
    key: str
    request_hash: str
    items: list
    amounts: Breakdown
    entries: list[tuple[int, int, str | None]] = field(default_factory=list)
    counterpart_account_id: int | None = None   # the institution's account, credited with what the accounts paid
    payments: list[Payment] = field(default_factory=list)
    memo: str = ""


def write(sql: Sql, outcome: Outcome, at: dt.datetime) -> list[str]:
    """Writes the settlement, its ledger transaction and its family payments; returns the new notification ids.
    Raises Overdrawn or DuplicateKey (the caller rolls back)."""
    when = sql.time(at)
    transaction_id = None
    entries = [e for e in outcome.entries if e[1]]
    paid = -sum(amount for _, amount, _ in entries)
    if paid:
        entries.append((outcome.counterpart_account_id, paid, None))
        transaction_id = sql.rows("INSERT INTO ledger_transactions (kind, reference, memo, created_at) "
                                  "VALUES ('settlement', :reference, :memo, :at) RETURNING id",
                                  {"reference": f"settlement:{outcome.id}", "memo": outcome.memo, "at": when})[0][0]
        for account_id, amount, _ in sorted(entries[:-1]):  # personal accounts, in id order; guarded
            if sql.run("UPDATE ledger_accounts SET balance_fen = balance_fen + :amount "
                       "WHERE id = :account AND balance_fen + :amount >= 0",
                       {"account": account_id, "amount": amount}).rowcount != 1:
                raise Overdrawn(account_id)
        values, params = [], {"transaction": transaction_id}
        for i, (account_id, amount, binding_id) in enumerate(entries):
            values.append(f"(:transaction, :account_{i}, :amount_{i}, :binding_{i})")
            params.update({f"account_{i}": account_id, f"amount_{i}": amount, f"binding_{i}": binding_id})
        sql.run("INSERT INTO postings (transaction_id, account_id, amount_fen, binding_id) VALUES "
                + ", ".join(values), params)
    o, b = outcome, outcome.amounts
    try:
        sql.run("INSERT INTO settlements (id, institution_id, patient_id, idempotency_key, request_hash, items, "
                "total_fen, eligible_fen, pooled_fen, personal_burden_fen, own_account_fen, cash_fen, status, "
                "transaction_id, created_at) VALUES (:id, :institution, :patient, :key, :hash, "
                f"{sql.json(':items')}, :total, :eligible, :pooled, :burden, :own, :cash, 'settled', :transaction, "
                ":at)",
                {"id": o.id, "institution": o.institution_id, "patient": o.patient_id, "key": o.key,
                 "hash": o.request_hash, "items": json.dumps(o.items, ensure_ascii=False), "total": b.total_fen,
                 "eligible": b.eligible_fen, "pooled": b.pooled_fen, "burden": b.personal_burden_fen,
                 "own": b.own_account_fen, "cash": b.cash_fen, "transaction": transaction_id, "at": when})
    except sql.integrity_error as exc:
        raise DuplicateKey(o.key) from exc
    if not o.payments:
        return []
    payments, notices, params = [], [], {"settlement": o.id, "institution": o.institution_id,
                                         "patient": o.patient_id, "at": when}
    notification_ids = []
    for i, payment in enumerate(o.payments):
        b = payment.binding
        payments.append(f"(:payment_{i}, :settlement, {i}, :binding_{i}, :authorizer_{i}, :patient, :institution, "
                        f":amount_{i}, :at)")
        notices.append(f"(:notice_{i}, :authorizer_{i}, 'family_payment', :title_{i}, :body_{i}, :binding_{i}, "
                       f":channel_{i}, 'pending', 0, :at)")
        notification_ids.append(new_id())
        params.update({f"payment_{i}": new_id(), f"binding_{i}": b.id, f"authorizer_{i}": b.authorizer_id,
                       f"amount_{i}": payment.amount_fen, f"notice_{i}": notification_ids[-1],
                       f"title_{i}": payment.title, f"body_{i}": payment.body, f"channel_{i}": b.channel})
    sql.run("INSERT INTO family_payments (id, settlement_id, position, binding_id, authorizer_id, beneficiary_id, "
            "institution_id, amount_fen, created_at) VALUES " + ", ".join(payments), params)
    sql.run("INSERT INTO notifications (id, person_id, kind, title, body, binding_id, channel, delivery_status, "
            "attempts, created_at) VALUES " + ", ".join(notices), params)
    return notification_ids
