"""`make bench-settle`: settlements/s against /healthz/s on gunicorn as `make run` starts it, then GET /usage p95
with 20 thousand and with 2 million usage records.

A. /healthz and B. POST /api/v1/institution/settlements, each for `--seconds` by the same 50 clients (threads,
   each with its own keep-alive http.client connection), against the Procfile's `web` process (gunicorn,
   api/gunicorn_conf.py). Every settlement has its own Idempotency-Key; the patients are the beneficiaries of
   `--families` families (an employee authorizer paying through a binding for a resident relative), taken in
   turn, so no two clients hit the same family at once; a couple of hospitals settle them all, as in a city.
   Reported: requests/s of each, their ratio, settlement p50/p99 as the clients see them (a closed loop of 50:
   queueing in gunicorn included) and as the app times them (its request log's duration_ms).
C. Usage: a generator bulk-inserts usage records (settlements + family payments; COPY on PostgreSQL, executemany on
   SQLite) over many families, among them one authorizer with a realistic history (RECORDS_OF_READER records as
   authorizer and beneficiary over three years); GET /api/v1/usage as that person is timed sequentially with 20,000
   records in the database, then again with 2,000,000; p95 of each and their ratio.
Targets: settlement rps >= 0.25 x healthz rps; settlement p99 <= 50 ms; usage p95 <= 20 ms at 2 M and <= 2 x the
20 k p95. Exits 1 when one is missed.

Runs on a temp SQLite file unless DATABASE_URL is set (then its schema is DROPPED and rebuilt), on REDIS_URL
(`python -m api.embedded` exports the embedded server's; without it a private one is started), flushed first.
The generated history has no ledger postings (GET /usage never reads them); the settlements of phase B do.
"""
from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import random
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from tests.bench.review import _banner, _id_number, _prepare_environment, _quantile

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = 50
FAMILIES = 2000
SMALL, LARGE = 20_000, 2_000_000
RECORDS_OF_READER = 150  # about four family payments a month for three years
RATIO_TARGET, P99_TARGET_MS, USAGE_P95_TARGET_MS, USAGE_GROWTH_TARGET = 0.25, 50.0, 20.0, 2.0
INSTITUTIONS = (("H4401001", "广州市第一人民医院", "440104", "bench-key-1"),
                ("H4401002", "广州市中医院", "440104", "bench-key-2"))
REGION = "440106"


# --- set-up ------------------------------------------------------------------------------------------------------

def _fresh_schema(app, kind: str) -> None:
    from flask_migrate import upgrade
    from sqlalchemy import text

    from api.extensions import db, redis_client
    with app.app_context():
        redis_client().ping()
        if kind != "sqlite (temp file)":
            _banner(f"DATABASE_URL is set: DROPPING every table of "
                    f"{db.engine.url.render_as_string(hide_password=True)} and rebuilding it")
        db.drop_all()
        with db.engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        upgrade()
        redis_client().flushdb()


def _person_rows(start: int, count: int, insurance_type: str, tag: str) -> list[dict]:
    now = dt.datetime.now(dt.timezone.utc)
    rows = []
    for i in range(start, start + count):
        number = _id_number(REGION, dt.date(1940, 1, 1) + dt.timedelta(days=i % 20000), i // 20000 % 1000)
        rows.append({"id_number": number, "name": f"{tag}{i}", "insurance_type": insurance_type, "status": "normal",
                     "region_code": REGION, "card_number": "C" + number[-10:], "phone": "13800138000",
                     "settlement_suspended": False, "created_at": now, "updated_at": now})
    return rows


def _seed_families(families: int) -> list[dict]:
    """`families` employee authorizers funded through the ledger, each bound to a resident beneficiary; returns
    the settlement bodies, one per beneficiary."""
    from sqlalchemy import insert, select

    from api import ledger
    from api.extensions import db
    from api.models import Binding, LedgerAccount, Person
    from tests import factories

    factories.load_policies()
    for code, name, region, key in INSTITUTIONS:
        factories.institution(code, name, region, api_key=key)
    # ids 0..2*families-1 of the generator's numbering: authorizers even, beneficiaries odd
    authorizers = _person_rows(0, families, "employee", "基准授权")
    beneficiaries = _person_rows(families, families, "resident", "基准共济")
    db.session.execute(insert(Person), authorizers + beneficiaries)
    ids = dict(db.session.execute(select(Person.id_number, Person.id)).all())
    accounts = []
    for row in authorizers:
        pid = ids[row["id_number"]]
        accounts += [{"code": f"person:{pid}:current", "kind": "personal_current", "person_id": pid, "balance_fen": 0},
                     {"code": f"person:{pid}:prior", "kind": "personal_prior", "person_id": pid, "balance_fen": 0}]
    db.session.execute(insert(LedgerAccount), accounts)
    funding = ledger.system_account(ledger.REGISTRY_ACCOUNT)
    prior = dict(db.session.execute(select(LedgerAccount.person_id, LedgerAccount.id)
                                    .where(LedgerAccount.kind == "personal_prior")).all())
    ledger.post_many([ledger.Movement("registry_load", [ledger.Entry(prior[ids[r["id_number"]]], 50_000_000),
                                                        ledger.Entry(funding.id, -50_000_000)],
                                      reference=f"bench-load:{r['id_number']}") for r in authorizers])
    db.session.execute(insert(Binding), [
        {"id": uuid.uuid4().hex, "authorizer_id": ids[a["id_number"]], "beneficiary_id": ids[b["id_number"]],
         "relation": "child", "status": "active", "created_at": dt.datetime.now(dt.timezone.utc)}
        for a, b in zip(authorizers, beneficiaries)])
    db.session.commit()
    return [{"patient_id_number": b["id_number"], "credential": b["card_number"], "pooled_fen": 2000,
             "items": [{"code": "D1", "name": "阿莫西林胶囊", "category": "drug", "amount_fen": 3650},
                       {"code": "T1", "name": "门诊诊查费", "category": "treatment", "amount_fen": 1000},
                       {"code": "N1", "name": "维生素软糖", "category": "non_medical", "amount_fen": 500}]}
            for b in beneficiaries]


# --- the server ----------------------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_web(tmp: Path, port: int) -> tuple[subprocess.Popen, Path]:
    """The Procfile's `web` command (gunicorn with api/gunicorn_conf.py), `gunicorn` from this environment."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == "web":
            argv = shlex.split(command)
            break
    else:
        raise SystemExit("Procfile has no `web` process")
    local = Path(sys.executable).parent / argv[0]
    argv[0] = str(local) if local.exists() else argv[0]
    log_path = tmp / "web.log"
    print(f"  starting web: PORT={port} {shlex.join(argv)}", flush=True)
    proc = subprocess.Popen(argv, cwd=ROOT, env=dict(os.environ, PORT=str(port)), stdout=open(log_path, "ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return proc, log_path
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"gunicorn did not answer; see {log_path}:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.1)


def _stop_web(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)  # gunicorn's graceful shutdown
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# --- load ----------------------------------------------------------------------------------------------------------

def _closed_loop(port: int, clients: int, seconds: float, request) -> dict:
    """`clients` threads, each sending request(n) -> (method, path, body, headers) on its own keep-alive connection
    as soon as the previous answer arrived, for `seconds`. Returns counts, rps and client-side latencies."""
    stop_at = [0.0]
    barrier = threading.Barrier(clients + 1)
    latencies: list[list[float]] = [[] for _ in range(clients)]
    bad: list[tuple[int, bytes]] = []

    def run(c: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        n = c
        barrier.wait()
        while time.monotonic() < stop_at[0]:
            method, path, body, headers = request(n)
            t0 = time.perf_counter()
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
            latencies[c].append(time.perf_counter() - t0)
            if r.status >= 300 and len(bad) < 5:
                bad.append((r.status, data[:300]))
            n += clients
        conn.close()

    threads = [threading.Thread(target=run, args=(c,), daemon=True) for c in range(clients)]
    for t in threads:
        t.start()
    stop_at[0] = time.monotonic() + seconds
    barrier.wait()
    t0 = time.monotonic()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    if bad:
        raise SystemExit(f"refused requests: {bad}")
    every = sorted(x * 1000 for lat in latencies for x in lat)
    return {"requests": len(every), "seconds": elapsed, "rps": len(every) / elapsed,
            "p50": _quantile(every, 0.50), "p99": _quantile(every, 0.99)}


def _server_times(log_path: Path, offset: int, path: str) -> list[float]:
    """duration_ms of the app's request log lines for `path` written after `offset`."""
    found = []
    with open(log_path, "rb") as f:
        f.seek(offset)
        for line in f:
            if line.startswith(b"{") and b'"duration_ms"' in line:
                entry = json.loads(line)
                if entry.get("path") == path:
                    found.append(entry["duration_ms"])
    return sorted(found)


# --- usage records -------------------------------------------------------------------------------------------------

class Generator:
    """Bulk-inserts usage records: each a settlement paid (in part) by a family binding, and its family payment.

    Families are made on the way (one per 20 records: a binding paying about once every two months for 3 years),
    plus the reader: an authorizer with two relatives he pays for and a parent who pays for him."""

    def __init__(self, app, kind: str):
        self.app, self.kind = app, kind
        self.made, self.next_person = 0, 10_000_000
        self.bindings: list[tuple[str, int, int]] = []   # (binding, authorizer, beneficiary)
        self.rand = random.Random(8)
        self.now = dt.datetime.now(dt.timezone.utc)

    def _families(self, count: int):
        from sqlalchemy import insert, select

        from api.extensions import db
        from api.models import Binding, Person
        db.session.rollback()
        start = self.next_person
        self.next_person += 2 * count
        rows = _person_rows(start, 2 * count, "employee", "历史")
        db.session.execute(insert(Person), rows)
        numbers = [r["id_number"] for r in rows]
        ids = {}
        for i in range(0, len(numbers), 5000):
            ids.update(db.session.execute(select(Person.id_number, Person.id)
                                          .where(Person.id_number.in_(numbers[i:i + 5000]))).all())
        made = [(uuid.uuid4().hex, ids[numbers[2 * i]], ids[numbers[2 * i + 1]]) for i in range(count)]
        db.session.execute(insert(Binding), [
            {"id": b, "authorizer_id": a, "beneficiary_id": p, "relation": "child", "status": "active",
             "created_at": self.now - dt.timedelta(days=1200)} for b, a, p in made])
        db.session.commit()
        return made

    def reader(self) -> int:
        """The person whose records are read: pays for two relatives, is paid for by a third; his records are
        inserted first, so the 20 k and the 2 M runs read the same ones."""
        from api.extensions import db
        mine = self._families(3)
        (b1, me, kid1), (b2, _, kid2), (b3, dad, _) = mine
        from sqlalchemy import update

        from api.models import Binding
        db.session.execute(update(Binding).where(Binding.id == b2).values(authorizer_id=me))
        db.session.execute(update(Binding).where(Binding.id == b3).values(beneficiary_id=me))
        db.session.commit()
        self.reader_bindings = [(b1, me, kid1), (b2, me, kid2), (b3, dad, me)]
        self._records([self.reader_bindings[i % 3] for i in range(RECORDS_OF_READER)])
        return me

    def grow_to(self, total: int) -> float:
        t0 = time.monotonic()
        while self.made < total:
            chunk = min(200_000, total - self.made)
            families = self._families(max(1, chunk // 20))
            self._records([families[i % len(families)] for i in range(chunk)])
        _analyze()
        return time.monotonic() - t0

    def _records(self, bindings: list[tuple[str, int, int]]) -> None:
        from api.extensions import db
        institution_ids = self._institution_ids()
        settlements, payments = [], []
        for binding, authorizer, beneficiary in bindings:
            sid = uuid.uuid4().hex
            at = (self.now - dt.timedelta(seconds=self.rand.randrange(3 * 365 * 86400))).replace(tzinfo=None)
            inst = institution_ids[self.rand.randrange(len(institution_ids))]
            amount = self.rand.randrange(500, 30000)
            refunded = at if self.rand.random() < 0.02 else None
            settlements.append((sid, inst, beneficiary, None, "-", "[]", amount, amount, 0, amount, 0, 0,
                                "refunded" if refunded else "settled", at, refunded))
            payments.append((uuid.uuid4().hex, sid, 0, binding, authorizer, beneficiary, inst, amount, at, refunded))
        s_cols = ("id, institution_id, patient_id, idempotency_key, request_hash, items, total_fen, eligible_fen, "
                  "pooled_fen, personal_burden_fen, own_account_fen, cash_fen, status, created_at, refunded_at")
        p_cols = ("id, settlement_id, position, binding_id, authorizer_id, beneficiary_id, institution_id, "
                  "amount_fen, created_at, refunded_at")
        raw = db.engine.raw_connection()
        try:
            cur = raw.cursor()
            if self.kind == "postgresql":
                # rows consistent by construction: no per-row foreign key trigger (this session only, until commit)
                cur.execute("SET LOCAL session_replication_role = replica")
                for table, cols, rows in (("settlements", s_cols, settlements), ("family_payments", p_cols, payments)):
                    with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
            else:
                cur.execute("PRAGMA foreign_keys=OFF")  # as above; outside a transaction, for this connection
                def text(rows):
                    return [tuple(v.strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(v, dt.datetime) else v
                                  for v in row) for row in rows]
                cur.executemany(f"INSERT INTO settlements ({s_cols}) VALUES ({', '.join('?' * 15)})", text(settlements))
                cur.executemany(f"INSERT INTO family_payments ({p_cols}) VALUES ({', '.join('?' * 10)})",
                                text(payments))
            raw.commit()
            if self.kind != "postgresql":
                cur.execute("PRAGMA foreign_keys=ON")
        finally:
            raw.close()
        self.made += len(bindings)

    def _institution_ids(self) -> list[int]:
        from sqlalchemy import select

        from api.extensions import db
        from api.models import Institution
        ids = list(db.session.scalars(select(Institution.id)))
        db.session.rollback()  # no read snapshot left open: on SQLite it could not write later
        return ids


def _analyze() -> None:
    from sqlalchemy import text

    from api.extensions import db
    with db.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("ANALYZE"))


def _usage_p95(port: int, headers: dict, requests: int) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times, items = [], None
    for n in range(requests + 20):
        t0 = time.perf_counter()
        conn.request("GET", "/api/v1/usage", headers=headers)
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            raise SystemExit(f"GET /api/v1/usage: {r.status} {body[:300]!r}")
        if n >= 20:  # the first ones warm the workers' caches
            times.append((time.perf_counter() - t0) * 1000)
        items = len(json.loads(body)["items"])
    conn.close()
    times.sort()
    return {"p50": _quantile(times, 0.5), "p95": _quantile(times, 0.95), "items": items, "requests": requests}


# --- the run -------------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15, help="length of each rps phase")
    parser.add_argument("--clients", type=int, default=CLIENTS)
    parser.add_argument("--families", type=int, default=FAMILIES)
    parser.add_argument("--small", type=int, default=SMALL)
    parser.add_argument("--large", type=int, default=LARGE)
    parser.add_argument("--usage-requests", type=int, default=500)
    parser.add_argument("--skip-usage", action="store_true")
    args = parser.parse_args(argv)

    tmp, kind, own_redis = _prepare_environment()
    from api import create_app, ledger
    from api.extensions import db
    from api.models import Person
    from tests.lifecycle_helpers import person_headers
    app = create_app()
    web = None
    try:
        _fresh_schema(app, kind)
        with app.app_context():
            t0 = time.monotonic()
            bodies = _seed_families(args.families)
            db.session.remove()
            _analyze()  # the planner's statistics, as a live database keeps them (autovacuum)
            print(f"seeded {args.families} families in {time.monotonic() - t0:.1f} s ({kind})", flush=True)
        port = _free_port()
        web, log_path = _start_web(tmp, port)
        keys = [{"X-Institution-Key": key, "Content-Type": "application/json"} for *_, key in INSTITUTIONS]
        run_id = uuid.uuid4().hex[:8]

        def healthz(_n):
            return "GET", "/healthz", None, {}

        def settlement(n):
            body = json.dumps(bodies[n % len(bodies)], ensure_ascii=False).encode()
            return "POST", "/api/v1/institution/settlements", body, \
                {**keys[n % len(keys)], "Idempotency-Key": f"{run_id}-{n}"}

        _closed_loop(port, args.clients, 2, healthz)            # warm-up: connections, workers' imports
        _closed_loop(port, args.clients, 2, settlement)
        print("A: /healthz…", flush=True)
        health = _closed_loop(port, args.clients, args.seconds, healthz)
        offset = log_path.stat().st_size
        print("B: settlements…", flush=True)
        settle = _closed_loop(port, args.clients, args.seconds, lambda n: settlement(n + 10_000_000))
        server = _server_times(log_path, offset, "/api/v1/institution/settlements")
        print(f"   healthz {health['rps']:.0f} req/s; settlements {settle['rps']:.0f} req/s, client p50 "
              f"{settle['p50']:.1f} ms p99 {settle['p99']:.1f} ms, in the app p50 {_quantile(server, 0.5):.1f} ms "
              f"p99 {_quantile(server, 0.99):.1f} ms; load {os.getloadavg()[0]:.2f}", flush=True)
        with app.app_context():
            problems = ledger.check()
            db.session.remove()
        if problems:
            raise SystemExit(f"ledger check failed: {problems[:5]}")
        usage = None
        if not args.skip_usage:
            with app.app_context():
                gen = Generator(app, kind)
                reader = gen.reader()
                small_s = gen.grow_to(args.small)
                headers = person_headers(db.session.get(Person, reader))
                db.session.remove()
            print(f"C: usage with {gen.made} records (generated in {small_s:.1f} s)…", flush=True)
            small = _usage_p95(port, headers, args.usage_requests)
            print(f"   p95 {small['p95']:.1f} ms; load {os.getloadavg()[0]:.2f}", flush=True)
            with app.app_context():
                large_s = gen.grow_to(args.large)
                db.session.remove()
            print(f"   usage with {gen.made} records (grown in {large_s:.1f} s)…", flush=True)
            large = _usage_p95(port, headers, args.usage_requests)
            usage = (small, large, args.small, args.large)
        met = _summary(kind, app.config["REDIS_URL"], args, health, settle, server, usage)
    finally:
        _stop_web(web)
        if own_redis is not None:
            from api import embedded
            embedded.stop(own_redis)
    print(f"web stopped; instance and web log kept in {tmp}")
    return 0 if met else 1


def _summary(kind, redis_url, args, health, settle, server, usage) -> bool:
    mark = {True: "ok", False: "MISSED"}
    ratio = settle["rps"] / health["rps"]
    s50, s99 = _quantile(server, 0.5), _quantile(server, 0.99)
    ok = {"ratio": ratio >= RATIO_TARGET, "p99": s99 <= P99_TARGET_MS}
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    workers, threads = os.environ.get("WEB_CONCURRENCY", "3"), os.environ.get("WEB_THREADS", "4")
    lines = [f"""
== bench-settle ==========================================================
machine        nproc={os.cpu_count()}  python {sys.version.split()[0]}  load average {load}
configuration  database: {kind}; redis: {"embedded (unix socket)" if redis_url.startswith("unix://") else "external"};
               gunicorn (Procfile web) {workers} workers x {threads} threads; {args.clients} clients, keep-alive
A /healthz     {health['requests']} in {health['seconds']:.1f} s -> {health['rps']:.0f} req/s
               (client p50 {health['p50']:.1f} ms  p99 {health['p99']:.1f} ms)
B settlements  {settle['requests']} in {settle['seconds']:.1f} s -> {settle['rps']:.0f} req/s over {args.families} families
               client (50 in a closed loop, gunicorn's queue included): p50 {settle['p50']:.1f} ms  p99 {settle['p99']:.1f} ms
               in the app (request log duration_ms, {len(server)} requests): p50 {s50:.1f} ms  p99 {s99:.1f} ms
               (target p99 <= {P99_TARGET_MS:g} ms)  {mark[ok['p99']]};  ledger check: ok
ratio          settlements/s / healthz/s = {ratio:.2f}  (target >= {RATIO_TARGET})  {mark[ok['ratio']]}"""]
    if usage:
        small, large, n_small, n_large = usage
        growth = large["p95"] / small["p95"]
        ok["usage"] = large["p95"] <= USAGE_P95_TARGET_MS
        ok["growth"] = growth <= USAGE_GROWTH_TARGET
        lines.append(f"""C GET /usage   one reader with {RECORDS_OF_READER} records, first page ({small['items']} items), {small['requests']} requests in turn:
               {n_small:>9,} records: p50 {small['p50']:.1f} ms  p95 {small['p95']:.1f} ms
               {n_large:>9,} records: p50 {large['p50']:.1f} ms  p95 {large['p95']:.1f} ms  (target <= {USAGE_P95_TARGET_MS:g} ms)  {mark[ok['usage']]}
ratio          p95 at {n_large:,} / at {n_small:,} = {growth:.2f}  (target <= {USAGE_GROWTH_TARGET:g})  {mark[ok['growth']]}""")
    lines.append("==========================================================================")
    print("\n".join(lines), flush=True)
    return all(ok.values())


if __name__ == "__main__":
    sys.exit(main())
