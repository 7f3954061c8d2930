"""The 亲情账号解绑 flow: which of his active bindings (granted or received) → confirm → revoke (R6), through
the same service as POST /bindings/{id}/revoke.

    step      asks                              then
    which     which binding (numbered options)   confirm
    confirm   确认解除 / 上一步 / 取消             revoke → done
"""
from __future__ import annotations

from api import policy
from api.errors import ApiError
from api.masking import mask_id, mask_name
from api.messages import message
from api.models import Binding
from api.services import bindings
from bot.catalogue import say
from bot.dialog import Reply
from bot.machine import Ctx, Finish, Flow, Goto, Invalid, Said, Step, opt

REASON = "本人通过智能客服解除"


def _counterpart(binding: Binding, person_id: int) -> tuple[str, str, str, str]:
    """(side, what the other is to him, masked name, masked ID number)."""
    if binding.authorizer_id == person_id:
        other, relation, side = binding.beneficiary, binding.relation, "granted"
    else:
        other, relation, side = binding.authorizer, policy.INVERSE[binding.relation], "received"
    return side, policy.RELATIONS[relation], mask_name(other.name), mask_id(other.id_number)


def _active(ctx: Ctx) -> list[Binding]:
    if "active" not in ctx.cache:
        mine = bindings.of_person(ctx.person)
        ctx.cache["active"] = [b for side in ("granted", "received") for b in mine[side] if b.status == "active"]
    return ctx.cache["active"]


def start(ctx: Ctx) -> Finish | Goto:
    active = _active(ctx)
    if not active:
        return Finish((message("NO_ACTIVE_BINDING"),))
    ctx.dialog.slots["candidates"] = [b.id for b in active]
    return Goto("which")


def ask_which(ctx: Ctx) -> Reply:
    lines, options = [], []
    by_id = {b.id: b for b in _active(ctx)}
    for n, binding_id in enumerate(ctx.dialog.slots["candidates"], 1):
        binding = by_id.get(binding_id)
        if binding is None:
            continue  # ended meanwhile
        side, relation, name, number = _counterpart(binding, ctx.person.id)
        code = "UNBIND_GRANTED" if side == "granted" else "UNBIND_RECEIVED"
        lines.append(f"{n}. " + say(code, relation=relation, name=name, id_number=number))
        options.append(opt(binding_id, f"{relation} {name}"))
    return Reply(say("ASK_UNBIND_WHICH", lines="\n".join(lines)), tuple(options) + (opt("cancel"),))


def take_which(ctx: Ctx, said: Said) -> Invalid | Goto:
    if said.value in ctx.dialog.slots["candidates"]:
        ctx.dialog.slots["binding_id"] = said.value
        return Goto("confirm")
    return Invalid(say("REASK_UNBIND_WHICH"))


def _chosen(ctx: Ctx) -> Binding | None:
    return next((b for b in _active(ctx) if b.id == ctx.dialog.slots.get("binding_id")), None)


def ask_confirm(ctx: Ctx) -> Reply:
    binding = _chosen(ctx)
    _, relation, name, _ = _counterpart(binding, ctx.person.id) if binding else ("", "", "", "")
    return Reply(say("ASK_UNBIND_CONFIRM", relation=relation, name=name),
                 (opt("confirm_unbind"), opt("back"), opt("cancel")))


def take_confirm(ctx: Ctx, said: Said) -> Invalid | Finish:
    if (said.value or said.text) not in ("confirm_unbind", "确认解除", "确认", "解除", "是", "对", "好"):
        return Invalid(say("REASK_UNBIND_CONFIRM"))
    binding_id = ctx.dialog.slots["binding_id"]
    try:
        binding = bindings.revoke(ctx.person, binding_id, REASON)
    except ApiError as exc:  # ended meanwhile by the other side, or never his
        return Finish((message(exc.code),))
    _, relation, name, _ = _counterpart(binding, ctx.person.id)
    return Finish((say("UNBOUND", relation=relation, name=name),))


FLOW = Flow("family_unbinding", "亲情账号解绑", start, {
    "which": Step(ask_which, take_which, "REASK_UNBIND_WHICH", "HELP_UNBIND_WHICH"),
    "confirm": Step(ask_confirm, take_confirm, "REASK_UNBIND_CONFIRM", "HELP_UNBIND_CONFIRM"),
})
