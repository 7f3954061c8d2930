"""Where dialogs live: the app's Redis, one key per (channel, person) with a 30-minute idle expiry, a 24-hour
draft of a flow under way (继续上次办理), and a short lock so that one person's messages take turns."""
from __future__ import annotations

import logging
from contextlib import contextmanager

from redis.exceptions import LockError

from bot.dialog import Dialog, StateError

log = logging.getLogger(__name__)

IDLE_SECONDS = 30 * 60
DRAFT_SECONDS = 24 * 3600
LOCK_SECONDS = 10          # the longest a turn may hold the lock (a crashed holder frees it then)
LOCK_WAIT_SECONDS = 5      # the longest a message waits for the previous one of the same person


class Busy(Exception):
    """The previous message of the same dialog is still being handled after LOCK_WAIT_SECONDS."""


class DialogStore:
    def __init__(self, redis, channel: str, person_id: int, idle_seconds: int = IDLE_SECONDS,
                 draft_seconds: int = DRAFT_SECONDS, lock_wait_seconds: float = LOCK_WAIT_SECONDS):
        self.redis = redis
        base = f"bot:{channel}:{person_id}"
        self.key, self.draft_key, self.lock_key = f"{base}:dialog", f"{base}:draft", f"{base}:lock"
        self.idle_seconds, self.draft_seconds, self.lock_wait_seconds = idle_seconds, draft_seconds, lock_wait_seconds

    @contextmanager
    def lock(self):
        lock = self.redis.lock(self.lock_key, timeout=LOCK_SECONDS, sleep=0.005,
                               blocking_timeout=self.lock_wait_seconds)
        if not lock.acquire():
            raise Busy()
        try:
            yield
        finally:
            try:
                lock.release()
            except LockError:  # held past LOCK_SECONDS and taken over: nothing of ours to release
                log.warning("bot dialog lock %s expired before release", self.lock_key)

    def load(self) -> tuple[Dialog, Dialog | None]:
        """(the dialog, None), or (a fresh dialog, the draft) when the dialog lapsed while a flow was under way."""
        raw, draft = self.redis.mget(self.key, self.draft_key)
        if raw is not None:
            try:
                return Dialog.loads(raw), None
            except StateError as exc:
                log.warning("bot dialog %s dropped: %s", self.key, exc)
                return Dialog(), None
        if draft is not None:
            try:
                return Dialog(), Dialog.loads(draft)
            except StateError:
                self.redis.delete(self.draft_key)
        return Dialog(), None

    def load_draft(self) -> Dialog | None:
        raw = self.redis.get(self.draft_key)
        try:
            return Dialog.loads(raw) if raw is not None else None
        except StateError:
            return None

    def save(self, dialog: Dialog, drop_draft: bool = False) -> None:
        """Stores the dialog for IDLE_SECONDS; a flow under way is also kept as the draft for DRAFT_SECONDS."""
        raw = dialog.dumps()
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(self.key, raw, ex=self.idle_seconds)
            if dialog.intent in ("family_binding", "family_unbinding") and dialog.step:
                pipe.set(self.draft_key, raw, ex=self.draft_seconds)
            elif drop_draft:
                pipe.delete(self.draft_key)
            pipe.execute()
