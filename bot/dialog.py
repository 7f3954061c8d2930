"""What one conversation remembers between messages (the dialog state), and what one turn answers.

The state is stored as JSON with a schema version: a state written by another version, or one that does not
parse, is never half-read: the conversation starts afresh.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

VERSION = 1


@dataclass(frozen=True)
class Option:
    label: str
    value: str


@dataclass(frozen=True)
class Reply:
    text: str
    options: tuple[Option, ...] = ()


class StateError(ValueError):
    """A stored state that is not one of this version."""


@dataclass
class Dialog:
    intent: str | None = None        # the flow under way (family_binding, family_unbinding, resume) or None
    step: str | None = None          # its current step
    slots: dict = field(default_factory=dict)  # answers that validated, by slot name
    history: list = field(default_factory=list)  # steps visited before this one, for 上一步
    attempts: int = 0                # invalid answers on the current step
    stage: str | None = None         # "strikes": after three invalid answers, 重试 / 人工服务 / 取消 is offered
    offered: list = field(default_factory=list)  # [label, value] of the options last shown ("回复数字")
    v: int = VERSION

    def dumps(self) -> str:
        return json.dumps(vars(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def loads(cls, raw: bytes | str) -> "Dialog":
        try:
            data = json.loads(raw)
        except (ValueError, TypeError):
            raise StateError("not JSON") from None
        if not isinstance(data, dict) or data.get("v") != VERSION:
            raise StateError("another version")
        try:
            dialog = cls(**data)
        except TypeError:
            raise StateError("unknown fields") from None
        kinds = ((dialog.intent, (str, type(None))), (dialog.step, (str, type(None))), (dialog.slots, dict),
                 (dialog.history, list), (dialog.attempts, int), (dialog.stage, (str, type(None))),
                 (dialog.offered, list))
        if not all(isinstance(value, kind) for value, kind in kinds) or \
                not all(isinstance(o, list) and len(o) == 2 and all(isinstance(x, str) for x in o)
                        for o in dialog.offered):
            raise StateError("bad field types")
        return dialog

    def in_flow(self) -> bool:
        return self.intent is not None and self.step is not None

    def end_flow(self) -> None:
        self.intent, self.step, self.slots, self.history, self.attempts, self.stage = None, None, {}, [], 0, None


@dataclass
class Turn:
    """What a turn answers: the replies in order, and where the dialog stands now."""
    replies: list[Reply]
    intent: str | None
    step: str | None
    expires_at: object  # an aware datetime: when the dialog lapses if nothing more is said
