"""Issue 8: once settlements move money, the registry no longer sets a balance after a person's first load.

A re-imported old `persons.csv` gives nothing back and is reported for reconciliation; `account_credits.csv`
(个人账户划入) credits each reference once, to the 历年 or 当年 part as `credited_on` says; bad rows are
`file:line: reason`; `flask ledger check` passes after each step. Runs on SQLite and PostgreSQL alike.
"""
import csv
import datetime as dt
import shutil
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from api import ledger
from api.extensions import db
from api.masking import mask_id
from api.models import AuditEvent, LedgerTransaction, Person
from api.services.registry import import_directory
from api.timefmt import local_today
from tests import factories
from tests.test_registry import DEMO, PERSON_HEADER, run_import, write_csv

CREDIT_HEADER = ["id_number", "credited_on", "amount_fen", "reference"]
INSTITUTION_HEADER = ["code", "name", "region_code", "designated", "api_key"]
URL = "/api/v1/institution/settlements"
HOSPITAL = {"X-Institution-Key": "key-registry-h1"}


def _number(seq: int, region: str = "440106") -> str:
    return factories.id_number(region, birth=dt.date(1980, 1, 1) + dt.timedelta(days=seq), seq=seq)


def _employee(seq: int, balance: int = 100000, prior: str = "") -> list:
    number = _number(seq)
    return [number, f"职工{seq}", "employee", "normal", "440106", f"R{seq:09d}", f"139{seq:08d}", str(balance),
            prior]


def _resident(seq: int) -> list:
    number = _number(seq)
    return [number, f"居民{seq}", "resident", "normal", "440106", f"R{seq:09d}", f"139{seq:08d}", "", ""]


def _registry(tmp_path: Path, persons: list[list], name: str = "registry") -> Path:
    base = tmp_path / name
    shutil.copytree(DEMO / "policies", base / "policies")
    write_csv(base / "persons.csv", PERSON_HEADER, persons)
    write_csv(base / "institutions.csv", INSTITUTION_HEADER,
              [["H44010699", "广州市测试医院", "440106", "true", HOSPITAL["X-Institution-Key"]]])
    return base


def _credits_only(tmp_path: Path, rows: list[list], name: str = "credits") -> Path:
    base = tmp_path / name
    base.mkdir(exist_ok=True)
    write_csv(base / "account_credits.csv", CREDIT_HEADER, rows)
    return base


def _person(number: str) -> Person:
    return db.session.scalar(select(Person).where(Person.id_number == number))


def _balance(number: str) -> tuple[int, int]:
    db.session.rollback()
    return ledger.balance_of(_person(number))


def _ledger_check_passes(runner) -> None:
    result = runner.invoke(args=["ledger", "check"])
    assert result.exit_code == 0, result.output
    assert "账目核对通过" in result.output


def _settle(client, person_number: str, card: str, amount: int, key: str):
    body = {"patient_id_number": person_number, "credential": card, "pooled_fen": 0,
            "items": [{"code": "D1", "name": "药品", "category": "drug", "amount_fen": amount}]}
    return client.post(URL, json=body, headers={**HOSPITAL, "Idempotency-Key": key})


def _credit_count() -> int:
    return db.session.scalar(select(func.count()).select_from(LedgerTransaction)
                             .where(LedgerTransaction.kind == "account_credit"))


# --- persons.csv after the first load --------------------------------------------------------------------------

def test_reimport_of_an_old_export_after_a_settlement_gives_nothing_back_and_reports_it(client, runner, tmp_path):
    row = _employee(1, balance=100000, prior="60000")
    registry = _registry(tmp_path, [row])
    first = run_import(runner, registry)
    assert first.exit_code == 0, first.output
    assert "对账" not in first.output
    assert _balance(row[0]) == (100000, 60000)
    _ledger_check_passes(runner)

    # today: the patient pays 300 元 from his own account through the real settlement endpoint
    paid = _settle(client, row[0], row[5], 30000, "s1")
    assert paid.status_code == 201, paid.json
    assert paid.json["own_account_fen"] == 30000
    after_settlement = _balance(row[0])
    assert after_settlement[0] == 70000
    _ledger_check_passes(runner)

    # yesterday's export again: nothing is given back, the difference is reported
    transactions = db.session.scalar(select(func.count()).select_from(LedgerTransaction))
    again = run_import(runner, registry)
    assert again.exit_code == 0, again.output
    assert _balance(row[0]) == after_settlement
    assert db.session.scalar(select(func.count()).select_from(LedgerTransaction)) == transactions
    masked = mask_id(row[0])
    line = f"persons.csv:2: 对账 {masked} 余额 登记 100000 分 / 账本 70000 分 / 差额 +30000 分"
    assert line in again.output
    assert row[0] not in again.output                       # the full ID number is never printed
    assert "persons.csv: 新增 0，更新 0，未变 1" in again.output
    _ledger_check_passes(runner)

    # kept for the operator: a CSV in the instance folder, named by an audit event
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "registry.reconciliation"))
    assert event is not None and event.detail["persons"] == 1
    kept = Path(event.detail["file"])
    assert kept.parent == Path(client.application.instance_path) / "reconciliation"
    assert f"对账明细已保存：{kept}" in again.output
    with open(kept, encoding="utf-8") as fh:
        records = list(csv.DictReader(fh))
    registry_prior, ledger_prior = 60000, after_settlement[1]
    assert records == [{"file": "persons.csv", "line": "2", "id_number_masked": masked,
                        "registry_balance_fen": "100000", "ledger_balance_fen": "70000", "difference_fen": "30000",
                        "registry_prior_year_fen": str(registry_prior), "ledger_prior_year_fen": str(ledger_prior),
                        "prior_year_difference_fen": str(registry_prior - ledger_prior)}]
    assert row[0] not in kept.read_text(encoding="utf-8")

    # the refund puts the money back through the ledger: the export and the ledger agree again
    sid = paid.json["id"]
    assert client.post(f"{URL}/{sid}/refund", headers=HOSPITAL).status_code == 200
    assert _balance(row[0]) == (100000, 60000)
    agreed = run_import(runner, registry)
    assert agreed.exit_code == 0 and "对账" not in agreed.output, agreed.output
    _ledger_check_passes(runner)


def test_status_region_card_and_phone_changes_apply_while_the_balance_is_only_reported(runner, tmp_path):
    row, other = _employee(2, balance=50000), _employee(3, balance=8000)
    registry = _registry(tmp_path, [row, other])
    assert run_import(runner, registry).exit_code == 0
    changed = [row[0], row[1], "employee", "suspended", "440104", "NEWCARD001", "13700000000", "90000", "20000"]
    write_csv(registry / "persons.csv", PERSON_HEADER, [changed, other])
    result = run_import(runner, registry)
    assert result.exit_code == 0, result.output
    assert "persons.csv: 新增 0，更新 1，未变 1" in result.output
    p = _person(row[0])
    assert (p.status, p.region_code, p.card_number, p.phone) == ("suspended", "440104", "NEWCARD001", "13700000000")
    assert _balance(row[0]) == (50000, 50000)
    assert (f"对账 {mask_id(row[0])} 余额 登记 90000 分 / 账本 50000 分 / 差额 +40000 分；"
            "其中历年 登记 20000 分 / 账本 50000 分 / 差额 -30000 分") in result.output
    assert mask_id(other[0]) not in result.output           # equal figures: no line
    _ledger_check_passes(runner)


def test_the_first_load_of_a_former_resident_sets_his_balance_once(runner, tmp_path):
    resident = _resident(4)
    registry = _registry(tmp_path, [resident])
    assert run_import(runner, registry).exit_code == 0
    assert not ledger.has_account(_person(resident[0]))
    employee = [*resident[:2], "employee", *resident[3:7], "120000", "20000"]
    write_csv(registry / "persons.csv", PERSON_HEADER, [employee])
    for _ in range(2):
        result = run_import(runner, registry)
        assert result.exit_code == 0 and "对账" not in result.output, result.output
        assert _balance(resident[0]) == (120000, 20000)
    loads = db.session.scalars(select(LedgerTransaction).where(LedgerTransaction.kind == "registry_load")).all()
    assert [t.reference for t in loads] == [f"registry_load:{_person(resident[0]).id}"]
    _ledger_check_passes(runner)


# --- account_credits.csv --------------------------------------------------------------------------------------

def test_a_credit_goes_to_the_prior_or_the_current_part_by_its_date(runner, tmp_path):
    row = _employee(5, balance=100000, prior="40000")
    registry = _registry(tmp_path, [row])
    today = local_today()
    write_csv(registry / "account_credits.csv", CREDIT_HEADER, [
        [row[0], dt.date(today.year - 1, 12, 15).isoformat(), "3000", "2025-12/a"],   # last year: 历年
        [row[0], dt.date(today.year, 1, 1).isoformat(), "5000", "2026-01/a"],         # this year: 当年
    ])
    result = run_import(runner, registry)
    assert result.exit_code == 0, result.output
    assert "account_credits.csv: 新增 2，更新 0，未变 0" in result.output
    assert _balance(row[0]) == (108000, 43000)                  # total +8000, of which 历年 +3000
    p = _person(row[0])
    current, prior = ledger.personal_accounts(p)
    credits = {t.reference: {q.account_id: q.amount_fen for q in t.postings}
               for t in db.session.scalars(select(LedgerTransaction)
                                           .where(LedgerTransaction.kind == "account_credit"))}
    funding = ledger.system_account(ledger.REGISTRY_ACCOUNT).id
    assert credits == {"credit:2025-12/a": {prior.id: 3000, funding: -3000},
                       "credit:2026-01/a": {current.id: 5000, funding: -5000}}
    # the persons.csv of the first load is now behind the ledger by the credits: reported, not applied
    again = run_import(runner, registry)
    assert again.exit_code == 0
    assert "差额 -8000 分；其中历年 登记 40000 分 / 账本 43000 分 / 差额 -3000 分" in again.output
    assert "account_credits.csv: 新增 0，更新 0，未变 2" in again.output
    assert _balance(row[0]) == (108000, 43000)
    _ledger_check_passes(runner)


def test_each_credit_is_applied_once_across_imports(runner, tmp_path):
    a, b = _employee(6, balance=10000), _employee(7, balance=0)
    assert run_import(runner, _registry(tmp_path, [a, b])).exit_code == 0
    today = local_today().isoformat()
    rows = [[a[0], today, "2500", "m1-a"], [b[0], today, "1200", "m1-b"]]
    first = run_import(runner, _credits_only(tmp_path, rows, "c1"))
    assert first.exit_code == 0, first.output
    assert "account_credits.csv: 新增 2，更新 0，未变 0" in first.output
    # next month's file repeats last month's lines (same content) and adds one: only the new one moves
    second = run_import(runner, _credits_only(tmp_path, rows + [[a[0], today, "2500", "m2-a"]], "c2"))
    assert second.exit_code == 0, second.output
    assert "account_credits.csv: 新增 1，更新 0，未变 2" in second.output
    assert _balance(a[0]) == (15000, 10000) and _balance(b[0]) == (1200, 0)
    assert _credit_count() == 3
    # the same line twice inside one file is one credit
    dup = run_import(runner, _credits_only(tmp_path, [[a[0], today, "700", "m3-a"]] * 2, "c3"))
    assert dup.exit_code == 0 and "新增 1，更新 0，未变 1" in dup.output
    assert _balance(a[0])[0] == 15700 and _credit_count() == 4
    _ledger_check_passes(runner)


@pytest.mark.parametrize("change, reason", [
    ({0: "UNKNOWN"}, "id_number 身份证号码"),
    ({0: "KNOWN_STRANGER"}, "id_number 不在参保人员登记中"),
    ({0: "RESIDENT"}, "居民医保参保人没有个人账户"),
    ({1: "2026-02-30"}, "credited_on 不是有效日期"),
    ({1: "20260101"}, "credited_on 须为 YYYY-MM-DD"),
    ({1: "TOMORROW"}, "晚于今天"),
    ({2: "12.50"}, "amount_fen 须为以分为单位的正整数"),
    ({2: "abc"}, "amount_fen 须为以分为单位的正整数"),
    ({2: "0"}, "amount_fen 须大于 0"),
    ({2: "-500"}, "amount_fen 须大于 0"),
    ({3: ""}, "reference 须为"),
    ({3: "有中文"}, "reference 须为"),
])
def test_bad_credit_rows_are_refused_whole_with_file_and_line(runner, tmp_path, change, reason):
    employee, resident = _employee(8), _resident(9)
    assert run_import(runner, _registry(tmp_path, [employee, resident])).exit_code == 0
    today = local_today()
    good = [employee[0], today.isoformat(), "1000", "good-1"]
    bad = [employee[0], today.isoformat(), "1000", "bad-1"]
    special = {"UNKNOWN": "44010619800101", "KNOWN_STRANGER": _number(99), "RESIDENT": resident[0],
               "TOMORROW": (today + dt.timedelta(days=1)).isoformat()}
    for column, value in change.items():
        bad[column] = special.get(value, value)
    result = run_import(runner, _credits_only(tmp_path, [good, bad]))
    assert result.exit_code != 0
    errors = [line for line in result.output.splitlines() if line.startswith("account_credits.csv:3:")]
    assert len(errors) == 1 and reason in errors[0], result.output
    assert "account_credits.csv: 未导入" in result.output
    assert _credit_count() == 0 and _balance(employee[0]) == (100000, 100000)   # nothing of the file written
    _ledger_check_passes(runner)


def test_a_reference_with_another_content_is_an_error_in_the_file_and_across_imports(runner, tmp_path):
    a = _employee(10)
    assert run_import(runner, _registry(tmp_path, [a])).exit_code == 0
    today = local_today().isoformat()
    inside = run_import(runner, _credits_only(tmp_path, [[a[0], today, "1000", "r1"], [a[0], today, "1001", "r1"]],
                                              "c1"))
    assert inside.exit_code != 0
    assert "account_credits.csv:3: reference r1 与第 2 行相同但内容不同" in inside.output
    assert _credit_count() == 0

    assert run_import(runner, _credits_only(tmp_path, [[a[0], today, "1000", "r1"]], "c2")).exit_code == 0
    later = run_import(runner, _credits_only(tmp_path, [[a[0], today, "2000", "r2"], [a[0], today, "1500", "r1"]],
                                             "c3"))
    assert later.exit_code != 0
    assert "account_credits.csv:3: reference r1 已于之前的导入中划入，内容不同" in later.output
    assert _credit_count() == 1 and _balance(a[0])[0] == 101000      # r2 not written either: the file is whole
    _ledger_check_passes(runner)


def _race(app, directory: Path) -> list:
    """Two imports of `directory` in threads that meet after validating the credits; their credit reports."""
    meet = threading.Barrier(2)
    reports, errors = [None, None], []

    def progress(name, stage, done, total):
        if name == "account_credits.csv" and stage == "校验" and done == total:
            try:
                meet.wait(timeout=3)
            except threading.BrokenBarrierError:
                pass

    def run(n):
        try:
            with app.app_context():
                reports[n] = import_directory(directory, progress)
                db.session.remove()
        except Exception as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    return [next(r for r in rs if r.name == "account_credits.csv") for rs in reports]


@pytest.mark.parametrize("lock", [True, False], ids=["with-lock", "without-lock"])
def test_concurrent_imports_apply_each_credit_once(clean_app, runner, tmp_path, monkeypatch, lock):
    """With the import lock the second import finds every credit applied; without it (PostgreSQL) the second
    insert of a `credit:` reference fails and that file is rejected whole. Either way: once."""
    if not lock:
        from api.services import registry
        monkeypatch.setattr(registry, "_take_import_lock", lambda: None)
    people = [_employee(20 + i, balance=1000) for i in range(30)]
    assert run_import(runner, _registry(tmp_path, people)).exit_code == 0
    today = local_today().isoformat()
    rows = [[p[0], today, str(100 + i), f"2026-race-{i}"] for i, p in enumerate(people)]
    reports = _race(clean_app, _credits_only(tmp_path, rows))
    winners = [r for r in reports if r.ok and r.inserted == 30]
    assert len(winners) == 1, [(r.inserted, r.unchanged, r.errors) for r in reports]
    other = reports[1 - reports.index(winners[0])]
    assert (other.ok and other.unchanged == 30) or any("冲突" in e for e in other.errors), other.errors
    if not lock and db.engine.dialect.name == "postgresql":  # both validated before either wrote: the index stops it
        assert not other.ok and any("冲突" in e for e in other.errors), other.errors
    db.session.rollback()
    assert _credit_count() == 30
    assert {p[0]: _balance(p[0])[0] for p in people} == {p[0]: 1100 + i for i, p in enumerate(people)}
    _ledger_check_passes(runner)
    # and a retry of the rejected one is a no-op
    retry = run_import(runner, tmp_path / "credits")
    assert retry.exit_code == 0 and "account_credits.csv: 新增 0，更新 0，未变 30" in retry.output
