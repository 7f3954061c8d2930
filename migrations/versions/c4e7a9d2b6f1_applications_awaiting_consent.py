"""applications awaiting the beneficiary's consent (R13): consent_due_at, and the pending pair includes them

An application waiting for its beneficiary's own consent is pending like one under review: the unique index of
pending applications per pair covers `awaiting_consent` too, so that a second application for the same pair is
refused while the first waits for the answer.

Revision ID: c4e7a9d2b6f1
Revises: d0a1b2c3e4f5
Create Date: 2026-12-02 09:10:00.000000

"""
from alembic import op
import sqlalchemy as sa

import api.models


# revision identifiers, used by Alembic.
revision = 'c4e7a9d2b6f1'
down_revision = 'd0a1b2c3e4f5'
branch_labels = None
depends_on = None

OLD = "status IN ('submitted', 'reviewing', 'manual_review')"
NEW = "status IN ('awaiting_consent', 'submitted', 'reviewing', 'manual_review')"


def upgrade():
    with op.batch_alter_table('applications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('consent_due_at', api.models.UTCDateTime(), nullable=True))
        batch_op.create_index(batch_op.f('ix_applications_consent_due_at'), ['consent_due_at'], unique=False)
        batch_op.drop_index('uq_applications_pending_pair', sqlite_where=sa.text(OLD), postgresql_where=sa.text(OLD))
        batch_op.create_index('uq_applications_pending_pair', ['authorizer_id', 'beneficiary_id'], unique=True,
                              sqlite_where=sa.text(NEW), postgresql_where=sa.text(NEW))


def downgrade():
    # what still waits for an answer cannot be represented before this revision: it expires
    op.execute("UPDATE applications SET status = 'expired', reason_code = 'CONSENT_EXPIRED' "
               "WHERE status = 'awaiting_consent'")
    with op.batch_alter_table('applications', schema=None) as batch_op:
        batch_op.drop_index('uq_applications_pending_pair', sqlite_where=sa.text(NEW), postgresql_where=sa.text(NEW))
        batch_op.create_index('uq_applications_pending_pair', ['authorizer_id', 'beneficiary_id'], unique=True,
                              sqlite_where=sa.text(OLD), postgresql_where=sa.text(OLD))
        batch_op.drop_index(batch_op.f('ix_applications_consent_due_at'))
        batch_op.drop_column('consent_due_at')
