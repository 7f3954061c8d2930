"""`make bench-his`: 2207 门诊结算 through the HIS gateway against the native POST /institution/settlements, each
served by gunicorn as `make run` serves it (api/gunicorn_conf.py: WEB_CONCURRENCY workers × WEB_THREADS threads).

Both arms settle the same bill (a drug, a test and a 保健品 not in the catalogue: 30 元) for patients of the same
shape — a small own balance, then a parent's account through a binding, then cash — 50 patients per arm, so that
neither arm drains what the other pays from. 50 concurrent clients (threads with a kept-alive connection each) send
`--requests` settlements per arm: the gateway's visits (2201) and fee batches (2204) are uploaded beforehand and
not timed, as a HIS sends them before the counter's settlement. Reported: requests/s of each arm, their ratio
(gateway / native; target ≥ 0.8) and client-side p50/p99. Exits 1 when the ratio misses the target or an answer
fails.

Runs on a temp SQLite file unless DATABASE_URL is set (then its schema is DROPPED and rebuilt), on REDIS_URL
(`python -m api.embedded` exports the embedded server's; without it a private one is started), flushed first.
"""
from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = 50
REQUESTS = 2000
RATIO_TARGET = 0.8
KEY, CODE = "bench-key-h44010601", "H44010601"
LINES = [("XJ01CAA040E001010100391", "阿莫西林胶囊", "drug", 1500), ("250101015", "血常规", "treatment", 1000),
         ("BJP0001", "保健品", "non_medical", 500)]


def _prepare_environment() -> tuple[Path, str, object]:
    tmp = Path(tempfile.mkdtemp(prefix="gj-bench-his-"))
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


def _seed(per_arm: int) -> dict:
    from api.extensions import db
    from api.models import Binding, CatalogueItem
    from tests import factories
    from tests.his_helpers import give_signing_key
    factories.load_policies()
    for code, name, category, _ in LINES[:2]:
        db.session.add(CatalogueItem(code=code, name=name, category=category))
    hospital = factories.institution(CODE, "广州市天河区人民医院（基准）", "440106", api_key=KEY)
    give_signing_key(hospital, KEY)
    arms = {"native": [], "gateway": []}
    n = 0
    for arm in arms:
        for _ in range(per_arm):
            n += 1
            born = dt.date(1980, 1, 1) + dt.timedelta(days=n)
            patient = factories.person(f"基准患者{n}", region_code="440106", balance_fen=20000, birth=born,
                                       number=factories.id_number("440106", born, seq=1))
            parent = factories.person(f"基准父{n}", region_code="440106", balance_fen=10_000_000,
                                      birth=born - dt.timedelta(days=365 * 30),
                                      number=factories.id_number("440106", born - dt.timedelta(days=365 * 30), seq=2))
            db.session.add(Binding(authorizer_id=parent.id, beneficiary_id=patient.id, relation="child"))
            arms[arm].append((patient.id, patient.id_number, patient.card_number))
    db.session.commit()
    return arms


def _gateway_bodies(app, patients: list, count: int) -> list[tuple[str, bytes]]:
    """The 2207 messages, after each one's 2201 and 2204 (through the app in this process, untimed)."""
    from flask.testing import FlaskClient
    from tests.his_helpers import His, encode
    client = FlaskClient(app, app.response_class)
    his = His(client, CODE, KEY)
    bodies = []
    for i in range(count):
        pid, id_number, card = patients[i % len(patients)]
        psn_no = str(pid)
        mdtrt_id = his.call("2201", {"data": {"psn_no": psn_no, "insutype": "310", "mdtrt_cert_type": "03",
                                              "mdtrt_cert_no": card, "ipt_otp_no": f"MZ{i:08d}"}})["output"]["data"]["mdtrt_id"]
        batch = f"B{i:08d}"
        detail = [{"feedetl_sn": f"{n:04d}", "mdtrt_id": mdtrt_id, "psn_no": psn_no, "chrg_bchno": batch,
                   "med_list_codg": code, "medins_list_codg": code, "det_item_fee_sumamt": f"{fen / 100:.2f}",
                   "cnt": "1", "pric": f"{fen / 100:.2f}"} for n, (code, _, _, fen) in enumerate(LINES, 1)]
        answer = his.call("2204", {"feedetail": detail})
        assert answer["infcode"] == 0, answer
        data = {"psn_no": psn_no, "mdtrt_cert_type": "03", "mdtrt_cert_no": card, "med_type": "11",
                "medfee_sumamt": "30.00", "psn_setlway": "01", "mdtrt_id": mdtrt_id, "chrg_bchno": batch,
                "insutype": "310", "acct_used_flag": "1", "invono": f"INV{i:010d}"}
        bodies.append(("2207", encode(his.envelope("2207", {"data": data}))))
    return bodies


def _native_bodies(patients: list, count: int) -> list[bytes]:
    bodies = []
    for i in range(count):
        _, id_number, card = patients[i % len(patients)]
        bodies.append(json.dumps({"patient_id_number": id_number, "credential": card, "pooled_fen": 0,
                                  "items": [{"code": c, "name": n, "category": k, "amount_fen": f}
                                            for c, n, k, f in LINES]}, ensure_ascii=False).encode())
    return bodies


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_gunicorn(tmp: Path, port: int) -> subprocess.Popen:
    env = dict(os.environ, PORT=str(port))
    log = open(tmp / "gunicorn.log", "w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "gunicorn"), "--config", "api/gunicorn_conf.py",
                             "--bind", f"127.0.0.1:{port}", "api:create_app()"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit(f"gunicorn did not answer within 60 s; see {tmp / 'gunicorn.log'}")


def _run(port: int, requests: list, send) -> tuple[float, list[float], int]:
    """(wall seconds, latencies in ms, failures) of sending `requests` from CLIENTS threads."""
    lock, position, latencies, failures = threading.Lock(), [0], [], [0]
    start = threading.Barrier(CLIENTS + 1)

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        start.wait()
        while True:
            with lock:
                if position[0] >= len(requests):
                    return
                item = requests[position[0]]
                position[0] += 1
            began = time.perf_counter()
            ok = send(conn, item)
            took = (time.perf_counter() - began) * 1000
            with lock:
                latencies.append(took)
                failures[0] += not ok

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - began, latencies, failures[0]


def _send_native(conn, item) -> bool:
    key, body = item
    conn.request("POST", "/api/v1/institution/settlements", body=body,
                 headers={"Content-Type": "application/json", "X-Institution-Key": KEY, "Idempotency-Key": key})
    r = conn.getresponse()
    r.read()
    return r.status == 201


def _send_gateway(conn, item) -> bool:
    from api.his.signing import signed_headers
    infno, body = item
    conn.request("POST", "/fsi/api/rsfComIfsService/callService", body=body,
                 headers={"Content-Type": "application/json", **signed_headers(KEY, CODE, infno)})
    r = conn.getresponse()
    data = r.read()
    return r.status == 200 and data.startswith(b'{"infcode":0')


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=REQUESTS, help="settlements per arm")
    args = parser.parse_args(argv)
    tmp, kind, own_redis = _prepare_environment()
    from flask_migrate import upgrade
    from sqlalchemy import text

    from api import create_app
    from api.extensions import db, redis_client
    app = create_app()
    proc = None
    try:
        with app.app_context():
            if kind != "sqlite (temp file)":
                print(f"!! DATABASE_URL is set: DROPPING every table of {db.engine.url!r} and rebuilding it")
            db.drop_all()
            with db.engine.begin() as conn:
                conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
            upgrade()
            redis_client().flushdb()
            arms = _seed(CLIENTS)
            native = [(f"bench-{i}", body) for i, body in enumerate(_native_bodies(arms["native"], args.requests))]
            gateway = _gateway_bodies(app, arms["gateway"], args.requests)
        port = _free_port()
        proc = _start_gunicorn(tmp, port)
        print(f"bench-his: {args.requests} settlements per arm, {CLIENTS} concurrent clients, gunicorn "
              f"{os.environ.get('WEB_CONCURRENCY', '3')}×{os.environ.get('WEB_THREADS', '4')} on {kind}; "
              f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
        _run(port, native[:CLIENTS], _send_native)   # warm-up, untimed: connections, imports, caches
        native = native[CLIENTS:]
        _run(port, gateway[:CLIENTS], _send_gateway)
        gateway = gateway[CLIENTS:]
        results = {}
        for name, requests, send in (("native", native, _send_native), ("gateway", gateway, _send_gateway)):
            seconds, latencies, failed = _run(port, requests, send)
            results[name] = (len(requests) / seconds, latencies, failed)
            print(f"  {name:8} POST {'/institution/settlements' if name == 'native' else '2207 callService':26} "
                  f"{len(requests) / seconds:7.1f} req/s  p50 {_percentile(latencies, 50):6.1f} ms  "
                  f"p99 {_percentile(latencies, 99):6.1f} ms  mean {statistics.mean(latencies):6.1f} ms  "
                  f"failed {failed}", flush=True)
        load = os.getloadavg()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        if own_redis is not None:
            from api import embedded
            embedded.stop(own_redis)
    ratio = results["gateway"][0] / results["native"][0]
    print(f"  ratio gateway / native: {ratio:.2f}  (target ≥ {RATIO_TARGET})   load average after: "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    ok = ratio >= RATIO_TARGET and not results["gateway"][2] and not results["native"][2]
    print("  target met" if ok else "  TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
