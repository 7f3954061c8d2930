"""merge the HIS gateway and R14/R15 schema branches

Revision ID: d0a1b2c3e4f5
Revises: 87aa9045d252, c9e5f4a2b7d6
Create Date: 2026-12-02 00:36:42.444878

"""
from alembic import op
import sqlalchemy as sa

import api.models


# revision identifiers, used by Alembic.
revision = 'd0a1b2c3e4f5'
down_revision = ('87aa9045d252', 'c9e5f4a2b7d6')
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
