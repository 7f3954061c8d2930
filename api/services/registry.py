"""Registry import (F1): region policies, insured persons with their accounts, institutions and kinship from a DIR.

The contract is SPEC.md "Registry data contract". Each file is validated whole before anything of it is written,
and written in one database transaction, so a file with a bad row leaves no trace while the other files may load.
Rows are compared with what the database holds: new rows are inserted, changed rows updated, equal rows left alone,
and rows absent from a file are kept (an export is not a deletion list).

Balances move only through the ledger. The registry's word on an account is the sum of that account's
`registry_load` / `registry_adjust` postings; an import posts the difference between the file and that sum, so
re-importing an old export after settlements changes nothing, and a changed export moves exactly its change.
Large files are written with Core executemany in chunks and `ledger.post_many`, never one ORM object per row.

Two imports at once take turns, file by file: each file's transaction first takes the import lock (a
PostgreSQL advisory transaction lock; on SQLite the writers' lock, `extensions.writing`) and only then reads
what the registry has posted, so the second sees the first's postings and finds nothing left to move. The
ledger reference of a balance change names the person and the registry state it changes
(`registry_adjust:<person id>:<registry postings so far>`), so even an import that skipped the lock could not
post the same change twice: the second insert of that reference fails and its file is rejected whole.
"""
from __future__ import annotations

import csv
import hashlib
import io
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from flask import current_app
from sqlalchemy import bindparam, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from api import idnumber, ledger, settings
from api.auth import hash_key
from api.extensions import LOCK_WAIT_SECONDS, db, writing
from api.models import Institution, Kinship, LedgerAccount, LedgerTransaction, Person, Posting, RegionPolicy, utcnow
from api.policy import INVERSE, RELATIONS, PolicyError, load_policy_file

PERSON_COLUMNS = ("id_number", "name", "insurance_type", "status", "region_code", "card_number", "phone",
                  "account_balance_fen")
PERSON_OPTIONAL = ("account_prior_year_fen",)
KINSHIP_COLUMNS = ("id_number_a", "id_number_b", "relation")
INSTITUTION_COLUMNS = ("code", "name", "region_code", "designated", "api_key")
INSURANCE_TYPES = {"employee": "职工", "resident": "居民"}
STATUSES = {"normal": "正常参保", "suspended": "暂停参保", "terminated": "终止参保"}
REGISTRY_KINDS = ("registry_load", "registry_adjust")
MAX_FEN = 10 ** 12  # 100 亿元: anything above is a broken export, not a balance
CHUNK = 5000

_REGION_RE = re.compile(r"[1-9][0-9]{5}")
_PHONE_RE = re.compile(r"1[0-9]{10}")
_FEN_RE = re.compile(r"[0-9]+")
_CARD_RE = re.compile(r"[0-9A-Za-z]{1,32}")
_CODE_RE = re.compile(r"[0-9A-Za-z_-]{1,32}")

Progress = Callable[[str, str, int, int], None]  # (file, stage, done, total)


class RowError(ValueError):
    """A bad row: the reason is shown to the operator as `file:line: reason`."""


@dataclass
class FileReport:
    """What an import did with one file (or, for `policies/`, one directory of files)."""
    name: str
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    problems: list[tuple[str, int, str]] = field(default_factory=list)  # (file, line or 0, reason)
    loaded_files: list[str] = field(default_factory=list)  # policies only: the files that loaded

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def errors(self) -> list[str]:
        """`file:line: reason`, in file and line order."""
        return [f"{name}:{line}: {reason}" if line else f"{name}: {reason}"
                for name, line, reason in sorted(self.problems, key=lambda p: (p[0], p[1]))]

    def error(self, line: int | None, reason: str, name: str | None = None) -> None:
        self.problems.append((name or self.name, line or 0, reason))


def import_directory(directory: Path, progress: Progress | None = None) -> list[FileReport]:
    """Loads every registry file `directory` holds, in the order policies, persons, institutions, kinship."""
    progress = progress or (lambda *_: None)
    reports = []
    steps = (("policies", _import_policies), ("persons.csv", _import_persons),
             ("institutions.csv", _import_institutions), ("kinship.csv", _import_kinship))
    # the HIS gateway's files: catalogue.csv (医保目录) and the institutions' signing keys (api/services/catalogue.py)
    from api.services.catalogue import registry_steps
    steps += registry_steps()
    for name, step in steps:
        path = directory / name
        if not path.exists():
            continue
        report = FileReport("policies/" if name == "policies" else name)
        try:
            with writing():
                _take_import_lock()
                step(path, report, progress)
                if report.ok:
                    db.session.commit()
                else:
                    db.session.rollback()
        except ledger.InsufficientFunds as exc:
            # A settlement spent from the account between the check and the write (PostgreSQL): nothing written.
            db.session.rollback()
            report.error(None, f"账户 {exc.account_code} 在导入过程中发生支出，余额不足以调整；本文件未写入，请重新导入")
        except IntegrityError:
            db.session.rollback()
            report.error(None, "与同时进行的另一次导入或操作冲突；本文件未写入，请重新导入")
        except Exception:
            db.session.rollback()
            raise
        reports.append(report)
    return reports


# A fixed 64-bit key of our own for pg_advisory_xact_lock ("gongji registry import").
IMPORT_LOCK_KEY = int.from_bytes(hashlib.sha256(b"gongji:registry-import").digest()[:8], "big", signed=True)


def _take_import_lock() -> None:
    """Waits for any other import's file to commit (PostgreSQL); held until this transaction ends.

    On SQLite the caller's `writing()` block already holds the writers' lock, which serializes every writer.
    An import waits longer than a request does (REGISTRY_LOCK_WAIT_SECONDS, default 10 minutes): the other
    import may be loading a large file.
    """
    if db.session.get_bind().dialect.name != "postgresql":
        return
    wait = current_app.config.get("REGISTRY_LOCK_WAIT_SECONDS", settings.env_int("REGISTRY_LOCK_WAIT_SECONDS", 600))
    db.session.execute(text(f"SET LOCAL lock_timeout = {int(wait) * 1000}"))
    db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": IMPORT_LOCK_KEY})
    db.session.execute(text(f"SET LOCAL lock_timeout = {int(LOCK_WAIT_SECONDS * 1000)}"))


# --- reading ------------------------------------------------------------------------------------------------

def _read_csv(path: Path, report: FileReport, required: tuple[str, ...],
              optional: tuple[str, ...] = ()) -> list[tuple[int, dict[str, str]]]:
    """The rows of a UTF-8 CSV file as (line number, {column: stripped value}); problems go to the report."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        report.error(raw[:exc.start].count(b"\n") + 1, "文件须为 UTF-8 编码（not UTF-8）")
        return []
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader, [])]
    except csv.Error as exc:
        report.error(1, f"CSV 格式错误：{exc}")
        return []
    if not header:
        report.error(1, "文件为空，缺少表头")
        return []
    missing = [c for c in required if c not in header]
    unknown = [c for c in header if c not in required and c not in optional]
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if missing or unknown or duplicated:
        parts = []
        if missing:
            parts.append("缺少列 " + ", ".join(missing))
        if unknown:
            parts.append("不认识的列 " + ", ".join(unknown))
        if duplicated:
            parts.append("重复的列 " + ", ".join(duplicated))
        report.error(1, "表头不正确：" + "；".join(parts))
        return []
    rows = []
    try:
        for fields in reader:
            line = reader.line_num
            if not any(f.strip() for f in fields):
                continue
            if len(fields) != len(header):
                report.error(line, f"应有 {len(header)} 列，实有 {len(fields)} 列")
                continue
            rows.append((line, {c: f.strip() for c, f in zip(header, fields)}))
    except csv.Error as exc:
        report.error(reader.line_num, f"CSV 格式错误：{exc}")
    return rows


def _id_number(value: str, column: str, stored: set | dict = frozenset()) -> str:
    """The canonical number; one already stored in the registry was validated when it was stored."""
    if value in stored:
        return value
    if not value:
        raise RowError(f"{column} 为空")
    try:
        return idnumber.normalize(value)
    except idnumber.InvalidIdNumber as exc:
        reason = {"checksum": "校验位错误", "birth date": "出生日期无效"}.get(str(exc), "格式错误（须为 18 位）")
        raise RowError(f"{column} 身份证号码{reason}") from None


def _fen(value: str, column: str) -> int:
    if not _FEN_RE.fullmatch(value):
        raise RowError(f"{column} 须为以分为单位的非负整数（不能有小数点或符号），实为 {value[:20]!r}")
    amount = int(value)
    if amount > MAX_FEN:
        raise RowError(f"{column} 金额过大")
    return amount


def _region(value: str, column: str, provinces: set[str]) -> str:
    if not _REGION_RE.fullmatch(value):
        raise RowError(f"{column} 须为 6 位行政区划代码")
    if value[:2] not in provinces:
        raise RowError(f"{column} 所在省份 {value[:2]} 没有家庭共济政策文件（policies/{value[:2]}.toml）")
    return value


def _known_provinces() -> set[str]:
    return set(db.session.scalars(select(RegionPolicy.province_code)))


def _chunks(items: list, size: int = CHUNK):
    for start in range(0, len(items), size):
        yield items[start:start + size]


# --- policies -----------------------------------------------------------------------------------------------

def _import_policies(directory: Path, report: FileReport, progress: Progress) -> None:
    """One TOML file per province (format: api.policy.Policy.from_dict); a bad file is skipped alone."""
    existing = {row.province_code: row for row in db.session.scalars(select(RegionPolicy))}
    files = sorted(directory.glob("*.toml"))
    if not files:
        report.error(None, "目录中没有 .toml 政策文件")
    for path in files:
        name = f"policies/{path.name}"
        try:
            policy = load_policy_file(path)
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            at = re.search(r"at line (\d+)", str(exc))
            report.error(int(at.group(1)) if at else None, f"TOML 格式错误：{exc}", name)
            continue
        except (PolicyError, OSError) as exc:
            report.error(None, f"政策无效：{exc}", name)
            continue
        row = existing.get(policy.province_code)
        if row is None:
            db.session.add(RegionPolicy(province_code=policy.province_code, name=policy.name, data=data))
            report.inserted += 1
        elif row.name != policy.name or row.data != data:
            row.name, row.data = policy.name, data
            report.updated += 1
        else:
            report.unchanged += 1
        report.loaded_files.append(name)
    # A bad policy file does not block the good ones: commit them even when the report has errors.
    db.session.commit()


# --- persons ------------------------------------------------------------------------------------------------

@dataclass
class _PersonRow:
    line: int
    id_number: str
    name: str
    insurance_type: str
    status: str
    region_code: str
    card_number: str
    phone: str
    balance_fen: int | None      # None for residents
    prior_year_fen: int | None

    def fields(self) -> tuple:
        return (self.name, self.insurance_type, self.status, self.region_code, self.card_number, self.phone)


def _person_row(line: int, row: dict[str, str], provinces: set[str], stored: dict) -> _PersonRow:
    number = _id_number(row["id_number"], "id_number", stored)
    name = row["name"]
    if not name:
        raise RowError("name 姓名为空")
    if len(name) > 50:
        raise RowError("name 姓名过长（最多 50 字）")
    kind = row["insurance_type"]
    if kind not in INSURANCE_TYPES:
        raise RowError(f"insurance_type 须为 {'|'.join(INSURANCE_TYPES)}")
    if row["status"] not in STATUSES:
        raise RowError(f"status 须为 {'|'.join(STATUSES)}")
    region = _region(row["region_code"], "region_code", provinces)
    if not _CARD_RE.fullmatch(row["card_number"]):
        raise RowError("card_number 医保卡号须为 1–32 位字母或数字")
    if not _PHONE_RE.fullmatch(row["phone"]):
        raise RowError("phone 手机号码须为 11 位数字")
    balance_text, prior_text = row["account_balance_fen"], row.get("account_prior_year_fen", "")
    if kind == "resident":
        if balance_text or prior_text:
            raise RowError("居民医保参保人没有个人账户，account_balance_fen 须为空")
        balance = prior = None
    else:
        if not balance_text:
            raise RowError("职工医保参保人须填写 account_balance_fen（个人账户余额，单位分；无余额填 0）")
        balance = _fen(balance_text, "account_balance_fen")
        prior = balance if not prior_text else _fen(prior_text, "account_prior_year_fen")
        if prior > balance:
            raise RowError("account_prior_year_fen 历年账户部分不能大于 account_balance_fen 余额")
    return _PersonRow(line, number, name, kind, row["status"], region, row["card_number"], row["phone"],
                      balance, prior)


def _import_persons(path: Path, report: FileReport, progress: Progress) -> None:
    rows = _read_csv(path, report, PERSON_COLUMNS, PERSON_OPTIONAL)
    provinces = _known_provinces()
    pt = Person.__table__
    existing = {r.id_number: r for r in db.session.execute(
        select(pt.c.id, pt.c.id_number, pt.c.name, pt.c.insurance_type, pt.c.status, pt.c.region_code,
               pt.c.card_number, pt.c.phone))}
    parsed: list[_PersonRow] = []
    first_line: dict[str, int] = {}
    for i, (line, row) in enumerate(rows, 1):
        try:
            person = _person_row(line, row, provinces, existing)
        except RowError as exc:
            report.error(line, str(exc))
        else:
            if person.id_number in first_line:
                report.error(line, f"身份证号码与第 {first_line[person.id_number]} 行重复")
            else:
                first_line[person.id_number] = line
                parsed.append(person)
        if i % 10000 == 0 or i == len(rows):
            progress(report.name, "校验", i, len(rows))

    _check_cards(parsed, existing, report)

    # Accounts and what the registry has put into them so far, for the people the file names.
    accounts: dict[int, dict[str, tuple[int, int]]] = {}  # person id -> kind -> (account id, balance)
    for account_id, person_id, kind, balance in db.session.execute(
            select(LedgerAccount.id, LedgerAccount.person_id, LedgerAccount.kind, LedgerAccount.balance_fen)
            .where(LedgerAccount.person_id.is_not(None), LedgerAccount.kind.in_(ledger.PERSONAL_KINDS))):
        accounts.setdefault(person_id, {})[kind] = (account_id, balance)
    registry_sums: dict[int, int] = {}    # account id -> what the registry has put in
    registry_counts: dict[int, int] = {}  # account id -> how many registry postings did it
    for account_id, total, count in db.session.execute(
            select(Posting.account_id, func.sum(Posting.amount_fen), func.count(Posting.id))
            .join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id)
            .where(LedgerTransaction.kind.in_(REGISTRY_KINDS))
            .group_by(Posting.account_id)):
        registry_sums[account_id], registry_counts[account_id] = int(total or 0), int(count)

    plans = []
    for person in parsed:
        old = existing.get(person.id_number)
        plan = _Plan(person, old.id if old else None, old is None,
                     old is not None and tuple(old)[2:] != person.fields())
        held = accounts.get(plan.person_id, {}) if old else {}
        if person.insurance_type == "employee" or held:
            # Residents have no account; one who was an employee keeps his (emptied) accounts.
            target = {"personal_current": (person.balance_fen or 0) - (person.prior_year_fen or 0),
                      "personal_prior": person.prior_year_fen or 0}
            overdrawn = False
            for kind in ledger.PERSONAL_KINDS:
                account_id, balance = held.get(kind, (None, 0))
                if account_id is not None:
                    plan.accounts[kind] = account_id
                if account_id in registry_sums:
                    plan.first_load = False
                    plan.registry_postings += registry_counts[account_id]
                plan.deltas[kind] = target[kind] - int(registry_sums.get(account_id, 0) or 0)
                overdrawn = overdrawn or balance + plan.deltas[kind] < 0
            if overdrawn:
                report.error(person.line, "按新余额调整后个人账户将为负数（上次导入后已有支出），请核对余额")
        plans.append(plan)
    if not report.ok:
        return
    _write_persons(plans, report, progress)


@dataclass
class _Plan:
    """What the import does for one person row."""
    row: _PersonRow
    person_id: int | None
    is_new: bool
    changed: bool                                          # a registry field differs from the database
    deltas: dict[str, int] = field(default_factory=dict)   # account kind -> change in 分 (employees only)
    first_load: bool = True                                # no registry posting yet: registry_load, else adjust
    accounts: dict[str, int] = field(default_factory=dict)  # account kind -> ledger account id
    registry_postings: int = 0                             # on his accounts so far: the state a change changes

    def reference(self) -> str:
        """The ledger reference of this row's balance change: a first load happens once per person; an
        adjustment once per registry state of the person (the count of registry postings grows with each
        change, so a balance going A→B→A→B is four changes, while two imports of one export, or of two
        exports, from the same state post one change, never two). Not the content: two different exports
        racing from one state must not both apply their difference."""
        if self.first_load:
            return f"registry_load:{self.person_id}"
        return f"registry_adjust:{self.person_id}:{self.registry_postings}"

    def content_digest(self) -> str:
        """sha256 of the row's balance fields, for the memo: which export content made the change."""
        row = self.row
        return hashlib.sha256(f"{row.id_number}|{row.balance_fen}|{row.prior_year_fen}".encode()).hexdigest()


def _check_cards(parsed: list[_PersonRow], existing: dict, report: FileReport) -> None:
    """A card number names one person: within the file and against people the file does not re-describe."""
    described = {person.id_number for person in parsed}
    owner = {r.card_number: r.id_number for r in existing.values() if r.id_number not in described}
    seen: dict[str, _PersonRow] = {}
    for person in parsed:
        if person.card_number in seen:
            report.error(person.line, f"card_number 医保卡号与第 {seen[person.card_number].line} 行重复")
            continue
        seen[person.card_number] = person
        if person.card_number in owner:
            report.error(person.line, "card_number 医保卡号已属于登记中的另一人")


def _write_persons(plans: list[_Plan], report: FileReport, progress: Progress) -> None:
    pt, at = Person.__table__, LedgerAccount.__table__
    now = utcnow()
    funding = ledger.system_account(ledger.REGISTRY_ACCOUNT).id
    person_update = (update(pt).where(pt.c.id == bindparam("b_id"))
                     .values(name=bindparam("b_name"), insurance_type=bindparam("b_type"),
                             status=bindparam("b_status"), region_code=bindparam("b_region"),
                             card_number=bindparam("b_card"), phone=bindparam("b_phone"),
                             updated_at=bindparam("b_now")))
    done = 0
    for chunk in _chunks(plans):
        new = [plan for plan in chunk if plan.is_new]
        if new:
            # executemany, then the ids by the unique ID number (see ledger.post_many on RETURNING in SQLite)
            db.session.execute(insert(pt), [
                {"id_number": p.row.id_number, "name": p.row.name, "insurance_type": p.row.insurance_type,
                 "status": p.row.status, "region_code": p.row.region_code, "card_number": p.row.card_number,
                 "phone": p.row.phone, "settlement_suspended": False, "created_at": now, "updated_at": now}
                for p in new])
            ids = dict(db.session.execute(select(pt.c.id_number, pt.c.id)
                                          .where(pt.c.id_number.in_([p.row.id_number for p in new]))).all())
            for plan in new:
                plan.person_id = ids[plan.row.id_number]
        changed = [{"b_id": p.person_id, "b_name": p.row.name, "b_type": p.row.insurance_type,
                    "b_status": p.row.status, "b_region": p.row.region_code, "b_card": p.row.card_number,
                    "b_phone": p.row.phone, "b_now": now} for p in chunk if p.changed]
        if changed:
            db.session.execute(person_update, changed, execution_options={"synchronize_session": False})

        # Every employee gets his two accounts (an account of 0 is still an account: R1 says "balance zero").
        missing = [{"code": f"person:{p.person_id}:{kind.split('_')[1]}", "kind": kind, "person_id": p.person_id,
                    "balance_fen": 0, "plan": p}
                   for p in chunk if p.deltas for kind in ledger.PERSONAL_KINDS if kind not in p.accounts]
        if missing:
            db.session.execute(insert(at), [{k: v for k, v in row.items() if k != "plan"} for row in missing])
            ids = dict(db.session.execute(select(at.c.code, at.c.id)
                                          .where(at.c.code.in_([row["code"] for row in missing]))).all())
            for row in missing:
                row["plan"].accounts[row["kind"]] = ids[row["code"]]

        movements = []
        for plan in chunk:
            entries = [ledger.Entry(plan.accounts[kind], delta) for kind, delta in plan.deltas.items()
                       if delta]
            if entries:
                entries.append(ledger.Entry(funding, -sum(e.amount_fen for e in entries)))
                # the reference is unique: see _Plan.reference
                kind = "registry_load" if plan.first_load else "registry_adjust"
                movements.append(ledger.Movement(
                    kind, entries, plan.reference(),
                    memo=f"registry import persons.csv:{plan.row.line} sha256:{plan.content_digest()[:16]}"))
        ledger.post_many(movements)

        for plan in chunk:
            if plan.is_new:
                report.inserted += 1
            elif plan.changed or any(plan.deltas.values()):
                report.updated += 1
            else:
                report.unchanged += 1
        done += len(chunk)
        progress(report.name, "写入", done, len(plans))


# --- institutions -------------------------------------------------------------------------------------------

def _import_institutions(path: Path, report: FileReport, progress: Progress) -> None:
    rows = _read_csv(path, report, INSTITUTION_COLUMNS)
    provinces = _known_provinces()
    it = Institution.__table__
    existing = {r.code: r for r in db.session.execute(
        select(it.c.id, it.c.code, it.c.name, it.c.region_code, it.c.designated, it.c.api_key_hash))}
    parsed, first_line, key_line = [], {}, {}
    for line, row in rows:
        try:
            code = row["code"]
            if not _CODE_RE.fullmatch(code):
                raise RowError("code 机构编码须为 1–32 位字母、数字、- 或 _")
            if not row["name"] or len(row["name"]) > 100:
                raise RowError("name 机构名称为空或过长")
            region = _region(row["region_code"], "region_code", provinces)
            designated = {"true": True, "false": False}.get(row["designated"].lower())
            if designated is None:
                raise RowError("designated 须为 true|false")
            key = row["api_key"]
            if len(key) < 8 or any(ch.isspace() for ch in key):
                raise RowError("api_key 须至少 8 位且不含空格")
            if code in first_line:
                raise RowError(f"机构编码与第 {first_line[code]} 行重复")
            key_hash = hash_key(key)
            if key_hash in key_line:
                raise RowError(f"api_key 与第 {key_line[key_hash]} 行重复")
        except RowError as exc:
            report.error(line, str(exc))
            continue
        first_line[code], key_line[key_hash] = line, line
        parsed.append({"code": code, "name": row["name"], "region_code": region, "designated": designated,
                       "api_key_hash": key_hash})
    # A key names one institution; institutions the file re-describes may swap keys among themselves.
    key_owner = {r.api_key_hash: r.code for r in existing.values() if r.code not in first_line}
    for row in parsed:
        if row["api_key_hash"] in key_owner:
            report.error(first_line[row["code"]], "api_key 已被另一家机构使用")
    progress(report.name, "校验", len(rows), len(rows))
    if not report.ok:
        return
    inserts, updates = [], []
    for row in parsed:
        old = existing.get(row["code"])
        if old is None:
            inserts.append(row)
        elif (old.name, old.region_code, old.designated, old.api_key_hash) != \
                (row["name"], row["region_code"], row["designated"], row["api_key_hash"]):
            updates.append({"b_id": old.id, **{f"b_{k}": v for k, v in row.items() if k != "code"}})
        else:
            report.unchanged += 1
    if updates:
        # Clear the keys first so that two institutions may swap keys without tripping the unique index.
        db.session.execute(update(it).where(it.c.id == bindparam("b_id"))
                           .values(api_key_hash=bindparam("b_placeholder")),
                           [{"b_id": u["b_id"], "b_placeholder": f"rotating:{u['b_id']}"} for u in updates])
        db.session.execute(update(it).where(it.c.id == bindparam("b_id"))
                           .values(name=bindparam("b_name"), region_code=bindparam("b_region_code"),
                                   designated=bindparam("b_designated"), api_key_hash=bindparam("b_api_key_hash")),
                           updates)
    if inserts:
        db.session.execute(insert(it), inserts)
    report.inserted, report.updated = len(inserts), len(updates)
    progress(report.name, "写入", len(rows), len(rows))


# --- kinship ------------------------------------------------------------------------------------------------

def _import_kinship(path: Path, report: FileReport, progress: Progress) -> None:
    """b is a's relation; the reverse is implied, so a reverse row must say the inverse relation."""
    rows = _read_csv(path, report, KINSHIP_COLUMNS)
    known = set(db.session.scalars(select(Person.id_number)))
    kt = Kinship.__table__
    existing = {(r.id_number_a, r.id_number_b): r for r in db.session.execute(
        select(kt.c.id, kt.c.id_number_a, kt.c.id_number_b, kt.c.relation))}
    in_file: dict[tuple[str, str], tuple[int, str]] = {}
    for i, (line, row) in enumerate(rows, 1):
        try:
            a = _id_number(row["id_number_a"], "id_number_a", known)
            b = _id_number(row["id_number_b"], "id_number_b", known)
            relation = row["relation"]
            if relation not in RELATIONS:
                raise RowError(f"relation 须为 {'|'.join(RELATIONS)}")
            if a == b:
                raise RowError("id_number_a 与 id_number_b 是同一人")
            for column, number in (("id_number_a", a), ("id_number_b", b)):
                if number not in known:
                    raise RowError(f"{column} 不在参保人员登记中（persons.csv）")
            if (a, b) in in_file:
                raise RowError(f"与第 {in_file[(a, b)][0]} 行是同一对人员")
            reverse = in_file.get((b, a))
            if reverse is not None and reverse[1] != INVERSE[relation]:
                raise RowError(f"与第 {reverse[0]} 行的关系矛盾")
            old_reverse = existing.get((b, a))
            if reverse is None and old_reverse is not None and old_reverse.relation != INVERSE[relation]:
                raise RowError("与登记中已有的反向关系矛盾")
        except RowError as exc:
            report.error(line, str(exc))
        else:
            in_file[(a, b)] = (line, relation)
        if i % 10000 == 0 or i == len(rows):
            progress(report.name, "校验", i, len(rows))
    if not report.ok:
        return
    inserts, updates = [], []
    for (a, b), (_, relation) in in_file.items():
        old = existing.get((a, b))
        if old is None:
            inserts.append({"id_number_a": a, "id_number_b": b, "relation": relation})
        elif old.relation != relation:
            updates.append({"b_id": old.id, "b_relation": relation})
        else:
            report.unchanged += 1
    if updates:
        db.session.execute(update(kt).where(kt.c.id == bindparam("b_id")).values(relation=bindparam("b_relation")),
                           updates)
    for done, chunk in enumerate(_chunks(inserts), 1):
        db.session.execute(insert(kt), chunk)
        progress(report.name, "写入", min(done * CHUNK, len(inserts)), len(inserts))
    report.inserted, report.updated = len(inserts), len(updates)

