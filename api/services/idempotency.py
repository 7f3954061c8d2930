"""Idempotency-Key handling: a replay with the same key and body returns the first answer; another body is 409.

A key is scoped to its caller and endpoint (a person's applications: `person:<id>:applications`) and kept 24 hours.
Settlements keep theirs on the settlement itself, per institution, for good (api/services/settlements.py)."""
import datetime as dt
import hashlib
import json
from typing import NamedTuple

from flask import request
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from api.errors import ApiError
from api.extensions import db
from api.models import IdempotencyRecord, utcnow
from api.services.tx import unit_of_work


def _hash(payload) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str).encode()).hexdigest()


class Answer(NamedTuple):
    body: dict
    status: int
    replayed: bool  # the first request's answer, given again (the view says so: Idempotency-Replayed: true)


def _replay(record: IdempotencyRecord, request_hash: str) -> Answer:
    if record.request_hash != request_hash:
        raise ApiError("IDEMPOTENCY_KEY_REUSED", 409, "Idempotency-Key")
    return Answer(record.body, record.status_code, True)


def _record(scope: str, key: str) -> IdempotencyRecord | None:
    return db.session.scalar(select(IdempotencyRecord).where(IdempotencyRecord.scope == scope,
                                                             IdempotencyRecord.key == key))


def answer(scope: str, payload, action) -> Answer:
    """Runs `action() -> (body, status)` once per (scope, Idempotency-Key), in the same transaction as its record."""
    key = request.headers.get("Idempotency-Key")
    if not key:
        with unit_of_work():
            return Answer(*action(), False)
    if len(key) > 255:
        raise ApiError("INVALID_INPUT", 400, "Idempotency-Key")
    request_hash = _hash(payload)
    if (found := _record(scope, key)) is not None:
        return _replay(found, request_hash)
    try:
        with unit_of_work():
            body, status = action()
            db.session.add(IdempotencyRecord(scope=scope, key=key, request_hash=request_hash,
                                             status_code=status, body=body))
        return Answer(body, status, False)
    except (IntegrityError, ApiError):
        # A concurrent request with the same key may have won the race: its work makes ours fail (a duplicate
        # application, the record's unique key). Then its answer is the answer; otherwise our failure is.
        db.session.rollback()
        found = _record(scope, key)
        if found is None:
            raise
        return _replay(found, request_hash)


KEPT = dt.timedelta(hours=24)  # how long a key replays its first answer (Stripe's window); then it is forgotten


def forget_old(now: dt.datetime | None = None) -> int:
    """Deletes the records of keys older than KEPT (the sweeper); a key sent again after that is a new request."""
    cutoff = (now or utcnow()) - KEPT
    with unit_of_work():
        return db.session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff),
                                  execution_options={"synchronize_session": False}).rowcount
