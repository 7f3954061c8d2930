"""staff regions, validity windows from a date, window materials seen, the `sending` lease of deliveries

Revision ID: a7c3d9e1f2b4
Revises: 189ab67be267
Create Date: 2026-12-01 23:55:00

"""
from alembic import op
import sqlalchemy as sa

import api.models


revision = 'a7c3d9e1f2b4'
down_revision = '189ab67be267'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('staff_users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('region_code', sa.String(length=2), nullable=True))
    with op.batch_alter_table('applications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('valid_from', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('materials_seen', sa.JSON(), nullable=True))
    with op.batch_alter_table('bindings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('valid_from', sa.Date(), nullable=True))
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sending_until', api.models.UTCDateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_column('sending_until')
    with op.batch_alter_table('bindings', schema=None) as batch_op:
        batch_op.drop_column('valid_from')
    with op.batch_alter_table('applications', schema=None) as batch_op:
        batch_op.drop_column('materials_seen')
        batch_op.drop_column('valid_from')
    with op.batch_alter_table('staff_users', schema=None) as batch_op:
        batch_op.drop_column('region_code')
