"""`make bench-import`: 100,000 synthetic persons imported twice through the real CLI on a fresh SQLite instance.

Prints the wall-clock seconds of the first import and of the second (idempotent) one; the bar is < 60 s each.
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
        print(f"rows: {after_first}")
        print(f"first import:  {first:6.1f} s  ({args.persons} persons)")
        print(f"second import: {second:6.1f} s  (idempotent: {'yes' if after_first == after_second else 'NO'})")
        ok = first < BAR_SECONDS and second < BAR_SECONDS and after_first == after_second
        print("OK" if ok else f"FAILED: bar is {BAR_SECONDS} s and an unchanged second import")
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
