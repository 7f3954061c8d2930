"""The pages served by the app: `/` the mini-program simulator and `/staff` the staff console. They are static
HTML/JS/CSS under api/static/ (served by Flask's own /static route) that call only the public API with the tokens
a client holds (no page-only endpoint)."""
from flask import Blueprint, send_from_directory

from api import settings

STATIC = settings.ROOT / "api" / "static"

bp = Blueprint("site", __name__)


def _page(folder: str):
    response = send_from_directory(STATIC / folder, "index.html", max_age=0)
    # the pages load nothing from elsewhere and are framed by nobody
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'")
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@bp.get("/")
def simulator():
    return _page("sim")


@bp.get("/staff")
@bp.get("/staff/")
def console():
    return _page("staff")

