"""persons endpoints (see ../shared/API.md)."""
from flask_smorest import Blueprint

blp = Blueprint("persons", __name__, url_prefix="/api/v1")
