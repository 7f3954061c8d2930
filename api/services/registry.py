"""Registry import (F1): region policies, insured persons with their accounts, institutions, kinship and the
monthly 个人账户划入 (account credits) from a DIR.

The contract is SPEC.md "Registry data contract". Each file is validated whole before anything of it is written,
and written in one database transaction, so a file with a bad row leaves no trace while the other files may load.
Rows are compared with what the database holds: new rows are inserted, changed rows updated, equal rows left alone,
and rows absent from a file are kept (an export is not a deletion list).

Balances move only through the ledger, and the registry sets a balance only once: the first load of a person
(he has no ledger accounts yet) creates his two accounts and posts his balance as a `registry_load` transaction
(reference `registry_load:<person id>`, so it happens once). After that his balance changes only through ledger
transactions — settlements, refunds and the credits of `account_credits.csv` (kind `account_credit`, reference
`credit:<reference>`, each applied once). A later `account_balance_fen` / `account_prior_year_fen` that differs
from the ledger is never applied: it becomes a reconciliation line (masked ID number, registry figure, ledger
figure, difference) that the CLI prints and the import keeps in `<instance>/reconciliation/` (see
`write_reconciliation`), and the rest of the row (status, region, card, phone …) is applied as usual.
Large files are written with Core executemany in chunks and `ledger.post_many`, never one ORM object per row.

Two imports at once take turns, file by file: each file's transaction first takes the import lock (a
PostgreSQL advisory transaction lock; on SQLite the writers' lock, `extensions.writing`) and only then reads
the accounts and the credits already applied, so the second sees the first's postings and finds nothing left to
do. Even an import that skipped the lock could not post a first load or a credit twice: the ledger references
are unique, the second insert fails and its file is rejected whole.
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import os
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from flask import current_app
from sqlalchemy import bindparam, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from api import idnumber, ledger, settings
from api.auth import hash_key
from api.masking import mask_id
from api.extensions import LOCK_WAIT_SECONDS, db, writing
from api.models import Institution, Kinship, LedgerAccount, LedgerTransaction, Person, RegionPolicy, utcnow
from api.policy import INVERSE, RELATIONS, PolicyError, load_policy_file
from api.timefmt import local_today

PERSON_COLUMNS = ("id_number", "name", "insurance_type", "status", "region_code", "card_number", "phone",
                  "account_balance_fen")
PERSON_OPTIONAL = ("account_prior_year_fen",)
KINSHIP_COLUMNS = ("id_number_a", "id_number_b", "relation")
INSTITUTION_COLUMNS = ("code", "name", "region_code", "designated", "api_key")
INSURANCE_TYPES = {"employee": "职工", "resident": "居民"}
STATUSES = {"normal": "正常参保", "suspended": "暂停参保", "terminated": "终止参保"}
CREDIT_COLUMNS = ("id_number", "credited_on", "amount_fen", "reference")
CREDIT_KIND = "account_credit"   # ledger transaction kind of a 个人账户划入
CREDIT_PREFIX = "credit:"        # its ledger reference: credit:<reference of account_credits.csv>
MAX_FEN = 10 ** 12  # 100 亿元: anything above is a broken export, not a balance
CHUNK = 5000

_REGION_RE = re.compile(r"[1-9][0-9]{5}")
_PHONE_RE = re.compile(r"1[0-9]{10}")
_FEN_RE = re.compile(r"[0-9]+")
_CARD_RE = re.compile(r"[0-9A-Za-z]{1,32}")
_CODE_RE = re.compile(r"[0-9A-Za-z_-]{1,32}")
_REFERENCE_RE = re.compile(r"[0-9A-Za-z_.:/-]{1,57}")  # 64 (ledger reference) − len("credit:")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

Progress = Callable[[str, str, int, int], None]  # (file, stage, done, total)


class RowError(ValueError):
    """A bad row: the reason is shown to the operator as `file:line: reason`."""


@dataclass(frozen=True)
class Reconciliation:
    """A person whose registry balance differs from his ledger balance: reported, never applied."""
    file: str
    line: int
    id_number: str
    registry_fen: int
    ledger_fen: int
    registry_prior_fen: int
    ledger_prior_fen: int

    @property
    def masked_id(self) -> str:
        return mask_id(self.id_number)

    def text(self) -> str:
        """`file:line: 对账 …` for the operator; differences are registry − ledger, in 分."""
        out = (f"{self.file}:{self.line}: 对账 {self.masked_id} 余额 登记 {self.registry_fen} 分 / "
               f"账本 {self.ledger_fen} 分 / 差额 {self.registry_fen - self.ledger_fen:+d} 分")
        if self.registry_prior_fen != self.ledger_prior_fen:
            out += (f"；其中历年 登记 {self.registry_prior_fen} 分 / 账本 {self.ledger_prior_fen} 分 / "
                    f"差额 {self.registry_prior_fen - self.ledger_prior_fen:+d} 分")
        return out + "（未调整，余额只随账本交易变化）"


@dataclass
class FileReport:
    """What an import did with one file (or, for `policies/`, one directory of files)."""
    name: str
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    problems: list[tuple[str, int, str]] = field(default_factory=list)  # (file, line or 0, reason)
    loaded_files: list[str] = field(default_factory=list)  # policies only: the files that loaded
    reconciliation: list[Reconciliation] = field(default_factory=list)  # persons only: figures not applied
    reconciliation_file: Path | None = None                 # where they were kept (after the commit)

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
    """Loads every registry file `directory` holds, in the order policies, persons, institutions, kinship,
    account credits (after persons: a person loaded for the first time has his accounts before his credits), and
    resident contributions."""
    progress = progress or (lambda *_: None)
    reports = []
    steps = (("policies", _import_policies), ("persons.csv", _import_persons),
             ("institutions.csv", _import_institutions), ("kinship.csv", _import_kinship),
             ("account_credits.csv", _import_credits),
             ("resident_contributions.csv", _import_contributions))  # R15, optional like every file
    # the HIS gateway's files: catalogue.csv (医保目录) and the institutions' signing keys (api/services/catalogue.py,
    # which reads its CSV with this module's reader: imported here, not at the top, as the two import each other)
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
                    target = _record_reconciliation(report)
                    db.session.commit()
                    if target is not None:
                        write_reconciliation(report, target)
                else:
                    db.session.rollback()
        except IntegrityError:
            db.session.rollback()
            report.error(None, "与同时进行的另一次导入或操作冲突；本文件未写入，请重新导入")
        except Exception:
            db.session.rollback()
            raise
        reports.append(report)
    return reports


def _record_reconciliation(report: FileReport) -> Path | None:
    """Inside the file's transaction: an audit event naming the reconciliation file (written after the commit)."""
    if not report.reconciliation:
        return None
    from api.services import audit
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    target = Path(current_app.instance_path) / "reconciliation" / f"persons-{stamp}-{os.getpid()}.csv"
    audit.record("registry-import", "registry.reconciliation", target=report.name,
                 detail={"persons": len(report.reconciliation), "file": str(target)})
    return target


RECONCILIATION_HEADER = ("file", "line", "id_number_masked", "registry_balance_fen", "ledger_balance_fen",
                         "difference_fen", "registry_prior_year_fen", "ledger_prior_year_fen",
                         "prior_year_difference_fen")


def write_reconciliation(report: FileReport, target: Path) -> None:
    """Keeps the reconciliation lines of one import as CSV (ID numbers masked; differences registry − ledger)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(RECONCILIATION_HEADER)
        for r in report.reconciliation:
            out.writerow([r.file, r.line, r.masked_id, r.registry_fen, r.ledger_fen, r.registry_fen - r.ledger_fen,
                          r.registry_prior_fen, r.ledger_prior_fen, r.registry_prior_fen - r.ledger_prior_fen])
    report.reconciliation_file = target


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
        except (PolicyError, OSError) as exc:  # the report names the file already
            report.error(None, f"政策无效：{str(exc).removeprefix(f'{path.name}: ')}", name)
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

    # The personal accounts of the people the file names: after his first load a person's balance is the ledger's.
    accounts: dict[int, dict[str, tuple[int, int]]] = {}  # person id -> kind -> (account id, balance)
    for account_id, person_id, kind, balance in db.session.execute(
            select(LedgerAccount.id, LedgerAccount.person_id, LedgerAccount.kind, LedgerAccount.balance_fen)
            .where(LedgerAccount.person_id.is_not(None), LedgerAccount.kind.in_(ledger.PERSONAL_KINDS))):
        accounts.setdefault(person_id, {})[kind] = (account_id, balance)

    plans = []
    for person in parsed:
        old = existing.get(person.id_number)
        plan = _Plan(person, old.id if old else None, old is None,
                     old is not None and tuple(old)[2:] != person.fields())
        held = accounts.get(plan.person_id, {}) if old else {}
        if held:
            # Not his first load: the file's figures are compared, never applied. (A resident's empty balance
            # says nothing about the accounts he kept from his employee years: no line for him.)
            if person.balance_fen is not None:
                ledger_prior = held.get("personal_prior", (None, 0))[1]
                ledger_total = held.get("personal_current", (None, 0))[1] + ledger_prior
                if (person.balance_fen, person.prior_year_fen) != (ledger_total, ledger_prior):
                    report.reconciliation.append(Reconciliation(
                        report.name, person.line, person.id_number, person.balance_fen, ledger_total,
                        person.prior_year_fen, ledger_prior))
        elif person.insurance_type == "employee":
            # First load: both accounts are created (an account of 0 is still an account: R1 says "balance zero")
            # and the balance posted once, as registry_load.
            plan.deltas = {"personal_current": person.balance_fen - person.prior_year_fen,
                           "personal_prior": person.prior_year_fen}
        plans.append(plan)
    if not report.ok:
        return
    _write_persons(plans, report, progress)
    _after_persons(plans, report, progress)


def _after_persons(plans: list, report: FileReport, progress: Progress) -> None:
    """R14: the bindings and pending applications of people whose registry fields changed, ended or rejected
    where they no longer qualify, in this file's transaction (api/services/auto_end.py)."""
    from api.services import auto_end
    swept = auto_end.sweep(plan.person_id for plan in plans if plan.changed and not plan.is_new)
    if swept.total_ended or swept.rejected:
        progress(report.name, "共济关系自动终止", swept.total_ended, swept.total_ended)


@dataclass
class _Plan:
    """What the import does for one person row."""
    row: _PersonRow
    person_id: int | None
    is_new: bool
    changed: bool                                          # a registry field differs from the database
    deltas: dict[str, int] = field(default_factory=dict)   # first load only: account kind -> balance in 分
    accounts: dict[str, int] = field(default_factory=dict)  # account kind -> ledger account id

    def reference(self) -> str:
        """The ledger reference of the first load: once per person, whatever imports race."""
        return f"registry_load:{self.person_id}"

    def content_digest(self) -> str:
        """sha256 of the row's balance fields, for the memo: which export content made the load."""
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

        # A first load creates both accounts.
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
                movements.append(ledger.Movement(
                    "registry_load", entries, plan.reference(),
                    memo=f"registry import persons.csv:{plan.row.line} sha256:{plan.content_digest()[:16]}"))
        ledger.post_many(movements)

        for plan in chunk:
            if plan.is_new:
                report.inserted += 1
            elif plan.changed or plan.deltas:
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


def _import_contributions(path: Path, report: FileReport, progress: Progress) -> None:
    from api.services.contributions import import_file
    import_file(path, report, progress)


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



# --- account credits (个人账户划入) ---------------------------------------------------------------------------

@dataclass
class _Credit:
    line: int
    person_id: int
    account_id: int
    id_number: str
    credited_on: dt.date
    amount_fen: int
    reference: str

    def digest(self) -> str:
        """What the credit says (not where in a file): an applied reference is compared by it."""
        return hashlib.sha256(f"{self.id_number}|{self.credited_on.isoformat()}|{self.amount_fen}"
                              .encode()).hexdigest()[:32]

    def memo(self) -> str:
        return f"account_credits.csv {self.credited_on.isoformat()} sha256:{self.digest()}"


def _credit_date(value: str, today: dt.date) -> dt.date:
    if not _DATE_RE.fullmatch(value):
        raise RowError(f"credited_on 须为 YYYY-MM-DD 日期，实为 {value[:20]!r}")
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise RowError(f"credited_on 不是有效日期：{value}") from None
    if day > today:
        raise RowError(f"credited_on {value} 晚于今天（{today.isoformat()}，北京时间）")
    return day


def _import_credits(path: Path, report: FileReport, progress: Progress) -> None:
    """`id_number,credited_on,amount_fen,reference`: each reference credited once, as an `account_credit`
    ledger transaction `credit:<reference>` from the registry's funding account — to the 历年 account when
    `credited_on` lies in an earlier year, to the 当年 account when in this year (Asia/Shanghai).

    A reference already applied with the same content is left alone (unchanged); with another content it is an
    error line, as is a reference repeated inside the file with another content.
    """
    rows = _read_csv(path, report, CREDIT_COLUMNS)
    today = local_today()
    pt = Person.__table__
    persons = {number: (pid, kind) for pid, number, kind in db.session.execute(
        select(pt.c.id, pt.c.id_number, pt.c.insurance_type))}
    accounts: dict[int, dict[str, int]] = {}
    for account_id, person_id, kind in db.session.execute(
            select(LedgerAccount.id, LedgerAccount.person_id, LedgerAccount.kind)
            .where(LedgerAccount.person_id.is_not(None), LedgerAccount.kind.in_(ledger.PERSONAL_KINDS))):
        accounts.setdefault(person_id, {})[kind] = account_id

    parsed: list[_Credit] = []
    seen: dict[str, _Credit] = {}
    for i, (line, row) in enumerate(rows, 1):
        if i % 10000 == 0:
            progress(report.name, "校验", i, len(rows))
        try:
            number = _id_number(row["id_number"], "id_number", persons)
            if number not in persons:
                raise RowError("id_number 不在参保人员登记中（persons.csv）")
            person_id, insurance_type = persons[number]
            held = accounts.get(person_id, {})
            if len(held) < len(ledger.PERSONAL_KINDS):
                raise RowError("居民医保参保人没有个人账户，不能划入" if insurance_type == "resident"
                               else "该参保人尚无个人账户，不能划入")
            credited_on = _credit_date(row["credited_on"], today)
            amount_text = row["amount_fen"]
            if not re.fullmatch(r"[+-]?[0-9]+", amount_text):
                raise RowError(f"amount_fen 须为以分为单位的正整数（不能有小数点），实为 {amount_text[:20]!r}")
            amount = int(amount_text)
            if amount <= 0:
                raise RowError(f"amount_fen 须大于 0，实为 {amount}")
            if amount > MAX_FEN:
                raise RowError("amount_fen 金额过大")
            reference = row["reference"]
            if not _REFERENCE_RE.fullmatch(reference):
                raise RowError("reference 须为 1–57 位字母、数字或 _ . : / -")
            kind = "personal_prior" if credited_on.year < today.year else "personal_current"
            credit = _Credit(line, person_id, held[kind], number, credited_on, amount, reference)
            first = seen.get(reference)
            if first is not None:
                if first.digest() != credit.digest():
                    raise RowError(f"reference {reference} 与第 {first.line} 行相同但内容不同")
                report.unchanged += 1  # the same credit twice in one file: once
                continue
        except RowError as exc:
            report.error(line, str(exc))
            continue
        seen[reference] = credit
        parsed.append(credit)
    progress(report.name, "校验", len(rows), len(rows))

    # Credits already in the ledger (under the import lock: a concurrent import's credits are committed or not).
    applied: dict[str, str | None] = {}
    references = [CREDIT_PREFIX + c.reference for c in parsed]
    for start in range(0, len(references), 1000):
        applied.update(db.session.execute(
            select(LedgerTransaction.reference, LedgerTransaction.memo)
            .where(LedgerTransaction.reference.in_(references[start:start + 1000]))).all())
    new = []
    for credit in parsed:
        reference = CREDIT_PREFIX + credit.reference
        if reference not in applied:
            new.append(credit)
        elif (applied[reference] or "").endswith(f"sha256:{credit.digest()}"):
            report.unchanged += 1
        else:
            report.error(credit.line, f"reference {credit.reference} 已于之前的导入中划入，内容不同（不重复划入）")
    if not report.ok:
        return

    funding = ledger.system_account(ledger.REGISTRY_ACCOUNT).id
    done = 0
    for chunk in _chunks(new):
        ledger.post_many([ledger.Movement(
            CREDIT_KIND, [ledger.Entry(c.account_id, c.amount_fen), ledger.Entry(funding, -c.amount_fen)],
            CREDIT_PREFIX + c.reference, memo=c.memo()) for c in chunk])
        done += len(chunk)
        progress(report.name, "写入", done, len(new))
    report.inserted = len(new)
