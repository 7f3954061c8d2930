"""Liveness, readiness and the JSON error body."""


def test_healthz(client):
    assert client.get("/healthz").json == {"status": "ok"}


def test_readyz_checks_database_and_redis(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json["checks"] == {"database": "ok", "redis": "ok"}


def test_readyz_reports_a_redis_that_does_not_answer(clean_app):
    from api.extensions import redis_client
    import redis
    clean_app.extensions["redis"] = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        response = clean_app.test_client().get("/readyz")
        assert response.status_code == 503
        assert response.json["checks"]["redis"].startswith("error")
        assert response.json["checks"]["database"] == "ok"
    finally:
        del clean_app.extensions["redis"]
        redis_client().ping()


def test_unknown_path_is_a_chinese_404(client):
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "NOT_FOUND"
    assert response.json["error"]["message"] == "未找到相关记录"


def test_openapi_document_is_served(client):
    assert client.get("/api/v1/openapi.json").status_code == 200


def test_docs_page_and_openapi_list_the_public_paths(client):
    assert client.get("/api/docs").status_code == 200
    paths = client.get("/api/v1/openapi.json").json["paths"]
    for path in ("/api/v1/bindings/applications", "/api/v1/bindings/{binding_id}/revoke",
                 "/api/v1/staff/reviews", "/api/v1/notifications"):
        assert path in paths, path


def test_only_a_busy_or_unreachable_database_is_a_503():
    import sqlite3

    import psycopg
    from psycopg import errors as pg
    from sqlalchemy.exc import OperationalError

    from api.errors import database_unavailable

    def wrapped(orig):
        return OperationalError("SELECT 1", {}, orig)

    assert database_unavailable(wrapped(sqlite3.OperationalError("database is locked")))
    assert database_unavailable(wrapped(TimeoutError("database is locked")))  # the SQLite writers' queue
    assert database_unavailable(wrapped(pg.LockNotAvailable("canceling statement due to lock timeout")))
    assert database_unavailable(wrapped(pg.DeadlockDetected("deadlock detected")))
    assert database_unavailable(wrapped(psycopg.OperationalError("connection failed: Connection refused")))
    # real faults keep their 500 and their traceback in the log
    assert not database_unavailable(wrapped(sqlite3.OperationalError("no such table: persons")))
    assert not database_unavailable(wrapped(sqlite3.OperationalError("database or disk is full")))
    assert not database_unavailable(wrapped(pg.DiskFull("could not extend file")))
