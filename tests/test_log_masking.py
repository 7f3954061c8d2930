"""Identifiers never reach the logs or the audit trail in full: ID numbers (18 and 15 digits), card numbers and
phone numbers are masked by the app's own log configuration; a mistyped staff username is audited masked."""
import io
import json
import logging

import pytest
from sqlalchemy import select
from werkzeug.security import generate_password_hash

from api.extensions import db
from api.logging_setup import JsonFormatter
from api.masking import mask_text
from api.models import AuditEvent, StaffUser

ID18 = "440106197506180035"        # fixtures/demo/persons.csv
ID15 = "440106750618003"           # the same person's pre-1999 number
CARD = "G440000001"                # fixtures/demo/persons.csv card_number
PHONE = "13800130001"


@pytest.fixture
def log_output(app):
    """The stream of the handler create_app installed (api.logging_setup.configure), swapped for a buffer."""
    handlers = [h for h in logging.getLogger().handlers if isinstance(h.formatter, JsonFormatter)]
    assert len(handlers) == 1, logging.getLogger().handlers
    buffer = io.StringIO()
    old = handlers[0].setStream(buffer)
    try:
        yield buffer
    finally:
        handlers[0].setStream(old)


def _lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def test_mask_text_masks_old_ids_and_card_numbers_and_leaves_other_identifiers():
    assert mask_text(f"/x/{ID15}/y") == "/x/440106*****8003/y"
    assert mask_text(f"卡号{CARD}，") == "卡号G4****0001，"
    assert mask_text("C0101123456 T0000000123") == "C0*****3456 T0*****0123"  # the test factories' shapes
    assert mask_text(f"{ID18} {PHONE}") == "440106********0035 138****0001"
    # a receipt number whose random part happens to be digits is no 15-digit ID (was masked: GJ202612*****8974C)
    for kept in ("GJ20260101AB12CD34", "GJ202612020198974C", "GJ2026120212345678", "a" * 32,
                 "2026-12-01T23:38:33+0000", "12345678901234567"):
        assert mask_text(kept) == kept


def test_the_request_log_masks_id_and_card_numbers_in_paths(client, log_output):
    for path in (f"/api/v1/staff/persons/{ID18}/usage", f"/api/v1/staff/persons/{ID15}/usage",
                 f"/api/v1/materials/{CARD}", f"/api/v1/terminal/{CARD}/{ID18}"):
        client.get(path)
    out = log_output.getvalue()
    requests = [line for line in _lines(log_output) if line["logger"] == "api.request"]
    assert len(requests) == 4, out
    for raw in (ID18, ID15, CARD):
        assert raw not in out
    assert [r["path"] for r in requests] == [
        "/api/v1/staff/persons/440106********0035/usage", "/api/v1/staff/persons/440106*****8003/usage",
        "/api/v1/materials/G4****0001", "/api/v1/terminal/G4****0001/440106********0035"]
    assert all(CARD not in r["msg"] and "G4****0001" in r["msg"] for r in requests[2:])


def test_an_application_log_line_and_its_traceback_are_masked(app, log_output):
    log = logging.getLogger("api.services.example")
    try:
        raise ValueError(f"card\n{CARD} of {ID15}")  # after a newline: JSON escapes it as "\n"
    except ValueError:
        log.exception("lookup of %s / %s / %s failed", CARD, ID15, PHONE)
    out = log_output.getvalue()
    for raw in (CARD, ID15, PHONE):
        assert raw not in out, out
    (line,) = _lines(log_output)
    assert line["msg"] == "lookup of G4****0001 / 440106*****8003 / 138****0001 failed"
    assert "G4****0001 of 440106*****8003" in line["exc"]


def test_a_failed_staff_login_with_an_unknown_username_is_audited_masked(client, log_output):
    db.session.add(StaffUser(username="clerk1", password_hash=generate_password_hash("right password"),
                             roles=["clerk"]))
    db.session.commit()
    typed = ["13812345678", "My$ecretPassw0rd", ID18, "clerk1"]  # a phone, a password, an ID, the real name
    for username in typed:
        r = client.post("/api/v1/staff/login", json={"username": username, "password": "wrong password"})
        assert r.status_code == 401 and r.json["error"]["code"] == "INVALID_CREDENTIALS"
    actors = list(db.session.scalars(select(AuditEvent.actor).where(AuditEvent.action == "staff_login_failed")
                                     .order_by(AuditEvent.id)))
    # an existing account's name is no secret (and says whose password is being guessed)
    assert actors == ["staff:1***", "staff:M***", "staff:4***", "staff:clerk1"]
    stored = " ".join(str(a.detail) + a.actor for a in db.session.scalars(select(AuditEvent)))
    assert all(secret not in stored for secret in typed[:3])
    assert all(secret not in log_output.getvalue() for secret in typed[:3])
