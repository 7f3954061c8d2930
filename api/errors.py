"""One error type for the whole service and the handlers that turn every failure into the JSON error body."""
import logging

from flask import jsonify
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from api.messages import MESSAGES, message

log = logging.getLogger(__name__)


class ApiError(Exception):
    """A refusal with a stable code; the Chinese message comes from the catalogue unless given."""

    def __init__(self, code: str, status: int = 422, field: str | None = None, msg: str | None = None,
                 headers: dict | None = None):
        super().__init__(code)
        self.code, self.status, self.field = code, status, field
        self.message = msg or message(code)
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}


class Refusal(ApiError):
    """A rule of the policy engine refused: 422 with the rule's code."""

    def __init__(self, code: str, field: str | None = None):
        super().__init__(code, 422, field)


def not_found() -> ApiError:
    return ApiError("NOT_FOUND", 404)


_HTTP_CODES = {
    400: "INVALID_INPUT", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT", 413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE", 429: "RATE_LIMITED",
}

# marshmallow's English messages, said in Chinese
_FIELD_MESSAGES = {
    "Missing data for required field.": "为必填项",
    "Field may not be null.": "不能为空",
    "Not a valid integer.": "须为整数",
    "Not a valid string.": "须为文字",
    "Not a valid date.": "须为日期（YYYY-MM-DD）",
    "Not a valid boolean.": "须为是或否",
    "Unknown field.": "是不认识的字段",
    "Not a valid list.": "须为列表",
    "Invalid input type.": "类型不正确",
    "Not a valid file.": "须为上传的文件",
}


def _first_field_error(messages) -> tuple[str | None, str]:
    """Pick the first failing field out of webargs' {location: {field: [msgs]}} tree."""
    node, path = messages, []
    while isinstance(node, dict) and node:
        key = next(iter(node))
        if key not in ("json", "query", "form", "files", "multipart", "headers", "view_args", "path"):
            path.append(str(key))
        node = node[key]
    text = node[0] if isinstance(node, list) and node and isinstance(node[0], str) else ""
    return (".".join(path) or None), text


def validation_error(messages) -> ApiError:
    field, text = _first_field_error(messages)
    if field == "_schema":  # the body as a whole (an array, a string, a schema-wide rule): no field to name
        return ApiError(text if text in MESSAGES else "INVALID_INPUT", 400)
    if text == "Invalid JSON body.":  # webargs' answer to a body that does not parse
        return ApiError("MALFORMED_JSON", 400)
    if text in MESSAGES:  # our own validators raise catalogue codes
        return ApiError(text, 400, field)
    if text in _FIELD_MESSAGES:
        return ApiError("INVALID_INPUT", 400, field, f"「{field}」{_FIELD_MESSAGES[text]}")
    if text.startswith("Must be one of"):
        return ApiError("INVALID_INPUT", 400, field, f"「{field}」的取值不在允许范围内")
    if text.startswith("Must be greater than or equal") or text.startswith("Must be less than"):
        return ApiError("INVALID_INPUT", 400, field, f"「{field}」超出允许范围")
    if text.startswith("Longer than") or text.startswith("Shorter than") or text.startswith("Length must"):
        return ApiError("INVALID_INPUT", 400, field, f"「{field}」长度不正确")
    if field:
        return ApiError("INVALID_INPUT", 400, field, f"「{field}」格式不正确")
    return ApiError("INVALID_INPUT", 400)


# PostgreSQL SQLSTATEs of a database that is busy or away rather than broken: lock not available (lock_timeout),
# deadlock, serialization failure, shutting down / starting up, and the connection exception class 08.
_UNAVAILABLE_SQLSTATES = ("55P03", "40P01", "40001", "57P01", "57P02", "57P03", "08")


def database_unavailable(err: OperationalError) -> bool:
    """Would the same request succeed in a moment? (A lock that was not free in time, a lost connection.)"""
    orig = err.orig
    if err.connection_invalidated or isinstance(orig, TimeoutError):  # TimeoutError: the SQLite writers' queue
        return True
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate:
        return sqlstate.startswith(_UNAVAILABLE_SQLSTATES)
    if type(orig).__module__.startswith("psycopg"):
        return True  # no SQLSTATE: the server could not be reached
    text = str(orig).lower()
    return "database is locked" in text or "database is busy" in text


def register_error_handlers(app) -> None:
    @app.errorhandler(ApiError)
    def _api_error(err: ApiError):
        response = jsonify(err.body())
        response.status_code = err.status
        response.headers.update(err.headers)
        return response

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException):
        # webargs (flask-smorest) parsing failures arrive as 422 (or 400 where a blueprint asks for it)
        # with the field messages attached
        data = getattr(err, "data", None)
        if err.code in (400, 422) and isinstance(data, dict) and "messages" in data:
            return _api_error(validation_error(data["messages"]))
        if err.code == 400 and err.description and "JSON" in str(err.description):
            return _api_error(ApiError("MALFORMED_JSON", 400))
        code = _HTTP_CODES.get(err.code or 500, "INTERNAL_ERROR")
        # a 405 names the methods the path answers (Allow), as HTTP asks; werkzeug knows them
        headers = {"Allow": ", ".join(sorted(err.valid_methods))} if getattr(err, "valid_methods", None) else None
        return _api_error(ApiError(code, err.code or 500, headers=headers))

    @app.errorhandler(OperationalError)
    def _database_error(err: OperationalError):
        if not database_unavailable(err):
            return _unexpected(err)  # a real fault (schema drift, a full disk…): logged with its traceback
        log.warning("database unavailable: %s: %s", type(err.orig).__name__, str(err.orig).splitlines()[0][:200])
        return _api_error(ApiError("SERVICE_UNAVAILABLE", 503, headers={"Retry-After": "5"}))

    @app.errorhandler(Exception)
    def _unexpected(err: Exception):
        log.exception("unhandled error")
        return _api_error(ApiError("INTERNAL_ERROR", 500))
