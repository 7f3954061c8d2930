"""A scripted crowd of mini-program users over HTTP against a running server (F11).

    python -m clients.simulate --url http://127.0.0.1:5000 --families 5 --seconds 20 --prepare

Each family is a thread: the authorizer and his relatives log in on a channel (实名认证 the first time), he binds his
spouse with the form, his child through the chat bot, and his sibling — whom the registry does not know — with a
uploaded 户口簿, which a reviewer (a staff user of the simulator) approves; then, until the time is up, an
institution settles the relatives' bills (with their 医保电子凭证 or card), refunds some, and everyone reads usage,
bindings and the inbox; at the end the child is unbound. The summary gives the operations, errors by code, latency
p50/p99, and the ledger check: each authorizer's balance must have fallen by exactly what the settlements drew from
his account, and his usage records must say the same. Exit status 1 on any 5xx or ledger mismatch.

`--prepare` puts the families in the registry first (`flask --app api registry import` of generated CSVs, in the
environment the server runs with: same DATABASE_URL / INSTANCE_PATH) and creates the reviewer
(`flask --app api staff create`), so it must run on the server's machine; without it the people and the reviewer
must already exist (see --families-file). Only the standard library is used.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHANNELS = ["wechat", "alipay", "suishenban", "nhsa_app"]
SURNAMES = "赵钱孙李周吴郑王冯陈褚卫蒋沈韩杨朱秦尤许何吕施张孔曹严华金魏陶姜"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀英华慧巧美兰霞平刚桂英建国志红"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64)
REGION = "440106"  # 广东: registry-confirmed relations are approved automatically, proof goes to a reviewer


# --- registry of the simulated families -----------------------------------------------------------------------------

def id_number(rng: random.Random, region: str, birth: dt.date) -> str:
    """A valid GB 11643 number (checksum and birth date)."""
    body = f"{region}{birth:%Y%m%d}{rng.randrange(1000):03d}"
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    check = "10X98765432"[sum(int(c) * w for c, w in zip(body, weights)) % 11]
    return body + check


def name(rng: random.Random) -> str:
    return rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2))))


@dataclass
class Member:
    name: str
    id_number: str
    card_number: str
    role: str  # authorizer | spouse | child | sibling
    token: str | None = None


@dataclass
class Family:
    index: int
    members: dict[str, Member]
    balance_fen: int
    channel: str
    bindings: dict[str, str] = field(default_factory=dict)  # role → binding id
    drawn_fen: int = 0  # what settlements took from the authorizer's account, refunds given back
    settlements: list = field(default_factory=list)  # (settlement id, family amount drawn from this authorizer)


def make_families(n: int, seed: int) -> list[Family]:
    rng = random.Random(seed)
    families, used = [], set()
    for i in range(n):
        def person(role: str, born: dt.date) -> Member:
            while True:
                number = id_number(rng, REGION, born)
                if number not in used:
                    used.add(number)
                    return Member(name(rng), number, f"S{seed % 10**6:06d}{len(used):05d}", role)
        year = rng.randrange(1955, 1985)
        members = {"authorizer": person("authorizer", dt.date(year, rng.randrange(1, 13), rng.randrange(1, 29))),
                   "spouse": person("spouse", dt.date(year + 1, rng.randrange(1, 13), rng.randrange(1, 29))),
                   "child": person("child", dt.date(year + 28, rng.randrange(1, 13), rng.randrange(1, 29))),
                   "sibling": person("sibling", dt.date(year - 2, rng.randrange(1, 13), rng.randrange(1, 29)))}
        families.append(Family(i, members, balance_fen=rng.randrange(200_000, 800_000), channel=rng.choice(CHANNELS)))
    return families


def write_registry(families: list[Family], directory: Path) -> None:
    """persons.csv and kinship.csv in the registry contract (the sibling is left out of kinship.csv on purpose)."""
    with (directory / "persons.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id_number", "name", "insurance_type", "status", "region_code", "card_number", "phone",
                    "account_balance_fen", "account_prior_year_fen"])
        for fam in families:
            for m in fam.members.values():
                employee = m.role == "authorizer"
                w.writerow([m.id_number, m.name, "employee" if employee else "resident", "normal", REGION,
                            m.card_number, f"139{fam.index:04d}{len(m.role):04d}",
                            fam.balance_fen if employee else "", ""])
    with (directory / "kinship.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id_number_a", "id_number_b", "relation"])
        for fam in families:
            a = fam.members["authorizer"].id_number
            w.writerow([a, fam.members["spouse"].id_number, "spouse"])
            w.writerow([a, fam.members["child"].id_number, "child"])


def prepare(families: list[Family], reviewer: str, password: str) -> None:
    """The families into the registry and the reviewer into the staff table, through the operator commands."""
    flask = [sys.executable, "-m", "flask", "--app", "api"]
    with tempfile.TemporaryDirectory(prefix="gj-sim-") as tmp:
        write_registry(families, Path(tmp))
        subprocess.run(flask + ["registry", "import", tmp], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    made = subprocess.run(flask + ["staff", "create", reviewer, "--role", "reviewer"], input=password + "\n",
                          text=True, capture_output=True, cwd=ROOT)
    if made.returncode != 0 and "已存在" not in made.stderr + made.stdout:
        raise SystemExit(f"could not create the reviewer: {made.stderr or made.stdout}")


# --- HTTP ---------------------------------------------------------------------------------------------------------

class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: Counter = Counter()
        self.server_errors: list[str] = []
        self.operations = 0

    def add(self, op: str, seconds: float, status: int, code: str | None, body: str = "") -> None:
        with self.lock:
            self.operations += 1
            self.latency[op].append(seconds)
            if status >= 400:
                self.errors[f"{status} {code or '-'}"] += 1
            if status >= 500:
                self.server_errors.append(f"{op} → {status} {body[:200]}")


class ApiError(Exception):
    def __init__(self, status: int, code: str | None, body):
        super().__init__(f"{status} {code}")
        self.status, self.code, self.body = status, code, body


class Client:
    """One client's HTTP calls; every answer is timed and counted, 429s are waited out as a client should."""

    def __init__(self, base: str, stats: Stats, token: str | None = None, headers: dict | None = None):
        self.base, self.stats, self.token, self.extra = base.rstrip("/"), stats, token, headers or {}

    def call(self, method: str, path: str, body=None, op: str | None = None, headers: dict | None = None,
             raw: bytes | None = None, content_type: str | None = None):
        op = op or f"{method} {re.sub(r'/[0-9a-f]{32}', '/{id}', path.split('?')[0])}"
        for attempt in range(4):
            hdrs = {**self.extra, **(headers or {})}
            if self.token:
                hdrs["Authorization"] = f"Bearer {self.token}"
            data = raw
            if body is not None:
                data = json.dumps(body).encode()
                hdrs["Content-Type"] = "application/json"
            elif content_type:
                hdrs["Content-Type"] = content_type
            request = urllib.request.Request(self.base + path, data=data, method=method, headers=hdrs)
            started = time.perf_counter()
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    payload = response.read()
                    self.stats.add(op, time.perf_counter() - started, response.status, None)
                    kind = response.headers.get("Content-Type", "")
                    return json.loads(payload) if "json" in kind else payload
            except urllib.error.HTTPError as exc:
                text = exc.read().decode("utf-8", "replace")
                try:
                    code = json.loads(text)["error"]["code"]
                except (ValueError, KeyError, TypeError):
                    code = None
                self.stats.add(op, time.perf_counter() - started, exc.code, code, text)
                if exc.code == 429 and attempt < 3:
                    time.sleep(min(float(exc.headers.get("Retry-After") or 1), 5))
                    continue
                raise ApiError(exc.code, code, text) from None
        raise AssertionError("unreachable")


def multipart(fields: dict[str, str], filename: str, content: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                 f"Content-Type: image/png\r\n\r\n".encode() + content + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


# --- what a family does ---------------------------------------------------------------------------------------------

class Simulation:
    def __init__(self, base: str, families: list[Family], seconds: float, reviewer: tuple[str, str],
                 institution_key: str, seed: int):
        self.base, self.families, self.seconds = base, families, seconds
        self.stats = Stats()
        self.reviewer = reviewer
        self.institution = Client(base, self.stats, headers={"X-Institution-Key": institution_key})
        self.rng = random.Random(seed)
        self.done = threading.Event()
        self.failures: list[str] = []
        self.lock = threading.Lock()

    def person(self, fam: Family, role: str) -> Client:
        m = fam.members[role]
        client = Client(self.base, self.stats, m.token)
        if m.token is None:
            answer = client.call("POST", "/api/v1/auth/login", {
                "channel": fam.channel, "code": f"sim-{m.id_number}", "name": m.name, "id_number": m.id_number})
            m.token = client.token = answer["token"]
        return client

    def apply_by_form(self, me: Client, fam: Family, role: str, relation: str, proof: bool = False) -> str:
        other = fam.members[role]
        material_ids = []
        if proof:
            raw, kind = multipart({"kind": "household_register"}, "hukou.png", PNG)
            material_ids.append(me.call("POST", "/api/v1/materials", raw=raw, content_type=kind)["id"])
        answer = me.call("POST", "/api/v1/bindings/applications", {
            "beneficiary_name": other.name, "beneficiary_id_number": other.id_number, "relation": relation,
            "material_ids": material_ids, "monthly_limit_fen": 100_000}, headers={"Idempotency-Key": uuid.uuid4().hex})
        return answer["id"]

    def apply_by_bot(self, me: Client, fam: Family, role: str, relation: str) -> str:
        other = fam.members[role]
        turn = me.call("POST", "/api/v1/bot/messages", {"text": "你好"}, op="bot")
        turn = me.call("POST", "/api/v1/bot/messages", {"option": "family_binding"}, op="bot")
        for _ in range(12):
            step = turn["dialog"]["step"]
            values = {o["value"] for r in turn["replies"] for o in r["options"]}
            if turn["dialog"]["intent"] is None:
                break
            message = {"relation": {"option": relation}, "name": {"text": other.name},
                       "id_number": {"text": other.id_number},
                       "proof": {"option": "skip" if "skip" in values else "next"},
                       "limit": {"text": "500"}, "summary": {"option": "confirm"}}.get(step)
            if message is None:
                raise AssertionError(f"the bot asked an unexpected step {step!r}: {turn['replies']}")
            turn = me.call("POST", "/api/v1/bot/messages", message, op="bot")
        items = me.call("GET", "/api/v1/bindings/applications?limit=20")["items"]
        mine = [a for a in items if a["relation"] == relation and a["role"] == "authorizer"]
        if not mine:
            raise AssertionError("the bot's application is not in the list")
        return mine[0]["id"]

    def wait_for(self, me: Client, application_id: str, deadline: float) -> dict:
        while time.monotonic() < deadline:
            app = me.call("GET", f"/api/v1/bindings/applications/{application_id}")
            if app["status"] in ("approved", "rejected", "expired", "withdrawn"):
                return app
            time.sleep(0.3)
        raise AssertionError(f"application {application_id} was not decided in time")

    def settle(self, fam: Family, role: str) -> None:
        patient = fam.members[role]
        if self.rng.random() < 0.5:  # the 医保电子凭证 of the patient's own phone, or his card
            credential = self.person(fam, role).call("GET", "/api/v1/me/voucher")["code"]
        else:
            credential = patient.card_number
        amount = self.rng.randrange(2_000, 30_000)
        bill = {"patient_id_number": patient.id_number, "credential": credential,
                "pooled_fen": self.rng.randrange(0, amount // 3),
                "items": [{"code": "XA01", "name": "阿莫西林胶囊", "category": "drug", "amount_fen": amount}]}
        if self.rng.random() < 0.3:
            self.institution.call("POST", "/api/v1/institution/settlements/quote", bill)
        answer = self.institution.call("POST", "/api/v1/institution/settlements", bill,
                                       headers={"Idempotency-Key": uuid.uuid4().hex})
        drawn = sum(f["amount_fen"] for f in answer["family"])
        with self.lock:
            fam.drawn_fen += drawn
            fam.settlements.append((answer["id"], drawn))
        if drawn and self.rng.random() < 0.15:
            self.institution.call("POST", f"/api/v1/institution/settlements/{answer['id']}/refund", {})
            with self.lock:
                fam.drawn_fen -= drawn

    def family(self, fam: Family) -> None:
        try:
            me = self.person(fam, "authorizer")
            for role in ("spouse", "child", "sibling"):
                self.person(fam, role)
            me.call("GET", "/api/v1/services")
            me.call("GET", "/api/v1/policy")
            apps = {"spouse": self.apply_by_form(me, fam, "spouse", "spouse"),
                    "child": self.apply_by_bot(me, fam, "child", "child"),
                    "sibling": self.apply_by_form(me, fam, "sibling", "sibling", proof=True)}
            deadline = time.monotonic() + max(60.0, self.seconds)
            for role, application_id in apps.items():
                app = self.wait_for(me, application_id, deadline)
                if app["status"] != "approved":
                    raise AssertionError(f"{role}: {app['status']} {app['reason_code']}")
                fam.bindings[role] = app["binding_id"]
            while not self.done.is_set():
                role = self.rng.choice(["spouse", "child", "sibling"])
                action = self.rng.random()
                if action < 0.5:
                    self.settle(fam, role)
                elif action < 0.7:
                    me.call("GET", "/api/v1/usage?limit=50")
                elif action < 0.8:
                    self.person(fam, role).call("GET", "/api/v1/bindings")
                elif action < 0.9:
                    self.person(fam, role).call("GET", "/api/v1/notifications?limit=20")
                else:
                    me.call("GET", f"/api/v1/bindings/{fam.bindings[role]}/usage")
            self.person(fam, "child").call("POST", f"/api/v1/bindings/{fam.bindings['child']}/revoke",
                                           {"reason": "模拟：家人自行解除"})
            me.call("GET", "/api/v1/bindings")
        except Exception as exc:  # noqa: BLE001  (one family's failure is reported, the others go on)
            with self.lock:
                self.failures.append(f"family {fam.index}: {type(exc).__name__}: {exc}")

    def review_desk(self) -> None:
        """The reviewer approves the sibling applications (their 户口簿 read first) as they arrive."""
        staff = Client(self.base, self.stats)
        try:
            staff.token = staff.call("POST", "/api/v1/staff/login", {"username": self.reviewer[0],
                                                                     "password": self.reviewer[1]})["token"]
            ours = {m.id_number[-4:] for fam in self.families for m in fam.members.values()}
            while not self.done.is_set():
                queue = staff.call("GET", "/api/v1/staff/reviews?limit=50")["items"]
                for item in queue:
                    if item["beneficiary"]["id_number"][-4:] not in ours:
                        continue
                    for material in item["materials"]:
                        staff.call("GET", f"/api/v1/staff/materials/{material['id']}")
                    try:
                        staff.call("POST", f"/api/v1/staff/reviews/{item['id']}/decision",
                                   {"decision": "approve", "reason": "户口簿显示为兄弟姐妹"})
                    except ApiError as exc:
                        if exc.status != 409:
                            raise
                time.sleep(0.3)
        except Exception as exc:  # noqa: BLE001
            with self.lock:
                self.failures.append(f"reviewer: {type(exc).__name__}: {exc}")

    def ledger_check(self) -> list[str]:
        """Each authorizer's balance fell by exactly what settlements drew from it (refunds given back), and his
        usage records (unrefunded, as authorizer) add up to the same."""
        problems = []
        for fam in self.families:
            a = fam.members["authorizer"]
            if a.token is None:
                continue
            me = Client(self.base, self.stats, a.token)
            balance = me.call("GET", "/api/v1/me")["account"]["balance_fen"]
            used, cursor = 0, None
            while True:
                page = me.call("GET", "/api/v1/usage?limit=100" + (f"&cursor={cursor}" if cursor else ""))
                used += sum(r["amount_fen"] for r in page["items"] if r["role"] == "authorizer" and not r["refunded"])
                if not (cursor := page["next_cursor"]):
                    break
            if balance != fam.balance_fen - fam.drawn_fen or used != fam.drawn_fen:
                problems.append(f"family {fam.index}: balance {balance}, expected {fam.balance_fen - fam.drawn_fen}"
                                f" ({fam.balance_fen} − {fam.drawn_fen} drawn); usage records say {used}")
        return problems

    def run(self) -> int:
        started = time.monotonic()
        threads = [threading.Thread(target=self.family, args=(f,), daemon=True) for f in self.families]
        desk = threading.Thread(target=self.review_desk, daemon=True)
        desk.start()
        for t in threads:
            t.start()
        time.sleep(self.seconds)
        self.done.set()
        for t in threads:
            t.join(120)
        desk.join(30)
        ledger = self.ledger_check()
        return self.report(time.monotonic() - started, ledger)

    def report(self, elapsed: float, ledger: list[str]) -> int:
        all_latency = sorted(x for xs in self.stats.latency.values() for x in xs)

        def pct(values, p):
            return 1000 * values[min(len(values) - 1, int(p * len(values)))] if values else 0.0

        settled = sum(len(f.settlements) for f in self.families)
        print(f"simulated families: {len(self.families)}, {elapsed:.1f} s, {self.stats.operations} operations "
              f"({self.stats.operations / max(elapsed, 0.001):.1f}/s), {settled} settlements")
        print(f"latency: p50 {pct(all_latency, 0.5):.1f} ms, p99 {pct(all_latency, 0.99):.1f} ms")
        print(f"{'operation':48} {'count':>6} {'p50 ms':>8} {'p99 ms':>8}")
        for op, values in sorted(self.stats.latency.items()):
            values = sorted(values)
            print(f"{op[:48]:48} {len(values):6d} {pct(values, 0.5):8.1f} {pct(values, 0.99):8.1f}")
        print("errors by code: " + (", ".join(f"{k} ×{v}" for k, v in sorted(self.stats.errors.items())) or "none"))
        for line in self.stats.server_errors[:20]:
            print("  5xx:", line)
        for line in self.failures:
            print("  failed:", line)
        print("ledger check: " + ("ok" if not ledger else "MISMATCH"))
        for line in ledger:
            print("  ", line)
        if self.stats.server_errors or ledger or self.failures:
            return 1
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A scripted crowd of mini-program users against a running server.")
    parser.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('PORT', '5000')}")
    parser.add_argument("--families", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--seed", type=int, default=None, help="for the same people again (default: a new run)")
    parser.add_argument("--prepare", action="store_true",
                        help="import the families into the registry and create the reviewer first (same machine)")
    parser.add_argument("--reviewer", default="sim-reviewer", help="the reviewer's username (password: --password)")
    parser.add_argument("--password", default=os.environ.get("SIM_REVIEWER_PASSWORD", "sim-reviewer-password"))
    parser.add_argument("--institution-key", default="demo-key-p44010601",
                        help="X-Institution-Key of a designated institution in 44 (the demo's pharmacy)")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else int(time.time() * 1000) % 10**9
    families = make_families(args.families, seed)
    if args.prepare:
        prepare(families, args.reviewer, args.password)
    simulation = Simulation(args.url, families, args.seconds, (args.reviewer, args.password), args.institution_key,
                            seed)
    return simulation.run()


if __name__ == "__main__":
    sys.exit(main())
