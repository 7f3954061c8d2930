"""`make bench-bot`: the server-side time of one bot turn through POST /api/v1/bot/messages, and of /healthz in
the same run for scale.

10,000 turns (`--turns`) of scripted conversations — greeting, the binding wizard to its summary (submitted the
first time, cancelled after), 进度, 所需材料, 办理条件, 记录, 解绑, 亲情账户 — by 50 people in turn, each turn followed by
one GET /healthz. Each request is timed around the WSGI call in this process (the app's whole handling: token,
database, Redis lock and state, JSON; no network). Targets: p50 ≤ 3 ms, p99 ≤ 10 ms per turn; exits 1 when missed.

Runs on a temp SQLite file unless DATABASE_URL is set (then its schema is DROPPED and rebuilt), on REDIS_URL
(`python -m api.embedded` exports the embedded server's; without it a private one is started), flushed first.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

TURNS = 10_000
PEOPLE = 50
P50_TARGET_MS, P99_TARGET_MS = 3.0, 10.0


def _prepare_environment() -> tuple[Path, str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="gj-bench-bot-"))
    os.environ["INSTANCE_PATH"] = str(tmp / "instance")
    os.environ.setdefault("SECRET_KEY", "bench-secret-key")
    os.environ.setdefault("LOG_LEVEL", "WARNING")  # one log line per request would be measured too
    if os.environ.get("DATABASE_URL"):
        kind = "postgresql" if os.environ["DATABASE_URL"].startswith("postgres") else "external"
    else:
        os.environ["DATABASE_URL"] = f"sqlite:///{tmp / 'bench.db'}"
        kind = "sqlite (temp file)"
    own_redis = None
    if not os.environ.get("REDIS_URL"):
        from api import embedded
        sock = tmp / "redis.sock"
        own_redis = embedded.start(sock, tmp / "redis", persist=False)
        os.environ["REDIS_URL"] = f"unix://{sock}"
    return tmp, kind, own_redis


def _script(mum_name: str, mum_number: str, first: bool) -> list[dict]:
    texts = ["你好", "1", "妈妈", mum_name, mum_number, "跳过", "200元"]
    ending = [{"option": "confirm"}] if first else [{"text": "取消"}]
    tail = ["进度", "所需材料", "条件", "记录", "解绑", "亲情账户", "菜单"]
    return [{"text": t} for t in texts] + ending + [{"text": t} for t in tail]


_CHARS = "甲乙丙丁戊己庚辛壬癸"


def _seed(people: int) -> list[tuple]:
    from api.extensions import db
    from tests import factories
    factories.load_policies()
    family = []
    for i in range(people):
        tag = _CHARS[i // 10 % 10] + _CHARS[i % 10]  # names hold no digits
        me = factories.person(f"基准{tag}", region_code="440106", birth=dt.date(1970, 1, 1) + dt.timedelta(days=i),
                              number=factories.id_number("440106", dt.date(1970, 1, 1) + dt.timedelta(days=i), seq=1))
        mum = factories.person(f"基准母{tag}", insurance_type="resident", balance_fen=None, male=False,
                               region_code="440106",
                               number=factories.id_number("440106", dt.date(1945, 1, 1) + dt.timedelta(days=i),
                                                          male=False, seq=2))
        factories.kinship(me, mum, "parent")
        family.append((me.id, mum.name, mum.id_number))
    db.session.commit()
    return family


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=TURNS)
    args = parser.parse_args(argv)
    tmp, kind, own_redis = _prepare_environment()
    from flask.testing import FlaskClient
    from flask_migrate import upgrade

    from api import create_app
    from api.auth import issue_token
    from api.extensions import db, redis_client
    app = create_app()
    try:
        with app.app_context():
            if kind != "sqlite (temp file)":
                print(f"!! DATABASE_URL is set: DROPPING every table of {db.engine.url!r} and rebuilding it")
            db.drop_all()
            upgrade()
            redis_client().flushdb()
            family = _seed(PEOPLE)
            headers = {pid: {"Authorization": "Bearer " + issue_token("person", pid, ch="wechat")[0]}
                       for pid, _, _ in family}
        client = FlaskClient(app, app.response_class)
        scripts = {pid: _script(name, number, True) for pid, name, number in family}
        position = {pid: 0 for pid, _, _ in family}
        rounds = {pid: 0 for pid, _, _ in family}
        turn_ms, health_ms, statuses = [], [], {}
        print(f"bench-bot: {args.turns} turns by {PEOPLE} people on {kind}, Redis {os.environ['REDIS_URL']}",
              flush=True)
        for n in range(args.turns):
            pid, name, number = family[n % len(family)]
            if position[pid] >= len(scripts[pid]):
                rounds[pid] += 1
                scripts[pid], position[pid] = _script(name, number, False), 0
            body = scripts[pid][position[pid]]
            position[pid] += 1
            started = time.perf_counter()
            r = client.post("/api/v1/bot/messages", json=body, headers=headers[pid])
            turn_ms.append((time.perf_counter() - started) * 1000)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
            started = time.perf_counter()
            client.get("/healthz")
            health_ms.append((time.perf_counter() - started) * 1000)
        with app.app_context():
            from api.models import Application
            submitted = db.session.query(Application).count()
    finally:
        if own_redis is not None:
            from api import embedded
            embedded.stop(own_redis)
    p50, p99 = _percentile(turn_ms, 50), _percentile(turn_ms, 99)
    print(f"  answers: {statuses}; applications submitted through the bot: {submitted}")
    print(f"  POST /bot/messages  p50 {p50:.2f} ms  p99 {p99:.2f} ms  mean {statistics.mean(turn_ms):.2f} ms  "
          f"max {max(turn_ms):.1f} ms   (target p50 ≤ {P50_TARGET_MS:g} ms, p99 ≤ {P99_TARGET_MS:g} ms)")
    print(f"  GET /healthz        p50 {_percentile(health_ms, 50):.2f} ms  p99 {_percentile(health_ms, 99):.2f} ms")
    ok = statuses.get(200, 0) == args.turns and p50 <= P50_TARGET_MS and p99 <= P99_TARGET_MS
    print("  targets met" if ok else "  TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
