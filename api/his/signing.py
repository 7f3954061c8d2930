"""Institution authentication as provincial gateways do it: the `_api_*` headers signed with HmacSHA1.

`_api_signature` = Base64(HmacSHA1(the institution's API key, "_api_access_key=…&_api_name=…&_api_timestamp=…
&_api_version=…")), the four other headers as `k=v` in key order; `_api_access_key` is the institution's code,
`_api_name` the infno, `_api_timestamp` milliseconds since the epoch (seconds accepted too), at most 5 minutes off.

An HMAC is checked with the key itself, so the sha256 that X-Institution-Key is checked against is not enough.
The key is kept encrypted (Fernet; its key derived from SECRET_KEY by HKDF, so a database dump alone does not give
the keys away) in `institution_signing_keys`, written by the registry import of institutions.csv from the same
`api_key` column. The trade-off: whoever has both the database and SECRET_KEY can sign as any institution, and
a new SECRET_KEY makes the stored keys unreadable until institutions.csv is imported again (the import rewrites
what it cannot read).
"""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import time
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from sqlalchemy import bindparam, insert, select, update

from api.auth import hash_key
from api.extensions import db
from api.his.envelope import GatewayError
from api.models import Institution, InstitutionSigningKey, utcnow

HEADERS = ("_api_access_key", "_api_name", "_api_timestamp", "_api_version")
MAX_SKEW_SECONDS = 300


@functools.lru_cache(maxsize=4)
def _fernet(secret_key: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"gongji-his", info=b"institution-signing-keys") \
        .derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(api_key: str) -> str:
    return _fernet(current_app.config["SECRET_KEY"]).encrypt(api_key.encode()).decode()


@functools.lru_cache(maxsize=1024)
def _decrypt(secret_key: str, ciphertext: str) -> str | None:
    try:
        return _fernet(secret_key).decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        return None


def decrypt(ciphertext: str) -> str | None:
    """The key, or None when it was encrypted under another SECRET_KEY."""
    return _decrypt(current_app.config["SECRET_KEY"], ciphertext)


def sign(api_key: str, headers: dict[str, str]) -> str:
    """The signature of the four headers (what an institution's gateway SDK computes)."""
    text = "&".join(f"{k}={headers[k]}" for k in sorted(HEADERS))
    return base64.b64encode(hmac.new(api_key.encode(), text.encode(), hashlib.sha1).digest()).decode()


def signed_headers(api_key: str, code: str, infno: str, version: str = "1.0.0", at_ms: int | None = None) -> dict:
    """The five headers for a request of `code` (tests, the bench and institution-side tools)."""
    headers = {"_api_access_key": code, "_api_name": infno, "_api_version": version,
               "_api_timestamp": str(at_ms if at_ms is not None else int(time.time() * 1000))}
    return {**headers, "_api_signature": sign(api_key, headers)}


_INSTITUTION_FIELDS = ("id", "code", "name", "region_code", "designated", "api_key_hash")
# every message is signed: built once
_SIGNER = select(*(getattr(Institution, name) for name in _INSTITUTION_FIELDS), InstitutionSigningKey.ciphertext,
                 InstitutionSigningKey.key_hash) \
    .join(InstitutionSigningKey, InstitutionSigningKey.institution_id == Institution.id) \
    .where(Institution.code == bindparam("code"))


def authenticate(headers, infno: str) -> Institution:
    """The institution that signed this request; GatewayError otherwise."""
    values = {name: (headers.get(name) or "").strip() for name in (*HEADERS, "_api_signature")}
    if not all(values.values()):
        raise GatewayError("SIGNATURE_MISSING")
    stamp = values["_api_timestamp"]
    if not stamp.isdigit() or len(stamp) > 16:
        raise GatewayError("SIGNATURE_INVALID", "_api_timestamp")
    seconds = int(stamp) / 1000 if len(stamp) >= 12 else int(stamp)  # 13 digits: ms (the SDK); 10: seconds
    if abs(time.time() - seconds) > MAX_SKEW_SECONDS:
        raise GatewayError("TIMESTAMP_STALE")
    if values["_api_name"] != infno:
        raise GatewayError("INFNO_MISMATCH", "_api_name")
    row = db.session.execute(_SIGNER, {"code": values["_api_access_key"]}).first()
    if row is None:
        raise GatewayError("UNKNOWN_INSTITUTION")
    *columns, ciphertext, key_hash = row
    institution = Institution(**dict(zip(_INSTITUTION_FIELDS, columns)))  # as read, for this message
    key = decrypt(ciphertext)
    # a key rotated by a later import of the institution alone (not of its signing key) no longer signs
    if key is None or key_hash != institution.api_key_hash:
        raise GatewayError("UNKNOWN_INSTITUTION")
    if not hmac.compare_digest(sign(key, values).encode(), values["_api_signature"].encode()):
        raise GatewayError("SIGNATURE_INVALID")
    return institution


# --- the registry import -------------------------------------------------------------------------------------

def import_signing_keys(path: Path, report, progress) -> None:
    """institutions.csv again, after the institutions step: the key of each row whose institution now holds that
    very key (its hash), encrypted. Rows of a file the institutions step rejected match nothing and are left alone
    — that step has reported them."""
    from api.services.registry import INSTITUTION_COLUMNS, _read_csv
    report.name = "institutions.csv（接口签名密钥）"
    rows = _read_csv(path, report, INSTITUTION_COLUMNS)
    report.problems.clear()  # the institutions step reported this file's problems already
    institutions = {r.code: r for r in db.session.execute(select(Institution.id, Institution.code,
                                                                 Institution.api_key_hash))}
    stored = {r.institution_id: r for r in db.session.execute(
        select(InstitutionSigningKey.institution_id, InstitutionSigningKey.key_hash, InstitutionSigningKey.ciphertext))}
    table = InstitutionSigningKey.__table__
    for _line, row in rows:
        institution = institutions.get(row["code"])
        key = row["api_key"]
        if institution is None or institution.api_key_hash != hash_key(key):
            continue
        old = stored.get(institution.id)
        if old is None:
            db.session.execute(insert(table).values(institution_id=institution.id, key_hash=hash_key(key),
                                                    ciphertext=encrypt(key), updated_at=utcnow()))
            report.inserted += 1
        elif old.key_hash != hash_key(key) or decrypt(old.ciphertext) != key:
            db.session.execute(update(table).where(table.c.institution_id == institution.id)
                               .values(key_hash=hash_key(key), ciphertext=encrypt(key), updated_at=utcnow()))
            report.updated += 1
        else:
            report.unchanged += 1
    progress(report.name, "写入", len(rows), len(rows))
