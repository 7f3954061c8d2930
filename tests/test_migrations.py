"""The migrations build exactly the schema the models describe (a model change without a migration fails here)."""
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from api.extensions import db


def test_models_and_migrations_agree(clean_app):
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
    assert diff == []
