"""`make bench-settle-profile`: where one settlement's CPU goes, measured in-process.

Seeds the families of `make bench-settle` on a fresh database (DATABASE_URL's schema is DROPPED and rebuilt, as
there; a temp SQLite file without it), warms up, then sends `--settlements` settlements in turn through Flask's
test client (the whole app: authentication, flask-smorest, the service, the commit and the notice's job) and
reports per settlement:
- the web process's CPU (`time.thread_time`), in all and for the parts of the service named below;
- on a PostgreSQL server on this machine, its backend's CPU (utime + stime of `/proc/<pid>/stat` of the session's
  backend, `pg_backend_pid()`); elsewhere "n/a".
No gunicorn, no concurrency: the cost of one settlement, not a rate (`make bench-settle` measures the rate).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections import Counter

from tests.bench.review import _prepare_environment
from tests.bench.settle import INSTITUTIONS, _analyze, _fresh_schema, _seed_families

PARTS = (  # (module, function, what it is)
    ("api.auth", "current_institution", "authentication (connection check-out, BEGIN, the key look-up)"),
    ("api.services.settlement_store", "patient", "store: the patient and the key"),
    ("api.services.settlement_store", "read", "store: locks, bindings, balances"),
    ("api.services.settlement_store", "write", "store: the ledger, the settlement, the payments, the notices"),
    ("api.jobs", "wake", "waking the notices' drain job (a Redis SET NX; an RQ enqueue when it was not rung)"),
)


def _backend_cpu_ms(pid: int | None) -> float | None:
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except (OSError, TypeError):
        return None
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settlements", type=int, default=1000)
    parser.add_argument("--families", type=int, default=2000)
    args = parser.parse_args(argv)

    tmp, kind, own_redis = _prepare_environment()
    import importlib

    from sqlalchemy import text

    from api import create_app
    from api.extensions import db
    from sqlalchemy.orm import Session
    app = create_app()
    spent: Counter = Counter()

    def timed(owner, name: str, label: str) -> None:
        original = getattr(owner, name)

        def wrapper(*a, **kw):
            started = time.thread_time()
            try:
                return original(*a, **kw)
            finally:
                spent[label] += time.thread_time() - started
        setattr(owner, name, wrapper)

    try:
        _fresh_schema(app, kind)
        with app.app_context():
            bodies = _seed_families(args.families)
            db.session.remove()
            _analyze()
        for module, name, label in PARTS:
            timed(importlib.import_module(module), name, label)
        timed(Session, "commit", "the commit")
        client = app.test_client()
        headers = {"X-Institution-Key": INSTITUTIONS[0][3], "Content-Type": "application/json"}

        def settle(n: int) -> None:
            r = client.post("/api/v1/institution/settlements", data=json.dumps(bodies[n % len(bodies)]),
                            headers={**headers, "Idempotency-Key": uuid.uuid4().hex})
            if r.status_code != 201:
                raise SystemExit(f"settlement refused: {r.status_code} {r.get_data(as_text=True)[:300]}")

        with app.app_context():
            backend = db.session.execute(text("SELECT pg_backend_pid()")).scalar() \
                if db.engine.dialect.name == "postgresql" else None
            db.session.rollback()
            for n in range(200):  # warm-up: imports, the policies, psycopg's prepared statements
                settle(n)
            spent.clear()
            pg_before, cpu_before = _backend_cpu_ms(backend), time.thread_time()
            wall = time.perf_counter()
            for n in range(args.settlements):
                settle(200 + n)
            wall = time.perf_counter() - wall
            web_ms = (time.thread_time() - cpu_before) * 1000 / args.settlements
            pg_after = _backend_cpu_ms(backend)
            from api import ledger
            problems = ledger.check()
            db.session.remove()
    finally:
        if own_redis is not None:
            from api import embedded
            embedded.stop(own_redis)
    n = args.settlements
    pg = "n/a" if pg_before is None or pg_after is None else f"{(pg_after - pg_before) / n:.2f} ms"
    print(f"\n== one settlement, {n} in turn ({kind}; load average {os.getloadavg()[0]:.2f}) ==")
    print(f"web process CPU      {web_ms:.2f} ms   (wall {wall * 1000 / n:.2f} ms)")
    print(f"PostgreSQL backend   {pg}")
    for label, seconds in spent.most_common():
        print(f"  {seconds * 1000 / n:6.2f} ms  {label}")
    print("  (the rest: Flask, flask-smorest, marshmallow, the plan and the answer, the request log)")
    print(f"ledger check: {'ok' if not problems else problems[:3]}")
    print(f"instance kept in {tmp}")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
