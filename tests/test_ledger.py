"""The double-entry ledger (F8): balanced integer postings, no overdraft, the CHECK constraint, `ledger check`."""
import pytest
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from api import ledger
from api.extensions import db, writing
from api.ledger import Entry, InsufficientFunds, UnbalancedTransaction
from api.models import LedgerAccount, LedgerTransaction, Posting
from tests import factories


def _counts() -> tuple[int, int]:
    return (db.session.scalar(select(func.count()).select_from(LedgerTransaction)),
            db.session.scalar(select(func.count()).select_from(Posting)))


def _balances() -> dict[str, int]:
    return dict(db.session.execute(select(LedgerAccount.code, LedgerAccount.balance_fen)).all())


def _ledger_check(runner):
    """Runs `flask ledger check`; an exception inside the command is a test failure, not a refusal."""
    result = runner.invoke(args=["ledger", "check"])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def _current(person) -> LedgerAccount:
    return ledger.personal_accounts(person)[0]


@pytest.fixture
def world(clean_app):
    """Two people whose whole balance is current-year money, and a hospital's account."""
    alice = factories.person(name="李四", balance_fen=10000, prior_year_fen=0)
    bob = factories.person(name="王五", balance_fen=500, prior_year_fen=0)
    hospital = factories.institution()
    with writing():
        accounts = {"alice": _current(alice).id, "bob": _current(bob).id,
                    "hospital": ledger.institution_account(hospital.id).id}
        db.session.commit()
    return accounts


def test_transfer_posts_balanced_postings(world):
    with writing():
        txn = ledger.post("transfer", [Entry(world["alice"], -2500), Entry(world["hospital"], 2500)],
                          reference="t-1", memo="门诊")
        db.session.commit()
    postings = db.session.execute(select(Posting.account_id, Posting.amount_fen)
                                  .where(Posting.transaction_id == txn.id).order_by(Posting.account_id)).all()
    assert sorted(postings) == sorted([(world["alice"], -2500), (world["hospital"], 2500)])
    assert sum(amount for _, amount in postings) == 0
    assert db.session.get(LedgerAccount, world["alice"]).balance_fen == 7500
    assert ledger.balance(world["hospital"]) == 2500
    assert db.session.get(LedgerAccount, world["hospital"]).balance_fen == 0  # a counterpart keeps no balance
    assert ledger.check() == []


def test_zero_legs_are_dropped(world):
    with writing():
        txn = ledger.post("transfer", [Entry(world["alice"], -1), Entry(world["bob"], 0),
                                       Entry(world["hospital"], 1)])
        db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(Posting)
                             .where(Posting.transaction_id == txn.id)) == 2


@pytest.mark.parametrize("entries", [
    pytest.param(lambda a: [Entry(a["alice"], -100), Entry(a["hospital"], 99)], id="off-by-one"),
    pytest.param(lambda a: [Entry(a["alice"], -100)], id="one-leg"),
    pytest.param(lambda a: [Entry(a["alice"], -100.0), Entry(a["hospital"], 100.0)], id="float"),
    pytest.param(lambda a: [Entry(a["alice"], -0.5), Entry(a["hospital"], 0.5)], id="fraction-of-a-fen"),
])
def test_unbalanced_or_non_integer_amounts_are_refused_and_write_nothing(world, entries):
    before_counts, before_balances = _counts(), _balances()
    with writing():
        with pytest.raises(UnbalancedTransaction):
            ledger.post("transfer", entries(world))
        # refused before anything reached the session, so even a commit here writes nothing
        assert not db.session.new and not db.session.dirty
        db.session.commit()
    assert _counts() == before_counts
    assert _balances() == before_balances
    assert ledger.check() == []


@pytest.mark.parametrize("credit_first", [True, False], ids=["credit-leg-applied-first", "debit-leg-first"])
def test_overdraft_raises_and_rollback_leaves_everything_as_it_was(clean_app, credit_first):
    # post() applies legs in account-id order; either order must leave nothing behind after the rollback
    hospital = factories.institution()
    with writing():
        if credit_first:
            hospital_acc = ledger.institution_account(hospital.id).id
        payer = factories.person(balance_fen=300, prior_year_fen=0)
        payer_acc = _current(payer).id
        if not credit_first:
            hospital_acc = ledger.institution_account(hospital.id).id
        db.session.commit()
    assert (hospital_acc < payer_acc) is credit_first
    before_counts, before_balances = _counts(), _balances()

    with writing():
        with pytest.raises(InsufficientFunds) as raised:
            ledger.post("transfer", [Entry(payer_acc, -301), Entry(hospital_acc, 301)])
        db.session.rollback()
    assert raised.value.account_code == f"person:{payer.id}:current"
    assert _counts() == before_counts
    assert _balances() == before_balances
    assert ledger.check() == []

    with writing():  # the exact balance can still be spent, down to zero
        ledger.post("transfer", [Entry(payer_acc, -300), Entry(hospital_acc, 300)])
        db.session.commit()
    assert db.session.get(LedgerAccount, payer_acc).balance_fen == 0


def test_system_and_institution_accounts_may_go_negative_personal_never(world):
    funding = db.session.scalar(select(LedgerAccount).where(LedgerAccount.code == ledger.REGISTRY_ACCOUNT))
    assert ledger.balance(funding.id) == -10500  # the registry load is the counterpart of every personal balance
    with writing():
        ledger.post("refund", [Entry(world["hospital"], -700), Entry(world["bob"], 700)])
        db.session.commit()
    assert ledger.balance(world["hospital"]) == -700
    assert db.session.get(LedgerAccount, world["bob"]).balance_fen == 1200

    with writing():
        with pytest.raises(InsufficientFunds):
            ledger.post("transfer", [Entry(world["bob"], -1201), Entry(world["alice"], 1201)])
        db.session.rollback()
    assert db.session.get(LedgerAccount, world["bob"]).balance_fen == 1200
    assert ledger.check() == []


def test_check_constraint_refuses_a_direct_negative_personal_balance(world):
    # the last line of defence, for code that bypasses ledger.post
    with writing():
        with pytest.raises(IntegrityError):
            db.session.execute(text("UPDATE ledger_accounts SET balance_fen = -1 WHERE id = :id"),
                               {"id": world["alice"]})
        db.session.rollback()
    assert db.session.get(LedgerAccount, world["alice"]).balance_fen == 10000
    with writing():  # while a non-personal account is free to be negative
        db.session.execute(update(LedgerAccount).where(LedgerAccount.id == world["hospital"])
                           .values(balance_fen=-1))
        db.session.rollback()


def test_check_sees_a_raw_change_made_in_the_same_transaction(world):
    with writing():
        alice = db.session.get(LedgerAccount, world["alice"])
        assert alice.balance_fen == 10000  # loaded into the session before the tampering
        db.session.execute(text("UPDATE ledger_accounts SET balance_fen = balance_fen + 1 WHERE id = :id"),
                           {"id": world["alice"]})
        assert ledger.check() == [f"account {alice.code} balance 10001 != postings 10000"]
        db.session.rollback()


def test_ledger_check_command_passes_on_a_clean_ledger(world, runner):
    result = _ledger_check(runner)
    assert result.exit_code == 0, result.output
    transactions, postings = _counts()
    accounts = db.session.scalar(select(func.count()).select_from(LedgerAccount))
    # per person a registry load (funding → current; the empty prior-year leg is dropped), two personal accounts
    assert (transactions, postings, accounts) == (2, 4, 6)
    assert "账目核对通过" in result.output
    assert f"{transactions} 笔凭证，{postings} 条分录，{accounts} 个账户" in result.output


def test_ledger_check_command_names_a_tampered_balance(world, runner):
    with writing():
        db.session.execute(text("UPDATE ledger_accounts SET balance_fen = balance_fen + 100 WHERE id = :id"),
                           {"id": world["bob"]})
        db.session.commit()
    code = db.session.get(LedgerAccount, world["bob"]).code
    result = _ledger_check(runner)
    assert result.exit_code == 1
    assert "账目核对通过" not in result.output
    assert "1 处不符" in result.output
    assert f"account {code} balance 600 != postings 500" in result.output


def test_a_counterpart_account_keeps_no_balance_and_check_names_one_that_does(world, runner):
    """An institution's account is credited by every settlement of that hospital: a running balance there would be
    one row every settlement waits on. Its balance is its postings; a cached one is a mismatch."""
    with writing():
        ledger.post("transfer", [Entry(world["alice"], -300), Entry(world["hospital"], 300)])
        db.session.commit()
    assert db.session.get(LedgerAccount, world["hospital"]).balance_fen == 0
    assert ledger.balance(world["hospital"]) == 300
    assert _ledger_check(runner).exit_code == 0
    with writing():
        db.session.execute(text("UPDATE ledger_accounts SET balance_fen = 300 WHERE id = :id"),
                           {"id": world["hospital"]})
        db.session.commit()
    code = db.session.get(LedgerAccount, world["hospital"]).code
    result = _ledger_check(runner)
    assert result.exit_code == 1
    assert f"account {code} keeps a balance of 300; a counterpart account keeps none" in result.output


def test_ledger_check_command_names_an_unbalanced_transaction(world, runner):
    # a stray posting whose account balance was moved along with it: only the transaction is wrong
    with writing():
        txn_id = db.session.execute(insert(LedgerTransaction).values(kind="transfer", memo="raw")
                                    .returning(LedgerTransaction.id)).scalar_one()
        db.session.execute(insert(Posting).values(transaction_id=txn_id, account_id=world["alice"],
                                                  amount_fen=250))
        db.session.execute(update(LedgerAccount).where(LedgerAccount.id == world["alice"])
                           .values(balance_fen=LedgerAccount.balance_fen + 250))
        db.session.commit()
    result = _ledger_check(runner)
    assert result.exit_code == 1
    assert f"transaction {txn_id} sums to 250, not 0" in result.output
    assert "1 处不符" in result.output


def test_ledger_check_command_lists_every_mismatch(world, runner):
    with writing():
        db.session.execute(text("UPDATE ledger_accounts SET balance_fen = balance_fen + 1 WHERE id IN (:a, :b)"),
                           {"a": world["alice"], "b": world["hospital"]})
        db.session.commit()
    result = _ledger_check(runner)
    assert result.exit_code == 1
    assert "2 处不符" in result.output
    for key in ("alice", "hospital"):
        assert db.session.get(LedgerAccount, world[key]).code in result.output
