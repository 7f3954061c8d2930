"""Answers that are not a flow: the menu, the questions (办理条件, 所需材料, 使用范围, 冒名就医, 亲情账户), 进度
and 记录, each read from the person's own region policy and data."""
from __future__ import annotations


from api import policy
from api.errors import ApiError
from api.masking import mask_name
from api.messages import message
from api.services import applications, menu, people
from api.services import usage as usage_records
from api.timefmt import SHANGHAI
from bot.catalogue import say
from bot.dialog import Reply
from bot.intents import BY_ID, MENU
from bot.machine import Ctx, MENU_OPTION, opt

STATUS_SHOWN = 5
USAGE_SHOWN = 5


def menu_reply(ctx: Ctx, greeting: bool = True) -> Reply:
    titles = dict(menu.TITLES)
    options = tuple(opt(intent, titles.get(intent) or BY_ID[intent].title) for intent in MENU)
    hello = say("GREETING", name=mask_name(ctx.person.name)) + "\n" if greeting else ""
    waiting = applications.awaiting_consent_of(ctx.person)
    if waiting:  # R13: what waits for his own answer comes first
        hello += say("CONSENT_WAITING", count=len(waiting))
        options = (opt("consent"), *options)
    return Reply(say("MENU", greeting=hello), options)


# --- R13: the beneficiary's own consent (applications.answer_consent decides; the bot only asks and says) -------

CONSENT_AGREE, CONSENT_DECLINE = "consent_agree:", "consent_decline:"


def consent_offer(ctx: Ctx) -> Reply:
    """The newest application waiting for the person's own answer, with 同意 / 不同意."""
    waiting = applications.awaiting_consent_of(ctx.person)
    if not waiting:
        return Reply(say("CONSENT_NONE"), (MENU_OPTION,))
    app = waiting[0]
    text = say("CONSENT_ASK", relation=policy.RELATIONS[policy.INVERSE[app.relation]],
               name=mask_name(app.authorizer.name), receipt_no=app.receipt_no,
               until=f"{app.consent_due_at.astimezone(SHANGHAI):%m月%d日 %H:%M}",
               more=say("CONSENT_MORE", count=len(waiting) - 1) if len(waiting) > 1 else "")
    return Reply(text, (opt(CONSENT_AGREE + app.id, "同意"), opt(CONSENT_DECLINE + app.id, "不同意"), MENU_OPTION))


def is_consent_answer(value: str | None) -> bool:
    return bool(value) and value.startswith((CONSENT_AGREE, CONSENT_DECLINE))


def consent_answer(ctx: Ctx, value: str) -> list[Reply]:
    """同意 / 不同意 tapped (or typed while offered): the service's answer, said; the next one waiting, if any."""
    agree = value.startswith(CONSENT_AGREE)
    app_id = value.split(":", 1)[1]
    try:
        applications.answer_consent(ctx.person, app_id, agree)
    except ApiError as exc:
        return [Reply(say("CONSENT_NOT_TAKEN", reason=message(exc.code)), (MENU_OPTION,))]
    done = Reply(say("CONSENT_AGREED" if agree else "CONSENT_DECLINED"))
    return [done, consent_offer(ctx)] if applications.awaiting_consent_of(ctx.person) else [done, menu_reply(ctx, greeting=False)]


def _policy(ctx: Ctx) -> policy.Policy | None:
    return people.policy_or_none(ctx.person.region_code)


def _relations(p: policy.Policy) -> str:
    return "、".join(policy.RELATIONS[r] for r in policy.RELATIONS if r in p.relations)


def conditions(ctx: Ctx) -> str:
    p = _policy(ctx)
    if p is None:
        return say("REGION_UNKNOWN")
    code = menu.binding_refusal(ctx.person)
    caps = ""
    if p.max_beneficiaries:
        caps += say("CAP_BENEFICIARIES", count=p.max_beneficiaries)
    if p.max_authorizers:
        caps += say("CAP_AUTHORIZERS")
    return say("CONDITIONS", region=p.name,
               shareable=say("SHAREABLE_PRIOR") if p.shareable == "prior_year" else "",
               reserve=say("RESERVE", reserve=f"{p.reserve_fen // 100:,}") if p.reserve_fen else "",
               area={"province": say("AREA_PROVINCE"), "pooling": say("AREA_POOLING")}.get(p.beneficiary_area, ""),
               relations=_relations(p), caps=caps,
               mine=say("MINE_NOT", reason=message(code)) if code else say("MINE_OK"))


def materials_needed(ctx: Ctx) -> str:
    p = _policy(ctx)
    if p is None:
        return say("REGION_UNKNOWN")
    proof = ""
    if "registry" in p.proof:
        proof += say("MATERIALS_REGISTRY")
    if "materials" in p.proof:
        proof += say("MATERIALS_UPLOAD")
    if "commitment" in p.proof:
        proof += say("MATERIALS_COMMITMENT")
    documents = "、".join(policy.MATERIAL_KINDS[k] for k in p.required_materials)
    return say("MATERIALS", proof=proof.rstrip("；") + "。") + say("MATERIALS_WINDOW", documents=documents)


def scope(ctx: Ctx) -> str:
    p = _policy(ctx)
    if p is None:
        return say("REGION_UNKNOWN")
    where = {"province": f"{p.name}内", "pooling": "本统筹区（同一个市）内"}.get(p.use_scope,
                                                                              policy.AREA_NAMES[p.use_scope])
    return say("SCOPE", scope=where,
               cross=say("SCOPE_CROSS_YES") if p.use_scope == "national" else say("SCOPE_CROSS_NO"))


def status(ctx: Ctx) -> str:
    person = ctx.person
    rows = applications.recent_of(person, STATUS_SHOWN)
    if not rows:
        return say("STATUS_NONE")
    lines = [say("STATUS_HEAD")]
    for n, app in enumerate(rows, 1):
        mine = app.authorizer_id == person.id
        other = app.beneficiary if mine else app.authorizer
        relation = app.relation if mine else policy.INVERSE[app.relation]
        reason = f"\n   原因：{message(app.reason_code)}" if app.status == "rejected" and app.reason_code else ""
        lines.append(say("STATUS_LINE", n=n, who=say("STATUS_FOR") if mine else say("STATUS_FROM"),
                         relation=policy.RELATIONS[relation], name=mask_name(other.name),
                         status=applications.STATUS_LABELS[app.status], receipt_no=app.receipt_no,
                         date=f"{app.created_at.astimezone(SHANGHAI):%m月%d日}", reason=reason))
    return "\n".join(lines)


def usage(ctx: Ctx) -> str:
    """共济记录: the person's latest family payments (as GET /usage reads them), who paid for whom, masked."""
    person = ctx.person
    rows, more = usage_records.of_person(person, usage_records.Period(), USAGE_SHOWN, None)
    if not rows:
        return say("USAGE_NONE")
    lines = [say("USAGE_HEAD")]
    for n, r in enumerate(rows, 1):
        paid_for_other = r.authorizer_id == person.id
        relation = r.binding.relation if paid_for_other else policy.INVERSE[r.binding.relation]
        other = r.beneficiary if paid_for_other else r.authorizer
        lines.append(say("USAGE_LINE_FOR" if paid_for_other else "USAGE_LINE_FROM", n=n,
                         date=f"{r.created_at.astimezone(SHANGHAI):%m月%d日}", relation=policy.RELATIONS[relation],
                         name=mask_name(other.name), place=r.institution.name, amount=policy.money(r.amount_fen),
                         refunded=say("USAGE_REFUNDED") if r.refunded_at else ""))
    if more:
        lines.append(say("USAGE_MORE"))
    return "\n".join(lines)


# question intent → its answer (text, and the options offered after it)
def answer(ctx: Ctx, intent: str) -> Reply:
    if intent == "consent":
        return consent_offer(ctx)
    if intent == "faq_family_account":
        return Reply(say("FAMILY_ACCOUNT"), (opt("family_binding", "办理家庭共济"), MENU_OPTION))
    text = {"faq_conditions": conditions, "faq_materials": materials_needed, "faq_scope": scope,
            "faq_impersonation": lambda c: say("IMPERSONATION"), "application_status": status,
            "usage_query": usage, "human": lambda c: say("HUMAN")}[intent](ctx)
    return Reply(text, (MENU_OPTION,))

