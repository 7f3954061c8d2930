"""counterpart accounts (institutions, the registry's funding) keep no running balance

Their balance is the sum of their postings (api/ledger.py); the cached column is zeroed, and stays 0.

Revision ID: e1f2a3b4c5d6
Revises: c4e7a9d2b6f1
Create Date: 2026-12-02 03:20:00

"""
from alembic import op


revision = 'e1f2a3b4c5d6'
down_revision = 'c4e7a9d2b6f1'
branch_labels = None
depends_on = None


def upgrade():
    op.execute("UPDATE ledger_accounts SET balance_fen = 0 "
               "WHERE kind NOT IN ('personal_current', 'personal_prior')")


def downgrade():
    op.execute("UPDATE ledger_accounts SET balance_fen = (SELECT COALESCE(SUM(p.amount_fen), 0) FROM postings p "
               "WHERE p.account_id = ledger_accounts.id) WHERE kind NOT IN ('personal_current', 'personal_prior')")
