"""`make bench-import`: 100,000 synthetic persons imported twice through the real CLI on a fresh SQLite instance,
then (R14) a third time with 10,000 of them changed so that each change ends one of 10,000 active bindings.

Prints the wall-clock seconds of the first import, of the second (idempotent) one and of the third (the changes
and the automatic end, in the same import); the bar is < 60 s each.
"""
import argparse
import csv
import datetime as dt
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stdnum.cn import ric

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "fixtures" / "demo" / "policies"
REGIONS = ("440106", "440304", "440111", "310104", "310115", "330106", "140105", "370902")
BAR_SECONDS = 60


def id_number(region: str, birth: dt.date, order: int) -> str:
    body = f"{region}{birth:%Y%m%d}{order:03d}"
    return body + ric.calc_check_digit(body + "0")  # stdnum expects the check position present


def write_registry(directory: Path, persons: int) -> None:
    """persons.csv (70 % employees, some with a prior-year part), spouse pairs in kinship.csv, two institutions."""
    shutil.copytree(POLICIES, directory / "policies")
    start = dt.date(1950, 1, 1)
    numbers = []
    with open(directory / "persons.csv", "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["id_number", "name", "insurance_type", "status", "region_code", "card_number", "phone",
                      "account_balance_fen", "account_prior_year_fen"])
        for i in range(persons):
            # (birth date, order) is unique per i, so every number is distinct.
            number = id_number(REGIONS[i % len(REGIONS)], start + dt.timedelta(days=i % 20000), i // 20000)
            numbers.append(number)
            employee = i % 10 < 7
            balance = (i * 7919) % 2_000_000 if employee else ""
            prior = balance // 3 if employee and i % 4 == 0 else ""
            status = "suspended" if i % 97 == 0 else "normal"
            out.writerow([number, f"测试{i}", "employee" if employee else "resident", status, REGIONS[i % len(REGIONS)],
                          f"B{i:09d}", f"139{i:08d}", balance, prior])
    with open(directory / "kinship.csv", "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["id_number_a", "id_number_b", "relation"])
        for i in range(0, len(numbers) - 1, 2):
            out.writerow([numbers[i], numbers[i + 1], "spouse"])
    with open(directory / "institutions.csv", "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(["code", "name", "region_code", "designated", "api_key"])
        out.writerow(["HB0001", "基准测试医院", "440106", "true", "bench-key-hospital"])
        out.writerow(["PB0001", "基准测试药店", "440106", "true", "bench-key-pharmacy"])


PERSON_HEADER = ["id_number", "name", "insurance_type", "status", "region_code", "card_number", "phone",
                 "account_balance_fen", "account_prior_year_fen"]


def add_bindings(db_path: Path, wanted: int) -> list[tuple[int, int, str]]:
    """`wanted` active bindings between people of one region (an employee authorizer, both insured normally,
    nobody in two), written straight into the database; returns (authorizer line, beneficiary line, region)."""
    with sqlite3.connect(db_path) as conn:
        people = conn.execute("SELECT id, insurance_type, status, region_code FROM persons ORDER BY id").fetchall()
        pairs, used = [], set()
        step = len(REGIONS)  # i and i + 8 share a region in the generated file
        for i in range(len(people) - step):
            a, b = people[i], people[i + step]
            if len(pairs) == wanted:
                break
            if i in used or i + step in used or a[1] != "employee" or a[2] != "normal" or b[2] != "normal":
                continue
            used.update((i, i + step))
            pairs.append((i, i + step, a[3]))
        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
        conn.executemany(
            "INSERT INTO bindings (id, authorizer_id, beneficiary_id, relation, status, created_at) "
            "VALUES (?, ?, ?, 'sibling', 'active', ?)",
            [(f"bench{n:027d}", people[a][0], people[b][0], now) for n, (a, b, _) in enumerate(pairs)])
    return pairs


def change_people(registry: Path, pairs: list[tuple[int, int, str]]) -> dict[str, int]:
    """Rewrites persons.csv with one side of each binding changed, the three causes in turn: the authorizer
    terminated, the beneficiary suspended, the beneficiary insured in another province (where the authorizer's
    policy admits only his own province or city; elsewhere — 山西, national — the beneficiary is suspended)."""
    path = registry / "persons.csv"
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    status, region = header.index("status"), header.index("region_code")
    expected = {"AUTHORIZER_INSURANCE_CHANGED": 0, "BENEFICIARY_INSURANCE_CHANGED": 0, "OUT_OF_AREA": 0}
    for n, (a, b, home) in enumerate(pairs):
        cause = n % 3
        if cause == 2 and home.startswith("14"):
            cause = 1
        if cause == 0:
            body[a][status] = "terminated"
            expected["AUTHORIZER_INSURANCE_CHANGED"] += 1
        elif cause == 1:
            body[b][status] = "suspended"
            expected["BENEFICIARY_INSURANCE_CHANGED"] += 1
        else:
            body[b][region] = "310104" if home.startswith("44") else "440106"
            expected["OUT_OF_AREA"] += 1
    with open(path, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([header, *body])
    return expected


def ended(db_path: Path) -> dict[str, int]:
    with sqlite3.connect(db_path) as conn:
        return dict(conn.execute("SELECT end_code, COUNT(*) FROM bindings WHERE status = 'ended' "
                                 "GROUP BY end_code ORDER BY end_code").fetchall())


def flask(env: dict, *args: str) -> float:
    started = time.perf_counter()
    # stderr (the progress lines) goes straight to the terminal
    proc = subprocess.run([sys.executable, "-m", "flask", "--app", "api", *args], env=env, cwd=ROOT,
                          stdout=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout)
        raise SystemExit(f"flask {' '.join(args)} exited {proc.returncode}")
    print(proc.stdout.strip())
    return elapsed


def counts(db_path: Path) -> dict:
    with sqlite3.connect(db_path) as conn:
        return {table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for table in ("persons", "kinship", "ledger_accounts", "ledger_transactions", "postings")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--changes", type=int, default=10_000, help="R14: bindings ended by as many changes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gj-bench-import-") as tmp:
        tmp = Path(tmp)
        registry = tmp / "registry"
        registry.mkdir()
        write_registry(registry, args.persons)
        db_path = tmp / "bench.db"
        env = {**os.environ, "INSTANCE_PATH": str(tmp / "instance"), "DATABASE_URL": f"sqlite:///{db_path}",
               "SECRET_KEY": "bench", "LOG_LEVEL": "WARNING"}
        env.pop("REDIS_URL", None)
        flask(env, "db", "upgrade")
        first = flask(env, "registry", "import", str(registry))
        after_first = counts(db_path)
        second = flask(env, "registry", "import", str(registry))
        after_second = counts(db_path)
        pairs = add_bindings(db_path, args.changes)
        expected = change_people(registry, pairs)
        third = flask(env, "registry", "import", str(registry))
        by_code = ended(db_path)
        print(f"rows: {after_first}")
        print(f"first import:  {first:6.1f} s  ({args.persons} persons)")
        print(f"second import: {second:6.1f} s  (idempotent: {'yes' if after_first == after_second else 'NO'})")
        print(f"third import:  {third:6.1f} s  ({len(pairs)} persons changed; bindings ended: {by_code})")
        ok = first < BAR_SECONDS and second < BAR_SECONDS and after_first == after_second and \
            third < BAR_SECONDS and by_code == expected
        print("OK" if ok else f"FAILED: bar is {BAR_SECONDS} s, an unchanged second import and every changed "
                              f"binding ended (expected {expected})")
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
