"""`make bench-review`: throughput and latency of the review pipeline with the Procfile's workers on a fresh database.

A. Queue baseline: N empty jobs (`workers.jobs.noop`) are queued on `reviews` while the workers are suspended
   (`rq suspend`), then drained: empty jobs/s, from the first job's start to the last one's end.
B. Review throughput: N applications, each of whose beneficiary the kinship registry confirms, are submitted
   through the real service while the workers are suspended, then drained: reviews/s, from the first review job's
   start until every one is approved and all its notices are sent. Same workers, same queue, same count as A,
   so that the ratio B/A is the review's cost against the queue's own.
C. Latency: N more applications submitted while the workers run: p50/p99 from submit to the last notice sent.
Targets: reviews/s at least half the empty-job rate, and p50 submit → notification sent at most 1 s.

Runs on a temp SQLite file unless DATABASE_URL is set (then its schema is DROPPED and rebuilt), on REDIS_URL
(`python -m api.embedded` exports the embedded server's; without it a private one is started), whose Redis
database is flushed first. Exits 1 when a target is missed. `--pairs N` runs a smaller set, `--rate R` paces the
submits of C.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stdnum.cn import ric

ROOT = Path(__file__).resolve().parents[2]
PAIRS = 2000
RATIO_TARGET = 0.5
P50_TARGET_SECONDS = 1.0
# The two worker processes of the Procfile (`make run`); the clock only re-enqueues what was lost.
WORKER_ENTRIES = ("worker", "notifier")
REGIONS = ("440106", "440104", "440111", "440304")


def _prepare_environment() -> tuple[Path, str, subprocess.Popen | None]:
    """Points the app at a fresh instance before it is imported; returns (temp dir, database kind, own Redis)."""
    tmp = Path(tempfile.mkdtemp(prefix="gj-bench-review-"))
    os.environ["INSTANCE_PATH"] = str(tmp / "instance")
    os.environ.setdefault("SECRET_KEY", "bench-secret-key")
    if os.environ.get("DATABASE_URL"):
        kind = "postgresql" if os.environ["DATABASE_URL"].startswith("postgres") else "external"
    else:
        os.environ["DATABASE_URL"] = f"sqlite:///{tmp / 'bench.db'}"
        kind = "sqlite (temp file)"
    own_redis = None
    if not os.environ.get("REDIS_URL"):  # run without `python -m api.embedded`: start a private embedded server
        from api import embedded
        sock = tmp / "redis.sock"
        own_redis = embedded.start(sock, tmp / "redis", persist=False)
        os.environ["REDIS_URL"] = f"unix://{sock}"
    return tmp, kind, own_redis


def _banner(text: str) -> None:
    line = "!" * 78
    print(f"\n{line}\n!! {text}\n{line}\n", flush=True)


def _fresh_schema(app, kind: str) -> None:
    from flask_migrate import upgrade
    from sqlalchemy import text

    from api.extensions import db, redis_client
    with app.app_context():
        redis_client().ping()
        if kind != "sqlite (temp file)":
            url = db.engine.url.render_as_string(hide_password=True)
            _banner(f"DATABASE_URL is set: DROPPING every table of {url} and rebuilding it")
        db.drop_all()
        with db.engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        upgrade()
        keys = redis_client().dbsize()
        if keys:
            _banner(f"flushing Redis {app.config['REDIS_URL']} ({keys} keys) so that only this run's jobs are queued")
        redis_client().flushdb()


def _id_number(region: str, birth: dt.date, order: int) -> str:
    body = f"{region}{birth:%Y%m%d}{order:03d}"
    return body + ric.calc_check_digit(body + "0")  # stdnum expects the check position present


def _seed(pairs: int) -> list[dict]:
    """`pairs` employee authorizers (funded through the ledger) with a resident child each, in the kinship registry.
    The authorizers logged in with the WeChat mini-program, so their notices go out as WeChat subscribe messages;
    the children, who never logged in, are told by SMS.

    Returns the submit payloads, one per authorizer.
    """
    from sqlalchemy import insert

    from api.extensions import db
    from api.models import ChannelAccount, Kinship, Person
    from tests import factories

    factories.load_policies()
    payloads, children, kin = [], [], []
    for i in range(pairs):
        region = REGIONS[i % len(REGIONS)]
        parent_number = _id_number(region, dt.date(1960, 1, 1) + dt.timedelta(days=i), 11)
        child_number = _id_number(region, dt.date(1990, 1, 1) + dt.timedelta(days=i), 22)
        # the money goes through the ledger (a registry_load transaction per authorizer)
        parent = factories.person(name=f"基准父{i}", region_code=region, balance_fen=300_000 + i,
                                  number=parent_number, phone=f"139{i:08d}")
        children.append({"id_number": child_number, "name": f"基准子{i}", "insurance_type": "resident",
                         "status": "normal", "region_code": region, "card_number": "C" + child_number[-10:],
                         "phone": f"138{i:08d}"})
        kin.append({"id_number_a": parent_number, "id_number_b": child_number, "relation": "child"})
        payloads.append({"authorizer_id": parent.id, "beneficiary_id_number": child_number,
                         "beneficiary_name": f"基准子{i}", "relation": "child"})
    # residents have no personal account, so a bulk insert bypasses nothing of the ledger
    now = dt.datetime.now(dt.timezone.utc)
    db.session.execute(insert(Person), [dict(c, created_at=now, updated_at=now) for c in children])
    db.session.execute(insert(Kinship), kin)
    db.session.execute(insert(ChannelAccount), [{"channel": "wechat", "openid": f"bench-openid-{p['authorizer_id']}",
                                                 "person_id": p["authorizer_id"], "created_at": now,
                                                 "last_login_at": now} for p in payloads])
    db.session.commit()
    return payloads


def _flask_command(entry: str) -> list[str]:
    """The Procfile's command for `entry`, with `flask` taken from this interpreter's environment."""
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == entry:
            argv = shlex.split(command)
            if argv[0] == "flask":
                local = Path(sys.executable).parent / "flask"
                argv[0] = str(local) if local.exists() else "flask"
            return argv
    raise SystemExit(f"Procfile has no `{entry}` process")


def _start_workers(tmp: Path) -> tuple[list[subprocess.Popen], Path]:
    log_path = tmp / "workers.log"
    log = open(log_path, "ab")
    procs = []
    for entry in WORKER_ENTRIES:
        argv = _flask_command(entry)
        print(f"  starting {entry}: {shlex.join(argv)}", flush=True)
        # own session: a Ctrl-C reaches the bench, which then stops them warmly
        procs.append(subprocess.Popen(argv, cwd=ROOT, env=dict(os.environ), stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True))
    return procs, log_path


def _wait_registered(procs: list[subprocess.Popen], log_path: Path, timeout: float = 60) -> None:
    from rq import Worker

    from api.extensions import redis_client
    pids = {p.pid for p in procs}
    deadline = time.monotonic() + timeout
    while True:
        registered = {w.pid for w in Worker.all(connection=redis_client())} & pids
        if registered == pids:
            return
        dead = [p for p in procs if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            raise SystemExit(f"the workers did not register in Redis; see {log_path}:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.05)


def _stop_workers(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)  # RQ's warm shutdown: the current job finishes
    for p in procs:
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


def _job_times(job_ids: list[str]) -> list[tuple[dt.datetime, dt.datetime, dt.datetime]]:
    """(enqueued, started, ended) of each finished job still in Redis."""
    from rq.job import Job
    from rq.serializers import JSONSerializer

    from api.extensions import redis_client
    times = []
    for start in range(0, len(job_ids), 500):
        for job in Job.fetch_many(job_ids[start:start + 500], connection=redis_client(), serializer=JSONSerializer):
            if job is not None and job.ended_at and job.started_at and job.enqueued_at:
                times.append((_utc(job.enqueued_at), _utc(job.started_at), _utc(job.ended_at)))
    return times


def _suspend_workers(procs: list[subprocess.Popen]) -> None:
    """`rq suspend`, and waits until each worker has seen it: a worker blocked on an empty queue first takes one
    wake-up job, then finds the suspension before its next dequeue."""
    from rq import Worker
    from rq.suspension import suspend

    from api.extensions import redis_client
    from workers.queues import REVIEWS, queue
    suspend(redis_client())
    for _ in procs:
        queue(REVIEWS).enqueue("workers.jobs.noop", None, result_ttl=1)
    pids = {p.pid for p in procs}
    deadline = time.monotonic() + 30
    while {w.pid for w in Worker.all(connection=redis_client()) if w.get_state() == "suspended"} & pids != pids:
        if time.monotonic() > deadline:
            raise SystemExit("the workers did not take the suspension")
        time.sleep(0.05)


def _resume_workers() -> None:
    from rq.suspension import resume

    from api.extensions import redis_client
    resume(redis_client())


def _phase_a(count: int, timeout: float, procs: list[subprocess.Popen]) -> dict:
    """`count` empty jobs queued while the workers are suspended, then drained: first job start → last job end."""
    from workers.queues import REVIEWS, queue
    q = queue(REVIEWS)
    _suspend_workers(procs)
    jobs = [q.enqueue("workers.jobs.noop", i, result_ttl=600) for i in range(count)]
    _resume_workers()
    registry = q.finished_job_registry
    deadline = time.monotonic() + timeout
    while sum(1 for t in _job_times([j.id for j in jobs[-20:]])) < 20 or registry.count < count:
        if q.failed_job_registry.count:
            raise SystemExit(f"{q.failed_job_registry.count} empty jobs failed")
        if time.monotonic() > deadline:
            raise SystemExit(f"only {registry.count} of {count} empty jobs finished in {timeout:.0f} s")
        time.sleep(0.05)
    times = _job_times([j.id for j in jobs])
    if len(times) != count:
        raise SystemExit("could not read back the empty jobs' times")
    seconds = (max(t[2] for t in times) - min(t[1] for t in times)).total_seconds()
    return {"jobs": count, "seconds": seconds, "per_second": count / seconds,
            "exec_ms": statistics.median((t[2] - t[1]).total_seconds() * 1000 for t in times)}


def _submit(payloads: list[dict], rate: float | None) -> tuple[dict[str, dt.datetime], dict]:
    """Submits every payload through the service, as a web request does (load the caller, call, end the session),
    at `rate` per second or as fast as it goes."""
    from api.extensions import db
    from api.models import Person
    from api.services import applications
    submitted_at: dict[str, dt.datetime] = {}
    call_ms = []
    t0 = time.monotonic()
    for n, payload in enumerate(payloads):
        if rate and (ahead := t0 + n / rate - time.monotonic()) > 0:
            time.sleep(ahead)
        at = dt.datetime.now(dt.timezone.utc)
        app = applications.submit(db.session.get(Person, payload["authorizer_id"]), payload, channel="wechat")
        submitted_at[app.id] = at
        db.session.remove()
        call_ms.append((dt.datetime.now(dt.timezone.utc) - at).total_seconds() * 1000)
    seconds = time.monotonic() - t0
    return submitted_at, {"submit_seconds": seconds, "submit_per_second": len(payloads) / seconds,
                          "submit_call_ms": statistics.median(call_ms)}


def _wait_done(ids: list[str], timeout: float) -> dict:
    """Waits until every application is approved and every notice of theirs sent; returns their times."""
    from sqlalchemy import func, select

    from api.extensions import db
    from api.models import Application, Notification
    deadline = time.monotonic() + timeout
    while True:
        chunked = [ids[i:i + 500] for i in range(0, len(ids), 500)]
        counts: dict[str, int] = {}
        unsent = 0
        for chunk in chunked:
            for status, n in db.session.execute(select(Application.status, func.count())
                                                .where(Application.id.in_(chunk)).group_by(Application.status)):
                counts[status] = counts.get(status, 0) + n
            unsent += db.session.scalar(select(func.count()).select_from(Notification).where(
                Notification.application_id.in_(chunk), Notification.delivery_status != "sent"))
        db.session.rollback()
        if counts.get("approved", 0) == len(ids) and unsent == 0:
            break
        stuck = {s: n for s, n in counts.items() if s in ("rejected", "manual_review", "expired", "withdrawn")}
        if stuck:
            raise SystemExit(f"applications that were not approved: {stuck}")
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s: applications {counts}, notifications not sent {unsent}")
        time.sleep(0.1)
    rows = {}
    for chunk in [ids[i:i + 500] for i in range(0, len(ids), 500)]:
        decided = dict(db.session.execute(select(Application.id, Application.decided_at)
                                          .where(Application.id.in_(chunk))).all())
        sent = db.session.execute(select(Notification.application_id, func.max(Notification.sent_at), func.count())
                                  .where(Notification.application_id.in_(chunk))
                                  .group_by(Notification.application_id)).all()
        for app_id, last_sent, n in sent:
            rows[app_id] = (_utc(decided[app_id]), _utc(last_sent), n)
    db.session.rollback()
    return rows


def _phase_b(payloads: list[dict], timeout: float, procs: list[subprocess.Popen]) -> dict:
    """Review throughput: the applications are submitted while the workers are suspended, then drained; from the
    first review job's start to the end of the last review job or notice, whichever is later."""
    _suspend_workers(procs)
    submitted_at, submit = _submit(payloads, None)
    _resume_workers()
    ids = list(submitted_at)
    done = _wait_done(ids, timeout)
    reviews = _job_times([f"review-{i}" for i in ids])  # those a batch took over were dropped from the queue
    if not reviews:
        raise SystemExit("read back no review job")
    started = min(s for _, s, _ in reviews)
    ended = max(max(e for _, _, e in reviews), max(last for _, last, _ in done.values()))
    seconds = (ended - started).total_seconds()
    return {"applications": len(ids), "seconds": seconds, "per_second": len(ids) / seconds, **submit,
            "notifications_per_application": sorted({n for _, _, n in done.values()}), "review_jobs": len(reviews),
            "review_exec_ms": _quantile(sorted((e - s).total_seconds() * 1000 for _, s, e in reviews), 0.5)}


def _phase_c(payloads: list[dict], timeout: float, rate: float | None) -> dict:
    """Latency: the applications are submitted while the workers run (as fast as the service takes them, or at
    `rate`); from each submit to the last notice of its application sent."""
    first = dt.datetime.now(dt.timezone.utc)
    submitted_at, submit = _submit(payloads, rate)
    ids = list(submitted_at)
    done = _wait_done(ids, timeout)
    latencies = sorted((done[i][1] - submitted_at[i]).total_seconds() for i in ids)
    seconds = (max(d for d, _, _ in done.values()) - first).total_seconds()
    return {"applications": len(ids), "seconds": seconds, "per_second": len(ids) / seconds, **submit,
            "p50": _quantile(latencies, 0.50), "p90": _quantile(latencies, 0.90), "p99": _quantile(latencies, 0.99),
            "max": latencies[-1]}


def _quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile of sorted values."""
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, int(round(q * len(values) + 0.5)) - 1))]


def _summary(kind: str, redis_url: str, a: dict, b: dict, c: dict, rate: float | None) -> bool:
    ratio = b["per_second"] / a["per_second"]
    ok_ratio, ok_p50 = ratio >= RATIO_TARGET, c["p50"] <= P50_TARGET_SECONDS
    mark = {True: "ok", False: "MISSED"}
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())  # other work on the machine skews every figure
    redis_kind = "embedded (unix socket)" if redis_url.startswith("unix://") else "external"
    print(f"""
== bench-review ==========================================================
machine        nproc={os.cpu_count()}  python {sys.version.split()[0]}  load average {load}
configuration  database: {kind}; redis: {redis_kind}; workers: {len(WORKER_ENTRIES)} processes
               ({', '.join(WORKER_ENTRIES)} of the Procfile, one job at a time each)
A empty jobs   {a['jobs']} queued while the workers were suspended, then drained:
               {a['seconds']:.2f} s -> {a['per_second']:.1f} empty jobs/s  (median job run {a['exec_ms']:.1f} ms)
B reviews      {b['applications']} applications submitted while the workers were suspended
               ({b['submit_per_second']:.1f} submits/s), then drained: {b['seconds']:.2f} s
               -> {b['per_second']:.1f} reviews/s  ({b['review_jobs']} review jobs ran, the others' applications
               taken by their batches; median job {b['review_exec_ms']:.1f} ms; notifications per application
               {b['notifications_per_application']}, all sent)
ratio          reviews/s / empty jobs/s = {ratio:.2f}   (target >= {RATIO_TARGET})  {mark[ok_ratio]}
C latency      {c['applications']} more applications submitted {f"at {rate:g}/s" if rate else "as fast as possible"} while the
               workers run ({c['submit_per_second']:.1f} submits/s, median submit call {c['submit_call_ms']:.1f} ms);
               first submit -> last approval {c['seconds']:.2f} s = {c['per_second']:.1f} applications/s end to end
               submit -> last notification sent: p50 {c['p50']:.3f} s  p90 {c['p90']:.3f} s  p99 {c['p99']:.3f} s
               max {c['max']:.3f} s   (target p50 <= {P50_TARGET_SECONDS} s)  {mark[ok_p50]}
==========================================================================""", flush=True)
    return ok_ratio and ok_p50


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=PAIRS, help="applications (and empty jobs) to run")
    parser.add_argument("--rate", type=float, default=None,
                        help="submits per second in C (default: as fast as possible)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds to wait for each phase")
    args = parser.parse_args(argv)

    tmp, kind, own_redis = _prepare_environment()
    from api import create_app
    from api.extensions import db
    app = create_app()
    procs: list[subprocess.Popen] = []
    try:
        _fresh_schema(app, kind)
        with app.app_context():
            t0 = time.monotonic()
            payloads = _seed(2 * args.pairs)
            print(f"seeded {len(payloads)} authorizer/beneficiary pairs (half for B, half for C) with kinship records "
                  f"in {time.monotonic() - t0:.1f} s ({kind})", flush=True)
            db.session.remove()  # the workers start with no transaction of ours open
            procs, log_path = _start_workers(tmp)
            _wait_registered(procs, log_path)
            print("workers registered; A: empty jobs…", flush=True)
            a = _phase_a(args.pairs, args.timeout, procs)
            print("B: review throughput…", flush=True)
            b = _phase_b(payloads[:args.pairs], args.timeout, procs)
            print("C: latency…", flush=True)
            c = _phase_c(payloads[args.pairs:], args.timeout, args.rate)
            met = _summary(kind, app.config["REDIS_URL"], a, b, c, args.rate)
    finally:
        _stop_workers(procs)
        if own_redis is not None:
            from api import embedded
            embedded.stop(own_redis)
    print(f"workers stopped; instance and worker log kept in {tmp}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
