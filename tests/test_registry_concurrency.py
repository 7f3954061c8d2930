"""Two registry imports of one changed export at the same moment: they take turns; every changed row is updated
once, and no changed balance moves at all — after the first load it is only reported (issue 8) — in threads with
their own app context, and in two `flask registry import` processes. A first load races to one posting."""
import csv
import datetime as dt
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

from sqlalchemy import func, select

from api import ledger
from api.extensions import db
from api.models import LedgerAccount, LedgerTransaction, Person, Posting
from api.services.registry import import_directory
from tests import factories
from tests.test_registry import DEMO, PERSON_HEADER, run_import, write_csv

ROOT = Path(__file__).resolve().parent.parent


def _demo_rows() -> list[list[str]]:
    with open(DEMO / "persons.csv", encoding="utf-8") as fh:
        rows = [dict(r) for r in csv.DictReader(fh)]
    return [[r.get(c, "") or "" for c in PERSON_HEADER] for r in rows]


def _extra_rows(n: int) -> list[list[str]]:
    """n more employees of 广州, so that an import takes long enough for two to overlap."""
    rows = []
    for i in range(n):
        number = factories.id_number("440106", birth=dt.date(1960, 1, 1) + dt.timedelta(days=i), seq=i)
        rows.append([number, f"员工{i}", "employee", "normal", "440106", f"H{i:09d}", f"139{i:08d}",
                     str(100000 + i), ""])
    return rows


def _changed(rows: list[list[str]]) -> tuple[list[list[str]], dict[str, int]]:
    """Every other employee's balance raised by a different amount and his phone changed; returns the rows and
    the balances the export now states (which the import must not apply)."""
    out, targets = [], {}
    for i, row in enumerate(rows):
        row = list(row)
        if row[2] == "employee" and i % 2 == 0:
            row[7] = str(int(row[7]) + 1000 + i)
            row[6] = f"137{i:08d}"
            targets[row[0]] = int(row[7])
        out.append(row)
    return out, targets


def _prepare(runner, tmp_path, extra: int) -> tuple[Path, dict[str, int], dict[str, int]]:
    """Loads the demo plus `extra` people; writes the changed export; returns its dir, targets, old balances."""
    base = tmp_path / "base"
    shutil.copytree(DEMO / "policies", base / "policies")
    rows = _demo_rows() + _extra_rows(extra)
    write_csv(base / "persons.csv", PERSON_HEADER, rows)
    first = run_import(runner, base)
    assert first.exit_code == 0, first.output
    changed_rows, targets = _changed(rows)
    changed = tmp_path / "changed"
    changed.mkdir()
    write_csv(changed / "persons.csv", PERSON_HEADER, changed_rows)
    before = {number: _balance(number) for number in targets}
    assert all(before[n] != targets[n] for n in targets)
    db.session.commit()
    return changed, targets, before


def _balance(id_number: str) -> int:
    person = db.session.scalar(select(Person).where(Person.id_number == id_number))
    return ledger.balance_of(person)[0]


def _registry_postings_by_person() -> dict[str, int]:
    """How many registry transactions (first loads and anything else the registry posted) touch each person."""
    return dict(db.session.execute(
        select(Person.id_number, func.count(func.distinct(LedgerTransaction.id)))
        .join(LedgerAccount, LedgerAccount.person_id == Person.id)
        .join(Posting, Posting.account_id == LedgerAccount.id)
        .join(LedgerTransaction, LedgerTransaction.id == Posting.transaction_id)
        .where(LedgerTransaction.kind.like("registry%"))
        .group_by(Person.id_number)).all())


def _assert_nothing_moved(runner, targets: dict[str, int], before: dict[str, int]) -> None:
    db.session.rollback()
    db.session.expire_all()
    assert {n: _balance(n) for n in targets} == before                 # the export's figures were not applied
    assert set(_registry_postings_by_person().values()) == {1}          # one first load each, nothing after
    assert db.session.scalar(select(func.count()).select_from(LedgerTransaction)
                             .where(LedgerTransaction.kind == "registry_adjust")) == 0
    phones = dict(db.session.execute(select(Person.id_number, Person.phone)
                                     .where(Person.id_number.in_(list(targets)))).all())
    assert all(phone.startswith("137") for phone in phones.values())   # the rest of each row applied
    check = runner.invoke(args=["ledger", "check"])
    assert check.exit_code == 0, check.output


def _race_in_threads(app, changed: Path) -> list:
    """Runs two imports of `changed` in threads; returns their persons.csv reports."""
    # Both imports meet once they have read the file and the people (before the ledger sums): without the
    # import lock both would go on to post from the same state. With it, the first waits here alone for a while.
    meet = threading.Barrier(2)
    reports, errors = [None, None], []

    def progress(name, stage, done, total):
        if name == "persons.csv" and stage == "校验" and done == total:
            try:
                meet.wait(timeout=3)
            except threading.BrokenBarrierError:
                pass

    def run(n):
        try:
            with app.app_context():
                reports[n] = import_directory(changed, progress)
                db.session.remove()
        except Exception as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    return [next(r for r in rs if r.name == "persons.csv") for rs in reports]


def test_two_imports_in_threads_at_the_same_moment_update_once_and_move_no_balance(clean_app, runner, tmp_path):
    changed, targets, before = _prepare(runner, tmp_path, extra=40)
    persons = _race_in_threads(clean_app, changed)
    assert all(r.ok for r in persons), [r.errors for r in persons]
    assert sorted(r.updated for r in persons) == [0, len(targets)]  # the second found nothing left to do
    for report in persons:  # both report every changed balance: the ledger still differs from the export
        assert {r.id_number for r in report.reconciliation} == set(targets)
    _assert_nothing_moved(runner, targets, before)


def test_without_the_lock_a_first_load_still_happens_once(clean_app, runner, tmp_path, monkeypatch):
    """Defence in depth: imports that skip the advisory lock (PostgreSQL) race on a first load; the loser's insert
    of the same person / account / ledger reference fails and its file is rejected whole, so nobody is loaded
    twice. (On SQLite the writers' lock still serializes them; the second then finds everyone loaded.)"""
    from api.services import registry
    monkeypatch.setattr(registry, "_take_import_lock", lambda: None)
    base = tmp_path / "r"
    shutil.copytree(DEMO / "policies", base / "policies")
    rows = _extra_rows(40)
    write_csv(base / "persons.csv", PERSON_HEADER, rows)
    persons = _race_in_threads(clean_app, base)
    assert any(r.ok and r.inserted == 40 for r in persons), [r.errors for r in persons]
    assert all(r.ok or any("冲突" in e for e in r.errors) for r in persons), [r.errors for r in persons]
    db.session.rollback()
    assert _registry_postings_by_person() == {row[0]: 1 for row in rows}
    assert {row[0]: _balance(row[0]) for row in rows} == {row[0]: int(row[7]) for row in rows}
    assert runner.invoke(args=["ledger", "check"]).exit_code == 0


def test_two_import_processes_at_once_update_once_and_move_no_balance(clean_app, runner, tmp_path):
    changed, targets, before = _prepare(runner, tmp_path, extra=1500)
    env = dict(os.environ)  # the test's DATABASE_URL, REDIS_URL, INSTANCE_PATH, SECRET_KEY
    cmd = [sys.executable, "-m", "flask", "--app", "api", "registry", "import", str(changed)]
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=180) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, out + err[-2000:]
        assert f"persons.csv 中 {len(targets)} 人的登记余额与账本不符，未调整" in out
    assert sorted("更新 0" in out.split("persons.csv: 新增")[1].splitlines()[0] for out, _ in outputs) == \
        [False, True]
    _assert_nothing_moved(runner, targets, before)


def test_a_balance_going_back_and_forth_never_moves(clean_app, runner, tmp_path):
    """After the first load, A→B→A→B in the export moves nothing; each import whose figure differs reports it."""
    base = tmp_path / "r"
    shutil.copytree(DEMO / "policies", base / "policies")
    row = _extra_rows(1)[0]
    for balance in ("100000", "200000", "100000", "200000"):
        row[7] = balance
        write_csv(base / "persons.csv", PERSON_HEADER, [row])
        result = run_import(runner, base)
        assert result.exit_code == 0, result.output
        assert _balance(row[0]) == 100000
        assert ("对账" in result.output) == (balance != "100000")
    assert _registry_postings_by_person() == {row[0]: 1}
    assert runner.invoke(args=["ledger", "check"]).exit_code == 0
