"""Shared extension objects, each init_app'ed by create_app."""
from contextlib import contextmanager
from contextvars import ContextVar

import redis
from flask import current_app
from flask_migrate import Migrate
from flask_smorest import Api
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData, event
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    })


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
smorest = Api()


_writing: ContextVar[bool] = ContextVar("writing", default=False)


@contextmanager
def writing():
    """Marks a block that will write: on SQLite its transaction begins IMMEDIATE (takes the write lock first).

    A read transaction left open before the block is ended first, so the block sees fresh data and a SQLite
    read snapshot is never upgraded to a write (which fails at once with SQLITE_BUSY instead of waiting).
    Nested blocks join the outer one.
    """
    if _writing.get():
        yield
        return
    if db.session().in_transaction():
        db.session.rollback()
    token = _writing.set(True)
    try:
        yield
    finally:
        _writing.reset(token)


def configure_sqlite(engine) -> None:
    """SQLite for several processes: WAL, a busy timeout, and write transactions begun IMMEDIATE.

    Readers never block writers under WAL; writers queue for the lock at BEGIN (`writing()`), following
    SQLAlchemy's documented recipe for pysqlite transactions.
    """
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # let us emit BEGIN ourselves
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE" if _writing.get() else "BEGIN")


def redis_client() -> redis.Redis:
    """One connection pool per process, built from REDIS_URL (or the embedded server's socket)."""
    ext = current_app.extensions
    if "redis" not in ext:
        ext["redis"] = redis.Redis.from_url(
            current_app.config["REDIS_URL"], socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
        )
    return ext["redis"]
