"""Helpers for life-cycle tests: bearer headers for a person or staff user, a real RQ burst worker, and the text a
PDF shows."""
import io

from pypdf import PdfReader
from werkzeug.security import generate_password_hash

from api.auth import issue_token
from api.extensions import db
from api.models import StaffUser


def person_headers(person, channel: str = "wechat") -> dict:
    token, _ = issue_token("person", person.id, ch=channel)
    return {"Authorization": f"Bearer {token}"}


def staff_headers(username: str = "reviewer1", roles=("reviewer",)) -> dict:
    staff = db.session.query(StaffUser).filter_by(username=username).one_or_none()
    if staff is None:
        staff = StaffUser(username=username, password_hash=generate_password_hash("x"), roles=list(roles))
        db.session.add(staff)
        db.session.commit()
    token, _ = issue_token("staff", staff.id)
    return {"Authorization": f"Bearer {token}"}


def run_worker() -> None:
    """Runs the real RQ worker of `flask --app api worker` until the queues are empty."""
    from flask import current_app

    from api.commands.worker import build_worker
    db.session.commit()  # the jobs must see what the test wrote
    with current_app.app_context():  # a context (and session) of its own, as in a worker process
        build_worker(["reviews", "notifications"]).work(burst=True, logging_level="WARNING")
    db.session.rollback()  # see what the jobs wrote


def pdf_text(data: bytes) -> str:
    """The text of a PDF as a reader sees it (the bytes are compressed: searching them proves nothing)."""
    return "".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
