"""The step machine: a flow is a table of named steps, each asking one question and taking one answer.

A step's `take` validates the answer and says where to go: `Goto` another step (its slot has validated),
`Invalid` (the reason, a short re-ask, an attempt spent: three on one step offer 重试 / 人工服务 / 取消), `Stay`
(acknowledged, same question), or `Finish` the flow. 取消 / 上一步 / 帮助 are handled before any step sees the
message (conversation.py).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Callable

from bot.catalogue import label, say
from bot.channels import BotChannel
from bot.dialog import Dialog, Option, Reply

MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Said:
    """One message: what was typed (`raw`, and normalized `text`) and the option it chose, if any (`value`:
    sent as an option, or the number or label of an option last offered)."""
    raw: str
    text: str
    value: str | None


@dataclass
class Ctx:
    """What a turn works with: the person, the channel, his dialog, today, and a cache of what was read."""
    person: object
    channel: BotChannel
    dialog: Dialog
    today: dt.date
    now: dt.datetime
    store: object = None        # the DialogStore (to read the draft on 继续上次办理)
    drop_draft: bool = False
    cache: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Goto:
    step: str
    say: tuple[str, ...] = ()
    refusal: bool = False  # sent back by a refusal: on the same step it spends an attempt like an invalid answer


@dataclass(frozen=True)
class Invalid:
    reason: str


@dataclass(frozen=True)
class Stay:
    say: str


@dataclass(frozen=True)
class Finish:
    say: tuple[str, ...]
    options: tuple[Option, ...] = ()


Result = Goto | Invalid | Stay | Finish


@dataclass(frozen=True)
class Step:
    ask: Callable[[Ctx], Reply]
    take: Callable[[Ctx, Said], Result]
    reask: str   # catalogue code of the short re-ask after an invalid answer
    help: str    # catalogue code of what 帮助 explains
    numbers: bool = True  # a bare number picks an offered option (not where the answer is a number: 金额, 身份证号)


@dataclass(frozen=True)
class Flow:
    intent: str
    title: str
    start: Callable[[Ctx], Result]   # Goto the first step, or Finish (not eligible, nothing to do)
    steps: dict[str, Step]


def opt(value: str, text: str | None = None) -> Option:
    return Option(text or label(value), value)


MENU_OPTION = opt("menu", "返回菜单")


def begin(ctx: Ctx, flow: Flow) -> list[Reply]:
    ctx.dialog.end_flow()
    ctx.dialog.intent = flow.intent
    return apply(ctx, flow, flow.start(ctx))


def ask(ctx: Ctx, flow: Flow) -> Reply:
    return flow.steps[ctx.dialog.step].ask(ctx)


def apply(ctx: Ctx, flow: Flow, result: Result) -> list[Reply]:
    d = ctx.dialog
    if isinstance(result, Invalid):
        d.attempts += 1
        if d.attempts >= MAX_ATTEMPTS:
            d.stage = "strikes"
            return [Reply(f"{result.reason}\n{say('STRIKES')}", (opt("retry"), opt("human"), opt("cancel")))]
        question = ask(ctx, flow)
        return [Reply(f"{result.reason}\n{say(flow.steps[d.step].reask)}", question.options)]
    if isinstance(result, Stay):
        return [Reply(result.say, ask(ctx, flow).options)]
    if isinstance(result, Finish):
        d.end_flow()
        ctx.drop_draft = True
        return [Reply("\n".join(result.say), result.options or (MENU_OPTION,))]
    if result.refusal and d.step == result.step:
        d.attempts += 1
        if d.attempts >= MAX_ATTEMPTS:
            d.stage = "strikes"
            return [Reply("\n".join(result.say) + f"\n{say('STRIKES')}", (opt("retry"), opt("human"), opt("cancel")))]
        return [Reply(text) for text in result.say] + [ask(ctx, flow)]
    if d.step is not None and d.step != result.step:
        d.history.append(d.step)
    d.step, d.attempts, d.stage = result.step, 0, None
    return [Reply(text) for text in result.say] + [ask(ctx, flow)]


def back(ctx: Ctx, flow: Flow) -> list[Reply]:
    d = ctx.dialog
    d.attempts, d.stage = 0, None
    if not d.history:
        return [Reply(say("FIRST_STEP")), ask(ctx, flow)]
    d.step = d.history.pop()
    return [Reply(say("BACK")), ask(ctx, flow)]


def help_for(ctx: Ctx, flow: Flow) -> list[Reply]:
    """帮助: what this step wants, then the question again; no attempt is spent."""
    return [Reply(say(flow.steps[ctx.dialog.step].help)), ask(ctx, flow)]
