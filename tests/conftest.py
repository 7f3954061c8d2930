"""Test set-up: a real Redis (embedded unless REDIS_URL is set) and a real database (SQLite file unless
DATABASE_URL is set), the schema built by the migrations, and every table emptied before each test."""
import os
import tempfile
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import text

_TMP = Path(tempfile.mkdtemp(prefix="gj-test-"))
os.environ["INSTANCE_PATH"] = str(_TMP / "instance")
os.environ.setdefault("SECRET_KEY", "test-secret-key")
os.environ["SIMULATED_CHANNEL_FAULTS"] = "1"  # tests/test_faults.py makes channels fail (workers inherit it)
if not os.environ.get("DATABASE_URL"):
    os.environ["DATABASE_URL"] = f"sqlite:///{_TMP / 'test.db'}"
_EMBEDDED_REDIS = None
if not os.environ.get("REDIS_URL"):
    from api import embedded
    _sock = _TMP / "redis.sock"
    _EMBEDDED_REDIS = embedded.start(_sock, _TMP / "redis", persist=False)
    os.environ["REDIS_URL"] = f"unix://{_sock}"


def pytest_sessionfinish(session, exitstatus):
    if _EMBEDDED_REDIS is not None:
        from api import embedded
        embedded.stop(_EMBEDDED_REDIS)


@pytest.fixture(scope="session")
def app():
    """The app on the configured servers; it fails loudly when one of them does not answer."""
    from flask_migrate import upgrade

    from api import create_app
    from api.extensions import db, redis_client
    app = create_app({"TESTING": True})
    with app.app_context():
        redis_client().ping()
        db.session.execute(text("SELECT 1"))
        db.session.rollback()
        db.drop_all()
        with db.engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        upgrade()
    return app


def _empty_everything(app):
    from api.extensions import db, redis_client
    with app.app_context():
        db.session.remove()
        with db.engine.begin() as conn:
            for table in reversed(db.metadata.sorted_tables):
                conn.execute(table.delete())
        redis_client().flushdb()


@pytest.fixture
def clean_app(app):
    _empty_everything(app)
    with app.app_context():
        yield app
    from api.extensions import db
    with app.app_context():
        db.session.remove()


class _Client(FlaskClient):
    """A test client whose requests see what the test wrote, and after which the test sees what they wrote."""

    def open(self, *args, **kwargs):
        from api.extensions import db
        db.session.commit()
        try:
            return super().open(*args, **kwargs)
        finally:
            db.session.rollback()


@pytest.fixture
def client(clean_app):
    clean_app.test_client_class = _Client
    return clean_app.test_client()


@pytest.fixture
def runner(clean_app):
    return clean_app.test_cli_runner()
