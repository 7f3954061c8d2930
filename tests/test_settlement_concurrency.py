"""64 settlements racing against one authorizer's account while he revokes one binding and re-limits another.

One authorizer, four beneficiaries (his wife, two children, his father), one binding each. Several beneficiaries,
not one: a single beneficiary's settlements already take turns on his own row, so only settlements of *different*
patients show whether the authorizer's account, his bindings and their monthly use are guarded by what they
share (his row, the bindings' rows). The beneficiaries have no account of their own, so every fen they are paid
comes from his; his balance has room for 26 of the 64 bills.

The commit order is observed exactly: every commit of a unit of work in this process goes through one lock (held
around the COMMIT only, not around the settlement's work) and gets a sequence number there. Replaying the
settlements, the revocation and the new limit in that order then checks each payment against the state in force
when it was committed — a payment through a binding committed after its revocation, or beyond the month's limit
then in force, is found whichever thread happened to be scheduled when.
"""
import datetime as dt
import itertools
import threading

from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api import ledger
from api.extensions import db
from api.models import Binding, FamilyPayment, LedgerAccount, Settlement
from api.services import tx
from tests import factories
from tests.lifecycle_helpers import person_headers

URL = "/api/v1/institution/settlements"
SETTLERS = 64
BILL_FEN = 3000
START_BALANCE = 80_000                   # room for 26 bills of 3,000 out of 64
REVOKE_AFTER, RELIMIT_AFTER = 12, 20     # settlement commits before the authorizer acts (mid-race)
LATE = 8                                 # the last settlers are sent once both changes have answered
OLD_LIMIT, NEW_LIMIT = 60_000, 10_000    # the re-limited binding: lowered to about what it has paid by then


class CommitLog:
    """Numbers the commits of units of work (the services' write transactions) in the order they happen."""

    def __init__(self):
        self.lock = threading.Lock()
        self.seq = itertools.count(1)
        self.local = threading.local()
        self.by_label: dict[str, list[int]] = {}
        self.settled = 0
        self.settled_event = {REVOKE_AFTER: threading.Event(), RELIMIT_AFTER: threading.Event()}

    def install(self, monkeypatch):
        original = Session.commit
        log = self

        def commit(session):
            if session.info.get(tx._KEY) is None:  # a read transaction ending: no money, no binding moved
                return original(session)
            with log.lock:
                original(session)  # raises: no commit, no number
                n = next(log.seq)
                label = getattr(log.local, "label", "?")
                log.by_label.setdefault(label, []).append(n)
                if label.startswith("settle"):
                    log.settled += 1
                    if log.settled in log.settled_event:
                        log.settled_event[log.settled].set()
        monkeypatch.setattr(Session, "commit", commit)

    def commit_of(self, label: str) -> int | None:
        found = self.by_label.get(label, [])
        assert len(found) <= 1, (label, found)
        return found[0] if found else None


def test_settlements_racing_a_revocation_and_a_new_limit_on_one_authorizers_account(clean_app, monkeypatch):
    factories.load_policies()
    factories.institution("H4401001", "广州市第一人民医院", "440104", api_key="key-gz")
    factories.institution("H4401002", "广州市中医院", "440104", api_key="key-gz2")
    births = (dt.date(1950, 1, 1) + dt.timedelta(days=131 * i) for i in itertools.count())
    a = factories.person("陈建国", region_code="440106", balance_fen=START_BALANCE, birth=next(births))
    kin = [factories.person(f"陈{n}", insurance_type="resident", balance_fen=None, region_code="440106",
                            birth=next(births), male=male) for n, male in (("妻", False), ("子", True),
                                                                          ("女", False), ("祖", True))]
    bindings = [
        Binding(authorizer_id=a.id, beneficiary_id=kin[0].id, relation="spouse"),                # revoked mid-race
        Binding(authorizer_id=a.id, beneficiary_id=kin[1].id, relation="child",
                monthly_limit_fen=OLD_LIMIT),                                                     # re-limited
        Binding(authorizer_id=a.id, beneficiary_id=kin[2].id, relation="child", per_payment_limit_fen=2500),
        Binding(authorizer_id=a.id, beneficiary_id=kin[3].id, relation="parent", monthly_limit_fen=40_000),
    ]
    db.session.add_all(bindings)
    db.session.commit()
    binding_ids = [b.id for b in bindings]
    revoked_id, relimited_id = binding_ids[0], binding_ids[1]
    limits = {b.id: b.monthly_limit_fen for b in bindings}
    per_payment = {b.id: b.per_payment_limit_fen for b in bindings}
    a_accounts = [acc.id for acc in ledger.personal_accounts(a)]
    db.session.commit()
    a_headers = person_headers(a)
    institutions = [{"X-Institution-Key": "key-gz"}, {"X-Institution-Key": "key-gz2"}]
    bodies = [{"patient_id_number": p.id_number, "credential": p.card_number, "pooled_fen": 0,
               "items": [{"code": "D1", "name": "药品", "category": "drug", "amount_fen": BILL_FEN}]} for p in kin]

    log = CommitLog()
    log.install(monkeypatch)
    barrier = threading.Barrier(SETTLERS + 2)
    answers: dict[str, tuple[int, dict]] = {}
    errors: list[BaseException] = []

    def run(label, work):
        log.local.label = label
        client = FlaskClient(clean_app, clean_app.response_class)  # own app context, session and connection
        try:
            barrier.wait(10)
            r = work(client)
            answers[label] = (r.status_code, r.get_json())
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    changed = threading.Event()

    def settler(n):
        def work(c):
            if n >= SETTLERS - LATE:  # so that every run pays (or not) through both bindings after the change
                assert changed.wait(30)
            return c.post(URL, json=bodies[n % 4], headers={**institutions[n % 2], "Idempotency-Key": f"race-{n}"})
        return work

    def revoker(c):
        assert log.settled_event[REVOKE_AFTER].wait(20)
        return c.post(f"/api/v1/bindings/{revoked_id}/revoke", json={"reason": "race"}, headers=a_headers)

    def relimiter(c):
        assert log.settled_event[RELIMIT_AFTER].wait(20)
        return c.patch(f"/api/v1/bindings/{relimited_id}", json={"monthly_limit_fen": NEW_LIMIT}, headers=a_headers)

    threads = [threading.Thread(target=run, args=(f"settle-{n}", settler(n))) for n in range(SETTLERS)]
    threads += [threading.Thread(target=run, args=("revoke", revoker)),
                threading.Thread(target=run, args=("relimit", relimiter))]
    for t in threads:
        t.start()
    threads[-2].join(30)
    threads[-1].join(30)
    changed.set()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a request hung"
    assert not errors, errors
    monkeypatch.undo()

    # every request answered; the authorizer's two changes went through
    assert answers["revoke"][0] == 200, answers["revoke"]
    assert answers["relimit"][0] == 200, answers["relimit"]
    statuses = sorted({answers[f"settle-{n}"][0] for n in range(SETTLERS)})
    assert statuses == [201], {n: answers[f"settle-{n}"] for n in range(SETTLERS) if answers[f"settle-{n}"][0] != 201}

    # the ledger: balanced, no account negative
    db.session.rollback()
    assert ledger.check() == []
    assert db.session.scalar(select(func.count()).select_from(LedgerAccount).where(
        LedgerAccount.kind.in_(ledger.PERSONAL_KINDS), LedgerAccount.balance_fen < 0)) == 0

    # the family payments sum to exactly what the authorizer's account lost
    left = ledger.balance_of(a)[0]
    paid = db.session.scalar(select(func.coalesce(func.sum(FamilyPayment.amount_fen), 0))
                             .where(FamilyPayment.authorizer_id == a.id))
    assert paid == START_BALANCE - left
    assert db.session.scalar(select(func.count()).select_from(Settlement)) == SETTLERS
    assert sum(ledger.balance(account) for account in a_accounts) == left  # the postings, not the cached column

    # replay in commit order: each payment against the state in force when it was committed
    payments: dict[str, list[FamilyPayment]] = {}
    for fp in db.session.scalars(select(FamilyPayment)):
        payments.setdefault(fp.settlement_id, []).append(fp)
    revoked_at, relimited_at = log.commit_of("revoke"), log.commit_of("relimit")
    assert revoked_at and relimited_at
    events = []
    for n in range(SETTLERS):
        body = answers[f"settle-{n}"][1]
        at = log.commit_of(f"settle-{n}")
        assert at is not None, f"settlement {n} answered 201 without a commit of its own"
        events.append((at, n, body))
    events.sort()
    balance, used = START_BALANCE, dict.fromkeys(binding_ids, 0)
    paid_after_revocation = []
    for at, n, body in events:
        stored = {fp.binding_id: fp.amount_fen for fp in payments.get(body["id"], [])}
        answered = {f["binding_id"]: f["amount_fen"] for f in body["family"]}
        assert stored == answered, (n, stored, answered)
        assert body["own_account_fen"] == 0 and body["cash_fen"] + sum(answered.values()) == BILL_FEN, body
        for binding_id, amount in answered.items():
            assert binding_id == binding_ids[n % 4], (n, binding_id)  # a patient is paid by his own binding only
            limit = NEW_LIMIT if binding_id == relimited_id and at > relimited_at else limits[binding_id]
            if binding_id == revoked_id:
                if at > revoked_at:
                    paid_after_revocation.append(n)
            assert amount > 0
            if per_payment[binding_id] is not None:
                assert amount <= per_payment[binding_id], (n, amount)
            used[binding_id] += amount
            if limit is not None:
                assert used[binding_id] <= limit, (n, binding_id, used[binding_id], limit)
            balance -= amount
            assert balance >= 0, (n, balance)
        # the plan pays as much as it may: cash only when the binding, his balance or a limit leaves no room
        b = binding_ids[n % 4]
        if body["cash_fen"] and not (b == revoked_id and at > revoked_at):
            paid_now = sum(answered.values())
            limit = NEW_LIMIT if b == relimited_id and at > relimited_at else limits[b]
            room = [balance]
            if per_payment[b] is not None:
                room.append(per_payment[b] - paid_now)
            if limit is not None:
                room.append(limit - used[b])
            assert min(room) <= 0, (n, body, room)
    assert paid_after_revocation == [], paid_after_revocation
    assert balance == left
    assert left == 0  # the account ran out: there was room for only some of them
    assert {at > revoked_at for at, *_ in events} == {True, False}  # settlements on both sides of each change
    assert {at > relimited_at for at, *_ in events} == {True, False}
