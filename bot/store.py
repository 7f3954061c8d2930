"""Where dialogs live: the app's Redis, one key per (channel, person) with a 30-minute idle expiry, a 24-hour
draft of a flow under way (继续上次办理), and a short lock so that one person's messages take turns.

A turn costs two round trips: the lock is taken and the dialog read in one pipeline, and the dialog written and
the lock released in another (in that order; the release only if the lock is still ours, as Redis documents for
single-instance locks).
"""
from __future__ import annotations

import logging
import secrets
import time
from contextlib import contextmanager

from bot.dialog import Dialog, StateError

log = logging.getLogger(__name__)

IDLE_SECONDS = 30 * 60
DRAFT_SECONDS = 24 * 3600
LOCK_MS = 10_000           # the longest a turn may hold the lock (a crashed holder frees it then)
LOCK_WAIT_SECONDS = 5      # the longest a message waits for the previous one of the same person
FLOWS_WITH_DRAFT = ("family_binding", "family_unbinding")
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class Busy(Exception):
    """The previous message of the same dialog is still being handled after LOCK_WAIT_SECONDS."""


class DialogStore:
    def __init__(self, redis, channel: str, person_id: int, idle_seconds: int = IDLE_SECONDS,
                 draft_seconds: int = DRAFT_SECONDS, lock_wait_seconds: float = LOCK_WAIT_SECONDS):
        self.redis = redis
        base = f"bot:{channel}:{person_id}"
        self.key, self.draft_key, self.lock_key = f"{base}:dialog", f"{base}:draft", f"{base}:lock"
        self.idle_seconds, self.draft_seconds, self.lock_wait_seconds = idle_seconds, draft_seconds, lock_wait_seconds
        self._token: str | None = None
        self._read: tuple = (None, None)

    @contextmanager
    def lock(self):
        """Holds the dialog's lock for the block (waiting up to LOCK_WAIT_SECONDS, else Busy); the dialog is read
        in the same round trip. Leaving the block without `save` releases the lock alone."""
        token, deadline, pause = secrets.token_hex(8), time.monotonic() + self.lock_wait_seconds, 0.002
        while True:
            with self.redis.pipeline(transaction=False) as pipe:
                pipe.set(self.lock_key, token, nx=True, px=LOCK_MS)
                pipe.mget(self.key, self.draft_key)
                taken, read = pipe.execute()
            if taken:
                break
            if time.monotonic() > deadline:
                raise Busy()
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        self._token, self._read = token, tuple(read)
        try:
            yield
        finally:
            if self._token is not None:  # not released by save()
                self.redis.eval(_RELEASE, 1, self.lock_key, self._token)
                self._token = None

    def load(self) -> tuple[Dialog, Dialog | None]:
        """(the dialog, None), or (a fresh dialog, the draft) when the dialog lapsed while a flow was under way."""
        raw, draft = self._read
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
        """Stores the dialog for IDLE_SECONDS (a flow under way also as the draft, for DRAFT_SECONDS), then releases
        the lock, in one round trip."""
        raw = dialog.dumps()
        with self.redis.pipeline(transaction=False) as pipe:
            pipe.set(self.key, raw, ex=self.idle_seconds)
            if dialog.intent in FLOWS_WITH_DRAFT and dialog.step:
                pipe.set(self.draft_key, raw, ex=self.draft_seconds)
            elif drop_draft:
                pipe.delete(self.draft_key)
            if self._token is not None:
                pipe.eval(_RELEASE, 1, self.lock_key, self._token)
            pipe.execute()
        self._token = None
