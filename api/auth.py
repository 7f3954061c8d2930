"""Bearer tokens for persons and staff, institution keys, and the decorators views use to know the caller."""
from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac

from flask import current_app, g, request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import bindparam, select

from api.errors import ApiError
from api.extensions import db
from api.models import Institution, Person, StaffUser, utcnow


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="bearer-token")


def issue_token(kind: str, subject_id: int, **claims) -> tuple[str, dt.datetime]:
    """A signed token naming a person (`person`) or a staff user (`staff`); it expires after TOKEN_TTL_SECONDS."""
    ttl = current_app.config["TOKEN_TTL_SECONDS"]
    token = _serializer().dumps({"k": kind, "sub": subject_id, **claims})
    return token, utcnow() + dt.timedelta(seconds=ttl)


def read_token(expected_kind: str) -> dict:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Bearer "):
        raise ApiError("UNAUTHORIZED", 401)
    try:
        data = _serializer().loads(header[7:].strip(), max_age=current_app.config["TOKEN_TTL_SECONDS"])
    except SignatureExpired:
        raise ApiError("TOKEN_EXPIRED", 401) from None
    except BadSignature:
        raise ApiError("UNAUTHORIZED", 401) from None
    if not isinstance(data, dict) or data.get("k") not in ("person", "staff"):
        raise ApiError("UNAUTHORIZED", 401)
    if data["k"] != expected_kind:  # a good token of the other audience: the caller is known, the door is wrong
        raise ApiError("WRONG_TOKEN_KIND", 403)
    return data


VOUCHER_TTL_SECONDS = 300  # default; app.config["VOUCHER_TTL_SECONDS"] overrides


def _voucher_serializer() -> URLSafeTimedSerializer:
    # its own salt: a voucher is never a bearer token, and a bearer token is never a voucher
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="medical-voucher")


def _voucher_ttl() -> int:
    return int(current_app.config.get("VOUCHER_TTL_SECONDS", VOUCHER_TTL_SECONDS))


def issue_voucher(person_id: int) -> tuple[str, dt.datetime]:
    """医保电子凭证: a signed, short-lived code naming the person, shown as a QR code at the counter."""
    code = _voucher_serializer().dumps({"v": person_id})
    return code, utcnow() + dt.timedelta(seconds=_voucher_ttl())


def read_voucher(code: str) -> int | None:
    """The person a voucher code names, or None when it is not a voucher, was tampered with or has expired."""
    if not code or not isinstance(code, str) or len(code) > 200:
        return None
    try:
        data = _voucher_serializer().loads(code, max_age=_voucher_ttl())
    except BadSignature:  # SignatureExpired is a BadSignature
        return None
    person_id = data.get("v") if isinstance(data, dict) else None
    return person_id if isinstance(person_id, int) and not isinstance(person_id, bool) else None


def voucher_holder(code: str) -> tuple[int, bool] | None:
    """(the person a voucher code names, whether it has expired), or None when it is no voucher of ours (not
    signed by us, or tampered with). An expired voucher still names its holder: a relative's old code shown at a
    counter is still his credential."""
    if not code or not isinstance(code, str) or len(code) > 200:
        return None
    try:
        data, fresh = _voucher_serializer().loads(code, max_age=_voucher_ttl()), True
    except SignatureExpired as exc:
        data, fresh = exc.payload, False
        try:
            data = _voucher_serializer().load_payload(data)
        except BadSignature:
            return None
    except BadSignature:
        return None
    person_id = data.get("v") if isinstance(data, dict) else None
    if not isinstance(person_id, int) or isinstance(person_id, bool):
        return None
    return person_id, not fresh


def current_person() -> Person:
    if "person" not in g:
        data = read_token("person")
        person = db.session.get(Person, data["sub"])
        if person is None:
            raise ApiError("UNAUTHORIZED", 401)
        g.person = person
        g.channel = data.get("ch")
    return g.person


def current_channel() -> str:
    """The mini-program the person's token was issued for (web when it names none)."""
    current_person()
    return g.get("channel") or "web"


def current_staff() -> StaffUser:
    if "staff" not in g:
        data = read_token("staff")
        staff = db.session.get(StaffUser, data["sub"])
        if staff is None or not staff.active:
            raise ApiError("UNAUTHORIZED", 401)
        g.staff = staff
    return g.staff


# built once: every request of an institution (each settlement of a city's hospitals) runs it
_INSTITUTION_BY_KEY = select(Institution.id, Institution.code, Institution.name, Institution.region_code,
                             Institution.designated, Institution.api_key_hash) \
    .where(Institution.api_key_hash == bindparam("digest"))


def current_institution() -> Institution:
    if "institution" not in g:
        key = request.headers.get("X-Institution-Key", "")
        digest = hash_key(key)
        # found by its digest (an index lookup reveals nothing of the key), then compared in constant time
        row = db.session.execute(_INSTITUTION_BY_KEY, {"digest": digest}).first() if key else None
        if row is None or not hmac.compare_digest(row.api_key_hash, digest):
            raise ApiError("UNAUTHORIZED", 401)
        # columns, not an entity of the session: kept as read for the request, never expired and loaded again
        g.institution = Institution(**row._asdict())
    return g.institution


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def person_required(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        current_person()
        return view(*args, **kwargs)
    return wrapper


def staff_required(*roles: str):
    """The caller is an active staff user holding one of `roles` (admin holds them all)."""
    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            staff = current_staff()
            if roles and not (set(staff.roles) & (set(roles) | {"admin"})):
                raise ApiError("FORBIDDEN", 403)
            return view(*args, **kwargs)
        return wrapper
    return decorate


def institution_required(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        current_institution()
        return view(*args, **kwargs)
    return wrapper
