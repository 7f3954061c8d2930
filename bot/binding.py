"""The 亲情账号绑定 wizard: eligibility (R1) → relation → name → ID number → beneficiary check (R2/R3/R5) →
proof → monthly limit → summary → submit. Every rule is the policy engine's; every refusal its code.

    step        slot        asks                                  then
    relation    relation    关系 (options from the region policy)  name
    name        name        家人姓名                               id_number
    id_number   id_number   身份证号 (checksum, not himself, age)  check → proof
    proof       proof       关系证明 (upload / 跳过 if registry)     limit
    limit       limit       每月上限 (元, or 不限)                   summary
    summary     —           确认提交 / 修改… / 取消                  submit

After a slot validates, the wizard walks on to the next step; once the summary has been shown, or after fixing
what a refusal sent him back to, it goes to the first step whose slot is still empty, else to the summary (so a
correction from the summary re-asks only that slot, then re-checks what depends on it: a new relation re-checks
the ID's birth date, and any of relation, name or ID re-runs the beneficiary check).
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from api import idnumber, policy
from api.errors import ApiError
from api.masking import mask_id
from api.messages import message
from api.services import applications, materials, menu, people
from api.services.logins import normalize_name
from bot.catalogue import say
from bot.dialog import Option, Reply
from bot.intents import looks_like_question
from bot.machine import Ctx, Finish, Flow, Goto, Invalid, Said, Stay, Step, opt

ORDER = ("relation", "name", "id_number", "proof", "limit")

# What people call their relatives, to the engine's relation values (R3). In-laws map to a value the engine
# refuses as RELATION_UNKNOWN.
RELATION_WORDS = {
    "spouse": ("配偶", "老伴", "老婆", "老公", "爱人", "妻子", "丈夫", "媳妇", "太太", "先生"),
    "parent": ("父母", "爸爸", "妈妈", "父亲", "母亲", "爸", "妈", "老爸", "老妈", "爹", "娘"),
    "child": ("子女", "儿子", "女儿", "孩子", "闺女"),
    "sibling": ("兄弟姐妹", "哥哥", "姐姐", "弟弟", "妹妹", "兄弟", "姐妹"),
    "grandparent": ("祖父母", "爷爷", "奶奶", "祖父", "祖母"),
    "maternal_grandparent": ("外祖父母", "外公", "外婆", "姥姥", "姥爷", "外祖父", "外祖母"),
    "grandchild": ("孙子女", "孙子", "孙女"),
    "maternal_grandchild": ("外孙子女", "外孙", "外孙女"),
    "in_law": ("岳父", "岳母", "公公", "婆婆", "丈人", "丈母娘", "儿媳", "女婿", "儿媳妇", "岳父母", "公婆"),
}
_WORD_TO_RELATION = {w: r for r, words in RELATION_WORDS.items() for w in words}
_NAME = re.compile(r"^[\u3400-\u9fffA-Za-z·]{2,30}$")
_MATERIAL_ID = re.compile(r"^[0-9a-f]{32}$")
_AMOUNT = re.compile(r"^(?:人民币|¥|￥)?([0-9]+(?:\.[0-9]{1,2})?)(?:元|块|块钱|rmb)?$")
_UNLIMITED = {"不限", "不限额", "不限制", "不设", "不设了", "不用", "不需要", "没有", "无", "无上限", "unlimited"}
_MAX_FEN = 10 ** 10  # the API's bound on an amount


# --- what the wizard reads ------------------------------------------------------------------------------------

def _policy(ctx: Ctx) -> policy.Policy | None:
    if "policy" not in ctx.cache:
        ctx.cache["policy"] = people.policy_or_none(ctx.person.region_code)
    return ctx.cache["policy"]


def _relation_label(value: str) -> str:
    return policy.RELATIONS.get(value, value)


def _edit_options(ctx: Ctx) -> tuple[Option, ...]:
    return (opt("back"), opt("cancel"))


# --- start: eligibility (R1) --------------------------------------------------------------------------------

def start(ctx: Ctx) -> Finish | Goto:
    code = menu.binding_refusal(ctx.person)
    if code:
        return Finish((say("NOT_ELIGIBLE", reason=message(code)),))
    return Goto("relation")


# --- relation -----------------------------------------------------------------------------------------------

def ask_relation(ctx: Ctx) -> Reply:
    allowed = [r for r in policy.RELATIONS if r in _policy(ctx).relations]
    return Reply(say("ASK_RELATION", relations="、".join(policy.RELATIONS[r] for r in allowed)),
                 tuple(opt(r, policy.RELATIONS[r]) for r in allowed) + (opt("cancel"),))


def take_relation(ctx: Ctx, said: Said) -> Invalid | Goto:
    word = said.value or said.text
    relation = word if word in policy.RELATIONS else _WORD_TO_RELATION.get(word)
    if relation is None:
        relation = next((r for w, r in sorted(_WORD_TO_RELATION.items(), key=lambda i: -len(i[0]))
                         if len(w) > 1 and w in said.text), None)
    if relation is None:
        return Invalid(say("RELATION_WORD_UNKNOWN"))
    code = policy.relation_choice_refusal(_policy(ctx), relation)
    if code:
        return Invalid(message(code) + ("\n" + say("IN_LAW") if relation == "in_law" else ""))
    ctx.dialog.slots["relation"] = relation
    return after(ctx, "relation")


# --- name ---------------------------------------------------------------------------------------------------

def ask_name(ctx: Ctx) -> Reply:
    return Reply(say("ASK_NAME"), _edit_options(ctx))


def take_name(ctx: Ctx, said: Said) -> Invalid | Goto:
    name = normalize_name(said.raw)
    if said.value or not _NAME.match(name) or looks_like_question(said.raw):
        return Invalid(say("NAME_INVALID"))
    ctx.dialog.slots["name"] = name
    return after(ctx, "name")


# --- id_number ----------------------------------------------------------------------------------------------

def ask_id_number(ctx: Ctx) -> Reply:
    return Reply(say("ASK_ID_NUMBER", name=ctx.dialog.slots.get("name", "家人")), _edit_options(ctx))


def take_id_number(ctx: Ctx, said: Said) -> Invalid | Goto:
    try:
        number = idnumber.normalize(said.text.upper())
    except idnumber.InvalidIdNumber:
        return Invalid(message("INVALID_ID_NUMBER"))
    if code := _number_refusal(ctx, ctx.dialog.slots["relation"], number):
        return Invalid(message(code))
    ctx.dialog.slots["id_number"] = number
    return after(ctx, "id_number")


def _number_refusal(ctx: Ctx, relation: str, number: str) -> str | None:
    mine = ctx.person.id_number
    return policy.beneficiary_number_refusal(relation, idnumber.birth_date(mine), idnumber.birth_date(number),
                                             number == mine, ctx.today)


# --- after a slot: re-checks, then the next empty step or the summary ----------------------------------------

# Where a refusal of the engine sends the person back to (the slot that must change), or None: the wizard ends.
_FIX_STEP = {
    "RELATION_UNKNOWN": "relation", "RELATION_NOT_ALLOWED": "relation", "SPOUSE_LIMIT": "relation",
    "PARENT_LIMIT": "relation", "RELATION_AGE_IMPLAUSIBLE": "id_number",
    "BENEFICIARY_NAME_MISMATCH": "name",
    "BENEFICIARY_NOT_INSURED": "id_number", "BENEFICIARY_NOT_NORMAL": "id_number",
    "BENEFICIARY_OUT_OF_AREA": "id_number", "SELF_BINDING": "id_number", "INVALID_ID_NUMBER": "id_number",
    "DUPLICATE_BINDING": "id_number", "DUPLICATE_APPLICATION": "id_number", "AUTHORIZER_LIMIT": "id_number",
    "MATERIAL_NOT_FOUND": "proof",
}


def after(ctx: Ctx, slot: str) -> Goto | Finish:
    slots = ctx.dialog.slots
    if slot == "relation" and "id_number" in slots:
        if code := _number_refusal(ctx, slots["relation"], slots["id_number"]):
            return refused(ctx, code)
    if slot in ("relation", "name", "id_number") and all(k in slots for k in ("relation", "name", "id_number")):
        code = applications.refusal_before_submit(ctx.person, slots["name"], slots["id_number"], slots["relation"])
        if code:
            return refused(ctx, code)
        if slot == "id_number" and "proof" not in slots:
            return Goto(_next_step(ctx, slot), (say("CHECKING_OK", name=slots["name"],
                                                    id_number=mask_id(slots["id_number"])),))
    return Goto(_next_step(ctx, slot))


def _next_step(ctx: Ctx, slot: str) -> str:
    slots = ctx.dialog.slots
    if slots.pop("fixing", False) or slots.get("reviewed"):
        return next((step for step in ORDER if step not in slots), "summary")
    return ORDER[ORDER.index(slot) + 1] if slot != ORDER[-1] else "summary"


def refused(ctx: Ctx, code: str) -> Goto | Finish:
    """The engine's refusal in its words; back to the slot that must change, or the end when none can help."""
    step = _FIX_STEP.get(code)
    if step is None:
        return Finish((say("REFUSED", reason=message(code)),))
    ctx.dialog.slots["fixing"] = True
    return Goto(step, (say("REFUSED", reason=message(code)) + "\n" + say("REFUSED_FIX"),), refusal=True)


# --- proof --------------------------------------------------------------------------------------------------

def _may_skip(ctx: Ctx) -> bool:
    return "registry" in _policy(ctx).proof


def ask_proof(ctx: Ctx) -> Reply:
    pol = _policy(ctx)
    if ctx.channel.proof == "mini_program":
        ctx.dialog.slots.setdefault("proof_since", ctx.now.isoformat())
        text = say("ASK_PROOF_MINI", app=pol.app_name or "医保", page="pages/materials/upload?purpose=bot")
        options = (opt("uploaded"),)
    else:
        text, options = say("ASK_PROOF_UPLOAD"), (opt("next"),)
    if _may_skip(ctx):
        text += say("PROOF_SKIP_HINT")
        options += (opt("skip"),)
    return Reply(text, options + (opt("back"), opt("cancel")))


def take_proof(ctx: Ctx, said: Said) -> Invalid | Goto | Stay:
    slots = ctx.dialog.slots
    pending = slots.setdefault("material_ids", [])
    word = said.value or said.text
    if word in ("skip", "跳过", "不上传", "没有"):
        if not _may_skip(ctx):
            return Invalid(say("PROOF_SKIP_NOT_ALLOWED"))
        slots["proof"], slots["material_ids"] = "registry", []
        return after(ctx, "proof")
    if word in ("next", "uploaded", "下一步", "已上传", "上传好了", "传好了", "好了", "完成"):
        if ctx.channel.proof == "mini_program":
            _collect_uploads(ctx)
        if not slots["material_ids"]:
            return Invalid(say("PROOF_NONE_YET"))
        slots["proof"] = "materials"
        return after(ctx, "proof")
    candidate = said.value or said.text
    if ctx.channel.proof == "option" and _MATERIAL_ID.match(candidate or ""):
        try:
            found = materials.owned_materials(ctx.person, [candidate])
        except ApiError as exc:
            return Invalid(message(exc.code))
        if candidate not in pending:
            pending.append(candidate)
        return Stay(_received(ctx, found))
    return Invalid(say("PROOF_NOT_A_MATERIAL"))


def _collect_uploads(ctx: Ctx) -> None:
    import datetime as dt
    since = dt.datetime.fromisoformat(ctx.dialog.slots.get("proof_since", ctx.now.isoformat()))
    for material in materials.uploaded_since(ctx.person, since):
        if material.id not in ctx.dialog.slots["material_ids"]:
            ctx.dialog.slots["material_ids"].append(material.id)


def _received(ctx: Ctx, latest) -> str:
    kinds = "、".join(dict.fromkeys(policy.MATERIAL_KINDS.get(m.kind, m.kind) for m in latest))
    return say("PROOF_RECEIVED", kinds=kinds, count=len(ctx.dialog.slots["material_ids"]))


# --- limit --------------------------------------------------------------------------------------------------

def ask_limit(ctx: Ctx) -> Reply:
    return Reply(say("ASK_LIMIT"), (opt("unlimited"), opt("back"), opt("cancel")))


def take_limit(ctx: Ctx, said: Said) -> Invalid | Goto:
    word = said.value or said.text
    if word in _UNLIMITED:
        ctx.dialog.slots["limit"] = None
        return after(ctx, "limit")
    found = _AMOUNT.match(said.text.replace(",", "").replace("，", ""))
    if not found:
        return Invalid(say("LIMIT_INVALID"))
    try:
        fen = int(Decimal(found.group(1)) * 100)
    except InvalidOperation:
        return Invalid(say("LIMIT_INVALID"))
    if fen <= 0:
        return Invalid(say("LIMIT_NOT_POSITIVE"))
    if fen > _MAX_FEN:
        return Invalid(say("LIMIT_TOO_LARGE"))
    ctx.dialog.slots["limit"] = fen
    return after(ctx, "limit")


def _yuan(fen: int) -> str:
    return f"{fen // 100:,}" if fen % 100 == 0 else f"{fen / 100:,.2f}"


# --- summary and submit -------------------------------------------------------------------------------------

def ask_summary(ctx: Ctx) -> Reply:
    s = ctx.dialog.slots
    s["reviewed"] = True
    proof = say("PROOF_REGISTRY") if s["proof"] == "registry" else say("PROOF_UPLOADED", count=len(s["material_ids"]))
    limit = say("NO_LIMIT") if s["limit"] is None else say("YUAN", amount=_yuan(s["limit"]))
    text = say("SUMMARY", relation=_relation_label(s["relation"]), name=s["name"], id_number=mask_id(s["id_number"]),
               proof=proof, limit=limit)
    edits = ("edit:relation", "edit:name", "edit:id_number", "edit:proof", "edit:limit")
    return Reply(text, (opt("confirm"),) + tuple(opt(e) for e in edits) + (opt("cancel"),))


_EDIT_WORDS = {"修改关系": "relation", "改关系": "relation", "修改姓名": "name", "改姓名": "name", "改名字": "name",
               "修改身份证号": "id_number", "修改身份证": "id_number", "改身份证": "id_number",
               "修改材料": "proof", "改材料": "proof", "修改限额": "limit", "改限额": "limit", "修改上限": "limit"}


def take_summary(ctx: Ctx, said: Said) -> Invalid | Goto | Finish:
    word = said.value or said.text
    if word.startswith("edit:") and word[5:] in ORDER:
        return Goto(word[5:])
    if word in _EDIT_WORDS:
        return Goto(_EDIT_WORDS[word])
    if word in ("confirm", "确认提交", "确认", "提交", "对", "是", "没问题", "好"):
        return submit(ctx)
    return Invalid(say("REASK_SUMMARY"))


def submit(ctx: Ctx) -> Goto | Finish:
    s = ctx.dialog.slots
    data = {"beneficiary_name": s["name"], "beneficiary_id_number": s["id_number"], "relation": s["relation"],
            "monthly_limit_fen": s["limit"]}
    try:
        proofs = materials.owned_materials(ctx.person, s["material_ids"]) if s["material_ids"] else []
        app = applications.submit(ctx.person, data, channel=ctx.channel.submit_channel, materials=proofs)
    except ApiError as exc:  # what changed since the check (a concurrent application, a spent balance…)
        return refused(ctx, exc.code)
    return Finish((say("SUBMITTED", receipt_no=app.receipt_no),))


FLOW = Flow("family_binding", "亲情账号绑定", start, {
    "relation": Step(ask_relation, take_relation, "REASK_RELATION", "HELP_RELATION"),
    "name": Step(ask_name, take_name, "REASK_NAME", "HELP_NAME", numbers=False),
    "id_number": Step(ask_id_number, take_id_number, "REASK_ID_NUMBER", "HELP_ID_NUMBER", numbers=False),
    "proof": Step(ask_proof, take_proof, "REASK_PROOF", "HELP_PROOF"),
    "limit": Step(ask_limit, take_limit, "REASK_LIMIT", "HELP_LIMIT", numbers=False),
    "summary": Step(ask_summary, take_summary, "REASK_SUMMARY", "HELP_SUMMARY"),
})
