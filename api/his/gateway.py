"""One POST of the national interface: parse, authenticate, replay a known msgid, dispatch by infno, answer.

Every outcome is an answer envelope (HTTP 200): infcode 0 with the transaction's output, or infcode -1 with the
reason in Chinese. The same msgid from the same institution with the same input replays the first answer and moves
nothing again; with another input it is refused. Transactions that write keep their answer in their own
transaction (2201–2205 here, 2207/2208/2601 in the settlement service's); those that only read keep it after.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import secrets

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError, OperationalError

from api.errors import ApiError
from api.extensions import db
from api.his import envelope as env
from api.his import persons, settlement, visits
from api.his.context import Context
from api.his.envelope import GatewayError
from api.his.signing import authenticate
from api.models import HisMessage
from api.services.tx import unit_of_work
from api.timefmt import SHANGHAI

log = logging.getLogger(__name__)


def sign_in(ctx: Context) -> dict:
    """9001 签到: a sign_no for the operator's day (accepted and not required on later messages)."""
    now = dt.datetime.now(SHANGHAI)
    return ctx.answer({"signinoutb": {"sign_time": now.strftime("%Y-%m-%d %H:%M:%S"),
                                      "sign_no": now.strftime("%Y%m%d") + f"{secrets.randbelow(10 ** 10):010d}"}})


def _reads(handler):
    def run(ctx: Context) -> dict:
        answer = handler(ctx)
        try:
            with unit_of_work():
                ctx.remember(answer)
        except IntegrityError:  # a copy of this message answered first: that answer stands
            db.session.rollback()
            return _replay(ctx)
        return answer
    return run


def _writes(handler):
    def run(ctx: Context) -> dict:
        try:
            with unit_of_work():
                answer = ctx.answer(handler(ctx.institution, ctx.envelope))
                ctx.remember(answer)
        except IntegrityError:
            db.session.rollback()
            if _known(ctx) is None:
                raise GatewayError("FEE_DETAIL_DUPLICATE") from None
            return _replay(ctx)
        return answer
    return run


def _plain(handler):
    return lambda ctx: ctx.answer(handler(ctx.institution, ctx.envelope))


def _settle(ctx: Context) -> dict:
    try:
        return settlement.settle(ctx)
    except IntegrityError:
        db.session.rollback()
        known = _known(ctx)
        if known is not None:
            return _replay(ctx)
        raise GatewayError("FEE_BATCH_SETTLED") from None


HANDLERS = {
    "9001": _reads(sign_in),
    "1101": _reads(_plain(persons.person_info)),
    "2201": _writes(visits.register),
    "2203": _writes(visits.upload_visit_info),
    "2204": _writes(visits.upload_fees),
    "2205": _writes(visits.revoke_fees),
    "2206": _reads(settlement.preview),
    "2207": _settle,
    "2208": settlement.cancel,
    "2601": settlement.void,
}


def _digest(infno: str, given) -> str:
    text = json.dumps(env.to_store(given), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(f"{infno}|{text}".encode()).hexdigest()


# asked of every message (its msgid may have been answered already): built once, read as columns
_KNOWN = select(HisMessage.infno, HisMessage.request_hash, HisMessage.answer, HisMessage.voided).where(
    HisMessage.institution_id == bindparam("institution"), HisMessage.msgid == bindparam("msgid"))


def _known(ctx: Context):
    """The first answer under the message's msgid (infno, request_hash, answer, voided), or None."""
    return db.session.execute(_KNOWN, {"institution": ctx.institution.id, "msgid": ctx.msgid}).first()


def _replay(ctx: Context) -> dict:
    found = _known(ctx)
    if found is None:
        raise GatewayError("MSGID_VOIDED")
    if found.voided:
        raise GatewayError("MSGID_VOIDED")
    if found.request_hash != ctx.digest or found.infno != ctx.infno:
        raise GatewayError("MSGID_REUSED")
    return env.revive(found.answer)


def handle(raw: bytes, headers, path_infno: str | None) -> dict:
    """The answer to one POSTed message."""
    refmsg_time = env.now_stamp()
    admdvs = ""
    try:
        envelope = env.parse(raw)
        infno = envelope["infno"]
        if path_infno is not None and path_infno != infno:
            raise GatewayError("INFNO_MISMATCH")
        if infno not in HANDLERS:
            raise GatewayError("UNSUPPORTED_INFNO", infno)
        institution = authenticate(headers, infno)
        admdvs = institution.region_code
        sent_code = envelope.get("fixmedins_code") or envelope.get("medins_code")  # POWERSI sends medins_code
        if sent_code != institution.code:
            raise GatewayError("FIXMEDINS_MISMATCH")
        ctx = Context(institution, envelope, infno, envelope["msgid"], _digest(infno, envelope.get("input")),
                      refmsg_time)
        if _known(ctx) is not None:
            return _replay(ctx)
        return HANDLERS[infno](ctx)
    except GatewayError as exc:
        db.session.rollback()
        return env.failure(exc, refmsg_time, admdvs)
    except ApiError as exc:  # the settlement service's refusals, in its own catalogue's words
        db.session.rollback()
        return env.failure(GatewayError(exc.code), refmsg_time, admdvs)
    except OperationalError:
        db.session.rollback()
        log.exception("HIS gateway: database unavailable or busy")
        return env.failure(GatewayError("SERVICE_UNAVAILABLE"), refmsg_time, admdvs)
    except Exception:  # a HIS reads only the envelope: a fault is answered in it too, and logged for us
        db.session.rollback()
        log.exception("HIS gateway: unexpected fault")
        return env.failure(GatewayError("INTERNAL_ERROR"), refmsg_time, admdvs)
