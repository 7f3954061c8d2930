"""Shared extension objects, each init_app'ed by create_app."""
import fcntl
import os
import time
from contextlib import contextmanager
from contextvars import ContextVar

import redis
from flask import current_app
from flask_migrate import Migrate
from flask_smorest import Api
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData, event
from sqlalchemy.exc import OperationalError
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
LOCK_WAIT_SECONDS = 30  # the longest a statement waits for a lock (then 503, see api.errors)


@contextmanager
def writing():
    """Marks a block that will write: on SQLite its transaction begins IMMEDIATE (takes the write lock first).

    A read transaction left open before the block is ended first, so the block sees fresh data and a SQLite
    read snapshot is never upgraded to a write (which fails at once with SQLITE_BUSY instead of waiting). On
    PostgreSQL, where every statement reads what is committed (READ COMMITTED), a read transaction with nothing
    pending is carried on instead and what the session loaded is expired: as fresh, without ending the transaction
    and beginning another (three round trips, and a second check-out of the connection, on every write request).
    Nested blocks join the outer one.
    """
    if _writing.get():
        yield
        return
    session = db.session()
    if session.in_transaction():
        if session.get_bind().dialect.name == "postgresql" and not (session.new or session.dirty or session.deleted):
            session.expire_all()
        else:
            session.rollback()
    token = _writing.set(True)
    try:
        with _sqlite_writers_queue():
            yield
    finally:
        _writing.reset(token)


@contextmanager
def _sqlite_writers_queue():
    """SQLite writers of every process queue on an flock beside the database file before BEGIN IMMEDIATE.

    SQLite's own busy handler sleeps up to 100 ms between tries, so a writer that finds the lock taken often waits
    far longer than the transaction it waits for; this queue tries again every millisecond at most, and gives up
    after LOCK_WAIT_SECONDS, as SQLite's busy timeout does. Each block opens its own descriptor, so threads of one process
    queue too; a dead holder's lock is freed by the kernel. SQLite's lock still decides: a writer that bypasses
    this queue only waits the slow way.
    """
    path = current_app.extensions.get("sqlite_writers_lock")
    if path is None:
        yield
        return
    with open(path, "a") as handle:
        deadline, pause = time.monotonic() + LOCK_WAIT_SECONDS, 0.0001
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise OperationalError("waiting for the SQLite writers' lock", None,
                                           TimeoutError("database is locked")) from None
                time.sleep(pause)
                pause = min(pause * 2, 0.001)
        yield  # closing the file releases the lock


def configure_engine(engine) -> None:
    """Waits for locks are bounded (LOCK_WAIT_SECONDS) on both databases; SQLite is set up for several processes."""
    if engine.dialect.name == "postgresql":
        @event.listens_for(engine, "connect")
        def _lock_timeout(dbapi_connection, _record):
            with dbapi_connection.cursor() as cur:
                cur.execute(f"SET lock_timeout = {int(LOCK_WAIT_SECONDS * 1000)}")
            dbapi_connection.commit()
    elif engine.dialect.name == "sqlite":
        _configure_sqlite(engine)


def _configure_sqlite(engine) -> None:
    """SQLite for several processes: WAL, a busy timeout, and write transactions begun IMMEDIATE.

    Readers never block writers under WAL; writers queue for the lock at BEGIN (`writing()`), following
    SQLAlchemy's documented recipe for pysqlite transactions.
    """
    database = engine.url.database
    if database and database != ":memory:" and not database.startswith("file:"):
        current_app.extensions["sqlite_writers_lock"] = os.path.abspath(database) + "-writers.lock"

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # let us emit BEGIN ourselves
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(LOCK_WAIT_SECONDS * 1000)}")
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
