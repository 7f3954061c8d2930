"""The JSON channel (POST /api/v1/bot/messages): a turn as `{replies: [{text, options}], dialog}`."""
from __future__ import annotations

from api.masking import mask_text
from api.timefmt import local_iso
from bot.dialog import Turn


def render(turn: Turn) -> dict:
    # mask_text: no ID number in a reply, whatever a text echoed
    return {
        "replies": [{"text": mask_text(r.text), "options": [{"label": o.label, "value": o.value} for o in r.options]}
                    for r in turn.replies],
        "dialog": {"intent": turn.intent, "step": turn.step, "expires_at": local_iso(turn.expires_at)},
    }
