"""Keyset pagination over (created_at, id): `?limit=` (default 20, max 100) and an opaque `?cursor=`."""
import base64
import datetime as dt
import json

from marshmallow import Schema, fields, validate
from sqlalchemy import and_, or_

from api.errors import ApiError
from api.extensions import db


class PageArgs(Schema):
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    cursor = fields.String(load_default=None)


def _encode(created_at: dt.datetime, row_id) -> str:
    return base64.urlsafe_b64encode(json.dumps([created_at.isoformat(), row_id]).encode()).decode().rstrip("=")


def _decode(cursor: str):
    """What `_encode` made, or 400: a cursor is opaque to clients, so anything else is a forged or broken one."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, row_id = json.loads(raw)
        at = dt.datetime.fromisoformat(at)
        if at.tzinfo is None or not isinstance(row_id, str) or len(row_id) > 32:
            raise ValueError("not a cursor of ours")
        at.astimezone(dt.timezone.utc)  # OverflowError at the ends of the calendar
        row_id.encode("utf-8")  # UnicodeEncodeError for a lone surrogate
        return at, row_id
    except (ValueError, TypeError, OverflowError):
        raise ApiError("INVALID_INPUT", 400, "cursor") from None


def paginate(query, model, limit: int, cursor: str | None, ascending: bool = False):
    """Returns (rows, next_cursor); newest first unless `ascending`."""
    created, ident = model.created_at, model.id
    if cursor:
        at, row_id = _decode(cursor)
        if ascending:
            query = query.where(or_(created > at, and_(created == at, ident > row_id)))
        else:
            query = query.where(or_(created < at, and_(created == at, ident < row_id)))
    order = (created.asc(), ident.asc()) if ascending else (created.desc(), ident.desc())
    rows = db.session.scalars(query.order_by(*order).limit(limit + 1)).all()
    next_cursor = _encode(rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], next_cursor


# one cursor format for every list, also those paginated elsewhere (api.services.usage)
encode_cursor, decode_cursor = _encode, _decode
