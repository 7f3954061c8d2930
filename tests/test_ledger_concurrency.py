"""The ledger under concurrent writers (F8): many transfers at once never overdraw an account nor lose a fen.

Every thread has its own app context, session and connection, and all start together at a barrier. The same
tests run on PostgreSQL (row locks; the guarded UPDATE is re-checked after a concurrent commit) and on the
embedded SQLite (IMMEDIATE transactions queue on the write lock, with a busy timeout).
"""
import threading

import pytest
from sqlalchemy import func, select

from api import ledger
from api.extensions import db, writing
from api.ledger import Entry, InsufficientFunds
from api.models import LedgerAccount, Posting
from tests import factories

THREADS = 64
JOIN_TIMEOUT_S = 90  # a deadlock or a lost wake-up fails the test instead of hanging it


@pytest.fixture(scope="module")
def busy_app(app):
    """An app on the same database whose pool holds a connection for every thread, so none waits for one."""
    from api import create_app
    busy = create_app({"TESTING": True, "SQLALCHEMY_ENGINE_OPTIONS": {
        "pool_size": THREADS, "max_overflow": 0, "pool_timeout": 60, "pool_pre_ping": True}})
    yield busy
    with busy.app_context():
        db.engine.dispose()  # give the server its connections back


def _move(app, barrier: threading.Barrier, source: int, target: int, amount: int, times: int,
          outcomes: list, errors: list) -> None:
    with app.app_context():
        try:
            barrier.wait()
            for _ in range(times):
                with writing():
                    try:
                        ledger.post("transfer", [Entry(source, -amount), Entry(target, amount)])
                        db.session.commit()
                        outcomes.append("ok")
                    except InsufficientFunds:
                        db.session.rollback()
                        outcomes.append("insufficient")
        except Exception as exc:  # anything else (deadlock, lock timeout, pool timeout) fails the test
            db.session.rollback()
            errors.append(repr(exc))
        finally:
            db.session.remove()


def _run(app, jobs: list[tuple[int, int, int, int]]) -> tuple[list, list]:
    """Runs one thread per (source, target, amount, times), all released at once; returns (outcomes, errors)."""
    outcomes, errors = [], []
    barrier = threading.Barrier(len(jobs), timeout=JOIN_TIMEOUT_S)
    threads = [threading.Thread(target=_move, args=(app, barrier, *job, outcomes, errors), daemon=True)
               for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT_S)
    assert not any(thread.is_alive() for thread in threads), "threads still running: deadlock or lock wait"
    return outcomes, errors


def _balance(account_id: int) -> int:
    return db.session.scalar(select(LedgerAccount.balance_fen).where(LedgerAccount.id == account_id))


def _postings_total() -> int:
    return int(db.session.scalar(select(func.coalesce(func.sum(Posting.amount_fen), 0))))


def test_many_withdrawals_at_once_never_overdraw(clean_app, busy_app):
    amount, allowed = 1000, 23  # the account holds enough for exactly 23 of the 64 transfers, plus change
    start = allowed * amount + amount - 1
    payer = factories.person(balance_fen=start, prior_year_fen=0)
    hospital = factories.institution()
    with writing():
        source = ledger.personal_accounts(payer)[0].id
        target = ledger.institution_account(hospital.id).id
        db.session.commit()

    outcomes, errors = _run(busy_app, [(source, target, amount, 1)] * THREADS)

    assert errors == []
    assert len(outcomes) == THREADS
    successes = outcomes.count("ok")
    db.session.rollback()  # read what the threads committed
    final = _balance(source)
    assert final == start - successes * amount >= 0
    assert successes == allowed
    assert outcomes.count("insufficient") == THREADS - allowed
    assert ledger.balance(target) == successes * amount  # a counterpart: its postings
    assert db.session.scalar(select(func.count()).select_from(Posting)
                             .where(Posting.account_id == source, Posting.amount_fen < 0)) == allowed
    assert ledger.check() == []
    assert _postings_total() == 0


def test_transfers_both_ways_between_two_accounts_neither_deadlock_nor_lose_money(clean_app, busy_app):
    alice = factories.person(name="李四", balance_fen=5000, prior_year_fen=0)
    bob = factories.person(name="王五", balance_fen=3000, prior_year_fen=0)
    with writing():
        a = ledger.personal_accounts(alice)[0].id
        b = ledger.personal_accounts(bob)[0].id
        db.session.commit()
    # half the threads pay one way, half the other, with amounts that drain one side now and then
    jobs = [(a, b, 700, 3) if i % 2 else (b, a, 400 + 10 * i, 3) for i in range(THREADS)]

    outcomes, errors = _run(busy_app, jobs)

    assert errors == []
    assert len(outcomes) == THREADS * 3
    assert "ok" in outcomes
    db.session.rollback()
    final_a, final_b = _balance(a), _balance(b)
    assert final_a >= 0 and final_b >= 0
    assert final_a + final_b == 8000
    # every committed transfer, and only those, moved the balances: b's postings are what it holds
    assert int(db.session.scalar(select(func.sum(Posting.amount_fen)).where(Posting.account_id == b))) == final_b
    assert ledger.check() == []
    assert _postings_total() == 0
