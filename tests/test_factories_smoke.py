"""The test factories make valid registry data through the real ledger."""
from api import idnumber, ledger
from tests import factories


def test_person_gets_a_funded_account(clean_app):
    factories.load_policies()
    p = factories.person(balance_fen=123456, prior_year_fen=100000)
    assert idnumber.is_valid(p.id_number)
    assert ledger.balance_of(p) == (123456, 100000)
    assert ledger.check() == []
