"""One turn of the conversation: load the person's dialog under its lock, handle the message, store the dialog.

Order of handling: an expired flow's offer (继续上次办理 / 重新开始) first; then the global commands 取消 / 上一步 /
帮助 / 人工服务 / 菜单; then, inside a flow, a question (answered, and the step asked again) before the step's
own answer; outside a flow, the intent of the message (intents.py) or the menu.
"""
from __future__ import annotations

import datetime as dt

from flask import current_app

from api.extensions import redis_client
from api.models import Person, utcnow
from api.timefmt import local_today
from bot import answers, binding, machine, unbinding
from bot.catalogue import say
from bot.channels import BotChannel
from bot.dialog import Dialog, Reply, Turn
from bot.intents import BY_ID, command, match, normalize, question
from bot.machine import Ctx, Said, opt
from bot.store import DRAFT_SECONDS, IDLE_SECONDS, LOCK_WAIT_SECONDS, DialogStore

FLOWS = {flow.intent: flow for flow in (binding.FLOW, unbinding.FLOW)}
RESUME = "resume"


def store_for(person_id: int, channel: BotChannel) -> DialogStore:
    config = current_app.config
    return DialogStore(redis_client(), channel.key, person_id,
                       idle_seconds=config.get("BOT_IDLE_SECONDS", IDLE_SECONDS),
                       draft_seconds=config.get("BOT_DRAFT_SECONDS", DRAFT_SECONDS),
                       lock_wait_seconds=config.get("BOT_LOCK_WAIT_SECONDS", LOCK_WAIT_SECONDS))


def handle(person: Person, channel: BotChannel, text: str | None = None, option: str | None = None,
           event: str | None = None) -> Turn:
    """Handles one message (`text`, or the `option` value tapped, or a channel `event` such as subscribe) of
    `person` on `channel`; raises store.Busy when his previous message holds the dialog too long."""
    store = store_for(person.id, channel)
    with store.lock():
        dialog, draft = store.load()
        now = utcnow()
        ctx = Ctx(person, channel, dialog, today=local_today(), now=now, store=store)
        replies = _turn(ctx, draft, _said(dialog, text, option), event)
        dialog.offered = [[o.label, o.value] for reply in replies for o in reply.options]
        store.save(dialog, drop_draft=ctx.drop_draft)
    return Turn(replies, dialog.intent, dialog.step, now + dt.timedelta(seconds=store.idle_seconds))


def _said(dialog: Dialog, text: str | None, option: str | None) -> Said:
    """The message, with the option it picks: a tapped option, or a number or label of the options last shown."""
    raw = (option if option is not None else text) or ""
    normal = normalize(raw)
    if option is not None and (option in {value for _, value in dialog.offered} or not option.isdigit()):
        return Said(raw.strip(), normal, option)
    numbers = dialog.stage == "strikes" or not (dialog.intent in FLOWS and dialog.step in FLOWS[dialog.intent].steps
                                                and not FLOWS[dialog.intent].steps[dialog.step].numbers)
    if numbers and normal.isascii() and normal.isdigit() and len(normal) <= 3 \
            and 1 <= int(normal) <= len(dialog.offered):
        return Said(raw.strip(), normal, dialog.offered[int(normal) - 1][1])
    for label, value in dialog.offered:
        if normalize(label) == normal and normal:
            return Said(raw.strip(), normal, value)
    return Said(raw.strip(), normal, None)


def _turn(ctx: Ctx, draft: Dialog | None, said: Said, event: str | None) -> list[Reply]:
    d = ctx.dialog
    if draft is not None and draft.intent in FLOWS and draft.step:
        d.end_flow()
        d.intent, d.step, d.slots = RESUME, "offer", {"title": FLOWS[draft.intent].title}
        return [Reply(say("RESUME_OFFER", title=FLOWS[draft.intent].title), (opt("resume"), opt("restart")))]
    if event == "subscribe":
        replies = [Reply(say("WELCOME"))]
        return replies + ([machine.ask(ctx, FLOWS[d.intent])] if d.intent in FLOWS and d.step
                          else [answers.menu_reply(ctx)])
    cmd = command(said.value or said.text)
    if d.intent == RESUME:
        return _resume(ctx, said, cmd)
    if d.intent in FLOWS and d.step in FLOWS[d.intent].steps:
        return _in_flow(ctx, FLOWS[d.intent], said, cmd)
    d.end_flow()  # nothing under way (or a flow this version no longer has)
    return _idle(ctx, said, cmd)


def _resume(ctx: Ctx, said: Said, cmd: str | None) -> list[Reply]:
    d = ctx.dialog
    word = said.value or said.text
    if word in ("resume", "继续", "继续上次办理", "继续办理", "接着办"):
        draft = ctx.store.load_draft()
        if draft is None or draft.intent not in FLOWS or draft.step not in FLOWS[draft.intent].steps:
            d.end_flow()
            return [Reply(say("DRAFT_GONE")), answers.menu_reply(ctx, greeting=False)]
        d.__dict__.update(draft.__dict__)
        d.attempts, d.stage = 0, None
        return [Reply(say("RESUMED")), machine.ask(ctx, FLOWS[d.intent])]
    d.end_flow()
    if word in ("restart", "重新开始", "重新办理", "重来") or cmd == "cancel":
        ctx.drop_draft = True
        return [Reply(say("RESTARTED")), answers.menu_reply(ctx, greeting=False)]
    return _idle(ctx, said, cmd)  # something else: answered; the draft stays for its 24 hours


def _in_flow(ctx: Ctx, flow: machine.Flow, said: Said, cmd: str | None) -> list[Reply]:
    d = ctx.dialog
    if cmd == "cancel":
        d.end_flow()
        ctx.drop_draft = True
        return [Reply(say("CANCELLED")), answers.menu_reply(ctx, greeting=False)]
    if cmd == "back":
        return machine.back(ctx, flow)
    if cmd == "help":
        return machine.help_for(ctx, flow)
    if cmd == "human":
        d.attempts, d.stage = 0, None
        return [Reply(say("HUMAN")), machine.ask(ctx, flow)]
    if cmd == "menu":
        return [Reply(say("IN_FLOW_MENU", title=flow.title)), machine.ask(ctx, flow)]
    if d.stage == "strikes" and (said.value or said.text) in ("retry", "重试", "再试", "再试一次"):
        d.attempts, d.stage = 0, None
        return [machine.ask(ctx, flow)]
    if said.value is not None:
        asked = BY_ID.get(said.value)
    else:
        asked = question(said.raw, said.text)
    if asked is not None:
        if asked.question:  # answered, then the step again; no attempt spent
            return [Reply(answers.answer(ctx, asked.id).text), machine.ask(ctx, flow)]
        return [Reply(say("IN_FLOW_MENU", title=flow.title)), machine.ask(ctx, flow)]
    return machine.apply(ctx, flow, flow.steps[d.step].take(ctx, said))


def _idle(ctx: Ctx, said: Said, cmd: str | None) -> list[Reply]:
    if cmd == "cancel":
        return [Reply(say("NOTHING_TO_CANCEL")), answers.menu_reply(ctx, greeting=False)]
    if cmd in ("back", "help"):
        return [Reply(say("IDLE_HELP")), answers.menu_reply(ctx, greeting=False)]
    if cmd == "menu":
        return [answers.menu_reply(ctx)]
    if answers.is_consent_answer(said.value):  # 同意 / 不同意 of a consent offer (R13)
        return answers.consent_answer(ctx, said.value)
    intent = BY_ID.get(said.value) if said.value is not None else None
    if intent is None:
        intent = match(said.text)
    if intent is None:
        return [Reply(say("NOT_UNDERSTOOD")), answers.menu_reply(ctx, greeting=False)]
    if intent.id == "menu":
        return [answers.menu_reply(ctx)]
    if intent.id in FLOWS:
        return machine.begin(ctx, FLOWS[intent.id])
    return [answers.answer(ctx, intent.id)]
