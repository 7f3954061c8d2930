"""Bindings (共济关系): list, limits and priority, revoke by either party, usage this month."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select, update

from api import policy
from api.errors import ApiError, not_found
from api.extensions import db
from api.masking import mask_name
from api.models import Binding, FamilyPayment, Person, utcnow
from api.services import notifications
from api.services.tx import transactional
from api.timefmt import month_start_utc


def visible_to(person: Person, binding_id: str) -> Binding:
    binding = db.session.get(Binding, binding_id)
    if binding is None or person.id not in (binding.authorizer_id, binding.beneficiary_id):
        raise not_found()
    return binding


def used_this_month(binding_ids: list[str], now: dt.datetime | None = None) -> dict[str, int]:
    """What each binding paid from the authorizer's account this (Shanghai) month: its payments made since the
    month began and not refunded. A refund gives back to the month of its payment, so the month's use never
    goes below zero."""
    if not binding_ids:
        return {}
    rows = db.session.execute(
        select(FamilyPayment.binding_id, func.sum(FamilyPayment.amount_fen))
        .where(FamilyPayment.binding_id.in_(binding_ids), FamilyPayment.created_at >= month_start_utc(now),
               FamilyPayment.refunded_at.is_(None))
        .group_by(FamilyPayment.binding_id)).all()
    return {bid: int(total or 0) for bid, total in rows}


def of_person(person: Person) -> dict[str, list[Binding]]:
    granted = db.session.scalars(select(Binding).where(Binding.authorizer_id == person.id)
                                 .order_by(Binding.created_at.desc())).all()
    received = db.session.scalars(select(Binding).where(Binding.beneficiary_id == person.id)
                                  .order_by(Binding.priority.is_(None), Binding.priority, Binding.created_at)).all()
    return {"granted": list(granted), "received": list(received)}


@transactional
def update_settings(person: Person, binding_id: str, data: dict) -> Binding:
    """The authorizer sets limits and the validity window; the beneficiary sets the order of use (R10)."""
    binding = visible_to(person, binding_id)
    if not data:
        raise ApiError("INVALID_INPUT", 400)
    if binding.status != "active":
        raise ApiError("BINDING_NOT_ACTIVE", 409)
    limits = {"monthly_limit_fen", "per_payment_limit_fen", "valid_from", "valid_until"}
    mine = (person.id == binding.authorizer_id and set(data) <= limits) or \
        (person.id == binding.beneficiary_id and set(data) <= {"priority"})
    if not mine:
        raise ApiError("FORBIDDEN", 403)
    window = (data.get("valid_from", binding.valid_from), data.get("valid_until", binding.valid_until))
    if code := policy.validity_window_refusal(*window):
        raise ApiError(code, 400, "valid_from" if "valid_from" in data else "valid_until")
    # conditional: a revocation committed meanwhile wins, and the settings of a revoked binding never change
    if not db.session.execute(update(Binding).where(Binding.id == binding.id, Binding.status == "active")
                              .values(**data)).rowcount:
        raise ApiError("BINDING_NOT_ACTIVE", 409)
    db.session.refresh(binding)
    return binding


@transactional
def revoke(person: Person, binding_id: str, reason: str | None) -> Binding:
    """R6: either side ends the binding at once; records stay."""
    binding = visible_to(person, binding_id)
    side = "authorizer" if person.id == binding.authorizer_id else "beneficiary"
    moved = db.session.execute(update(Binding).where(Binding.id == binding.id, Binding.status == "active")
                               .values(status="revoked", revoked_at=utcnow(), revoked_by=side,
                                       revoke_reason=reason)).rowcount
    if not moved:
        raise ApiError("BINDING_NOT_ACTIVE", 409)
    db.session.refresh(binding)
    a, b = binding.authorizer, binding.beneficiary
    who = "授权人" if side == "authorizer" else "共济人员"
    notifications.notify(a, "binding_revoked", "家庭共济已解除",
                         f"您与【{policy.RELATIONS[binding.relation]} {mask_name(b.name)}】的家庭共济关系已解除（{who}发起）。",
                         binding_id=binding.id)
    notifications.notify(b, "binding_revoked", "家庭共济已解除",
                         f"【{policy.RELATIONS[policy.INVERSE[binding.relation]]} {mask_name(a.name)}】与您的家庭共济关系"
                         f"已解除（{who}发起），此后不能再使用其个人账户支付。", binding_id=binding.id)
    return binding
