"""Properties of the ledger (F8) under random sequences of transfers, settlements, refunds and failures.

A hypothesis state machine drives the real ledger on the configured database and keeps a model of every
balance; after each step the database must agree with the model and with double-entry bookkeeping.
"""
import itertools

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition, rule,
                                 run_state_machine_as_test)
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from api import ledger
from api.extensions import db, writing
from api.ledger import Entry, InsufficientFunds
from api.models import LedgerAccount, LedgerTransaction, Posting
from api.services.tx import unit_of_work
from tests import factories

MAX_BALANCE = 50_000


class InjectedFailure(Exception):
    """Stands for anything that goes wrong after the postings were written and before the commit."""


def _empty_tables() -> None:
    with writing():
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(table.delete())
        db.session.commit()
    db.session.expunge_all()


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        _empty_tables()
        self.balances: dict[int, int] = {}  # the model: account id → expected balance in 分
        self.personal: list[int] = []
        self.institutions: list[int] = []
        self.funded = 0           # what the registry load put into personal accounts
        self.transactions = 0     # committed transactions
        self.settlements: list[tuple[int, str]] = []  # (transaction id, reference) not yet refunded
        self.refunds: list[tuple[list[Entry], str]] = []  # what was refunded, to try again
        self.references = itertools.count(1)

    # --- set-up ---------------------------------------------------------------------------------------------

    @initialize(people=st.lists(st.tuples(st.integers(0, MAX_BALANCE), st.integers(0, 100)), min_size=2,
                                max_size=3),
                institutions=st.integers(1, 2))
    def open_accounts(self, people, institutions):
        for seq, (balance, prior_percent) in enumerate(people):
            prior = balance * prior_percent // 100
            person = factories.person(name=f"参保人{seq}", balance_fen=balance, prior_year_fen=prior,
                                      number=factories.id_number(seq=seq))
            with unit_of_work():
                current_acc, prior_acc = ledger.personal_accounts(person)
                self.balances[current_acc.id], self.balances[prior_acc.id] = balance - prior, prior
                self.personal += [current_acc.id, prior_acc.id]
            self.funded += balance
            self.transactions += 1 if balance else 0  # the registry load; a zero balance moves nothing
        for seq in range(institutions):
            institution = factories.institution(code=f"H44010{seq:02d}", api_key=f"key-{seq}")
            with unit_of_work():
                account = ledger.institution_account(institution.id).id
            self.balances[account] = 0
            self.institutions.append(account)

    # --- helpers --------------------------------------------------------------------------------------------

    def _post(self, kind: str, entries: list[Entry], reference: str | None = None) -> int | None:
        """Posts and commits as a service would; returns the transaction id, or None when refused."""
        overdraws = any(e.account_id in self.personal and self.balances[e.account_id] + e.amount_fen < 0
                        for e in entries)
        try:
            with unit_of_work():
                txn_id = ledger.post(kind, entries, reference=reference).id
        except InsufficientFunds as refused:
            assert overdraws, f"refused although covered: {refused.account_code}"
            return None
        assert not overdraws, "a personal account was overdrawn"
        for e in entries:
            self.balances[e.account_id] += e.amount_fen
        self.transactions += 1
        return txn_id

    def _amount(self, data, source: int) -> int:
        """Often within the balance, sometimes exactly it or one 分 more, sometimes far beyond it."""
        held = self.balances[source]
        choices = [st.integers(1, MAX_BALANCE * 2), st.just(held + 1)]
        if held > 0:
            choices += [st.integers(1, held), st.just(held)]
        return data.draw(st.one_of(*choices), label="amount")

    # --- rules ----------------------------------------------------------------------------------------------

    @rule(data=st.data())
    def transfer(self, data):
        accounts = self.personal + self.institutions
        source = data.draw(st.sampled_from(accounts), label="source")
        target = data.draw(st.sampled_from([a for a in accounts if a != source]), label="target")
        amount = self._amount(data, source)
        self._post("transfer", [Entry(source, -amount), Entry(target, amount)])

    @rule(data=st.data())
    def settle(self, data):
        """A patient's personal burden paid to an institution from up to three personal accounts at once."""
        institution = data.draw(st.sampled_from(self.institutions), label="institution")
        payers = data.draw(st.lists(st.sampled_from(self.personal), min_size=1, max_size=3, unique=True),
                           label="payers")
        legs = [Entry(payer, -self._amount(data, payer)) for payer in payers]
        reference = f"settlement-{next(self.references)}"
        txn_id = self._post("settlement", legs + [Entry(institution, -sum(e.amount_fen for e in legs))],
                            reference)
        if txn_id is not None:
            self.settlements.append((txn_id, reference))

    @precondition(lambda self: self.settlements)
    @rule(data=st.data())
    def refund(self, data):
        """退费: the exact reversal of a settlement's postings, read back from the ledger."""
        txn_id, reference = data.draw(st.sampled_from(self.settlements), label="settlement")
        original = db.session.execute(select(Posting.account_id, Posting.amount_fen)
                                      .where(Posting.transaction_id == txn_id)).all()
        reversal = [Entry(account_id, -amount) for account_id, amount in original]
        assert self._post("refund", reversal, f"refund-{reference}") is not None, "a refund cannot overdraw"
        self.settlements.remove((txn_id, reference))
        self.refunds.append((reversal, f"refund-{reference}"))

    @precondition(lambda self: self.refunds)
    @rule(data=st.data())
    def refund_again(self, data):
        """The same refund a second time is refused by its reference and changes nothing."""
        reversal, reference = data.draw(st.sampled_from(self.refunds), label="refund")
        with pytest.raises(IntegrityError):
            with unit_of_work():
                ledger.post("refund", reversal, reference=reference)

    @rule(data=st.data())
    def fail_after_posting(self, data):
        """Something fails after ledger.post wrote its rows: the rollback must take all of them back."""
        source = data.draw(st.sampled_from([a for a in self.personal if self.balances[a] > 0] + self.institutions),
                           label="source")
        target = data.draw(st.sampled_from([a for a in self.personal + self.institutions if a != source]),
                           label="target")
        amount = data.draw(st.integers(1, max(self.balances[source], 1)), label="amount")
        with pytest.raises(InjectedFailure):
            with unit_of_work():
                ledger.post("transfer", [Entry(source, -amount), Entry(target, amount)])
                raise InjectedFailure()

    # --- invariants -----------------------------------------------------------------------------------------

    @invariant()
    def books_balance(self):
        assert ledger.check() == []
        assert int(db.session.scalar(select(func.coalesce(func.sum(Posting.amount_fen), 0)))) == 0
        assert db.session.scalar(select(func.count()).select_from(LedgerTransaction)) == self.transactions

    @invariant()
    def balances_match_the_model(self):
        # that each balance equals its postings is ledger.check()'s part, in books_balance
        stored = dict(db.session.execute(select(LedgerAccount.id, LedgerAccount.balance_fen)
                                         .where(LedgerAccount.id.in_(self.personal or [0]))).all())
        stored.update({a: ledger.balance(a) for a in self.institutions})  # counterparts: their postings
        assert stored == self.balances
        assert all(stored[a] >= 0 for a in self.personal)

    @invariant()
    def money_is_conserved(self):
        held = sum(self.balances[a] for a in self.personal + self.institutions)
        assert held == self.funded
        funding = db.session.scalar(select(LedgerAccount.id).where(LedgerAccount.code == ledger.REGISTRY_ACCOUNT))
        assert (ledger.balance(funding) if funding else 0) == -self.funded


def test_ledger_state_machine(clean_app):
    # No shrinking: on a real database it replays hundreds of examples (minutes), and an unshrunk failure is
    # at most 20 readable steps anyway; a failure found is saved and replayed first on the next run.
    run_state_machine_as_test(LedgerMachine, settings=settings(
        max_examples=30, stateful_step_count=20, deadline=None,
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]))
