"""R14 — automatic end: a registry change that leaves a binding's people no longer qualifying ends the binding.

The registry import calls `sweep` with the people whose insurance fields (type, status, region) it changed, in
the import file's own transaction: the change and its consequences commit together or not at all. Each active
binding of those people is asked `policy.binding_end_code` (the authorizer's region policy decides: 西安 keeps a
paused authorizer's bindings, `end_on_pause = false`); those that no longer qualify become `ended` with the code,
and pending applications of the same pairs are rejected with it. Both people are told, in plain words, why and how
to bind again; the notices are delivered by jobs enqueued after the commit.

Written for 10,000 changes in one import: a handful of set-based statements per 1,000 bindings, never one ORM
object per row. Settlement does not wait for this sweep: the engine refuses to pay through a binding whose people
no longer qualify (`policy.family_source_available`), so nothing is paid between a change and its sweep.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from types import SimpleNamespace

from sqlalchemy import insert, or_, select, update

from api import jobs, policy
from api.extensions import db
from api.masking import mask_name
from api.messages import message
from api.models import Application, ApplicationEvent, Binding, Notification, Person, new_id, utcnow
from api.services import notifications, tx
from api.services.people import policies_of

CHUNK = 1000
NOTICES_PER_JOB = 100  # a delivery job stays well inside the job timeout

# how to bind again, by cause: said to both people
AGAIN = {
    "AUTHORIZER_INSURANCE_CHANGED": "授权人恢复正常参加职工医保后，可由授权人在“家庭共济”中重新申请绑定。",
    "BENEFICIARY_INSURANCE_CHANGED": "共济人员恢复正常参保后，可由授权人在“家庭共济”中重新申请绑定。",
    "OUT_OF_AREA": "共济人员的参保地回到政策允许的范围后可重新申请绑定；也可由与其在同一地区参加职工医保的近亲属申请绑定。",
}


@dataclass
class SweepResult:
    ended: dict[str, int] = field(default_factory=dict)     # end code -> bindings ended
    rejected: dict[str, int] = field(default_factory=dict)  # end code -> pending applications rejected
    notices: int = 0

    @property
    def total_ended(self) -> int:
        return sum(self.ended.values())


def _chunks(items: list, size: int = CHUNK):
    for start in range(0, len(items), size):
        yield items[start:start + size]


def sweep(person_ids: Iterable[int]) -> SweepResult:
    """Ends the active bindings and rejects the pending applications of these people that no longer qualify.

    Runs inside the caller's transaction (it neither commits nor rolls back); its notices go out after the
    caller's commit (tx.within_callers_transaction), or with the caller's unit of work when there is one.
    """
    ids = sorted(set(person_ids))
    result = SweepResult()
    if not ids:
        return result
    bt, at = Binding.__table__, Application.__table__
    links = []  # (kind, id, authorizer_id, beneficiary_id, relation, receipt_no)
    for chunk in _chunks(ids):
        links += [("binding", *row, None) for row in db.session.execute(
            select(bt.c.id, bt.c.authorizer_id, bt.c.beneficiary_id, bt.c.relation)
            .where(bt.c.status == "active", or_(bt.c.authorizer_id.in_(chunk), bt.c.beneficiary_id.in_(chunk))))]
        links += [("application", *row) for row in db.session.execute(
            select(at.c.id, at.c.authorizer_id, at.c.beneficiary_id, at.c.relation, at.c.receipt_no)
            .where(at.c.status.in_(policy.PENDING_APPLICATION),
                   or_(at.c.authorizer_id.in_(chunk), at.c.beneficiary_id.in_(chunk))))]
    if not links:
        return result
    links = list({(kind, link_id): (kind, link_id, *rest) for kind, link_id, *rest in links}.values())

    people = _people({pid for link in links for pid in (link[2], link[3])})
    policies = policies_of({people[link[2]].region_code for link in links})
    by_code: dict[tuple[str, str], list[tuple]] = {}
    for link in links:
        a, b = people[link[2]], people[link[3]]
        code = policy.binding_end_code(policies.get(a.region_code[:2]), a.facts, b.facts)
        if code:
            by_code.setdefault((link[0], code), []).append(link)
    if not by_code:
        return result

    now = utcnow()
    notices: list[dict] = []
    events: list[dict] = []
    for (kind, code), group in sorted(by_code.items()):
        done: set[str] = set()
        for chunk in _chunks(group):
            chunk_ids = [link[1] for link in chunk]
            if kind == "binding":  # conditional: a revocation committed meanwhile stays a revocation
                stmt = (update(bt).where(bt.c.id.in_(chunk_ids), bt.c.status == "active")
                        .values(status="ended", end_code=code, ended_at=now).returning(bt.c.id))
            else:
                stmt = (update(at).where(at.c.id.in_(chunk_ids), at.c.status.in_(policy.PENDING_APPLICATION))
                        .values(status="rejected", reason_code=code, decided_at=now, updated_at=now,
                                review_due_at=None, lease_until=None).returning(at.c.id))
            done.update(db.session.execute(stmt, execution_options={"synchronize_session": False}).scalars())
        moved = [link for link in group if link[1] in done]
        (result.ended if kind == "binding" else result.rejected)[code] = len(moved)
        for link in moved:
            notices += _notices(kind, code, link, people[link[2]], people[link[3]], now)
            if kind == "application":
                events.append({"application_id": link[1], "status": "rejected", "at": now, "actor": "system",
                               "reason_code": code, "reason": message(code)})
    for chunk in _chunks(events):
        db.session.execute(insert(ApplicationEvent.__table__), chunk)
    _write_notices(notices)
    result.notices = len(notices)
    return result


@dataclass
class _Someone:
    id: int
    name: str
    region_code: str
    facts: policy.PersonFacts


def _people(ids: set[int]) -> dict[int, _Someone]:
    pt = Person.__table__
    found = {}
    for chunk in _chunks(sorted(ids)):
        for row in db.session.execute(select(pt.c.id, pt.c.id_number, pt.c.name, pt.c.insurance_type, pt.c.status,
                                             pt.c.region_code).where(pt.c.id.in_(chunk))):
            # balances play no part in R14 (an empty account ends nothing), so none are read
            found[row.id] = _Someone(row.id, row.name, row.region_code, policy.PersonFacts(
                id_number=row.id_number, insurance_type=row.insurance_type, status=row.status,
                region_code=row.region_code))
    return found


def _notices(kind: str, code: str, link: tuple, a: _Someone, b: _Someone, now) -> list[dict]:
    """What the authorizer and the beneficiary are told: what ended, why, and how to bind again."""
    _, link_id, _, _, relation, receipt_no = link
    to_a = f"【{policy.RELATIONS[relation]} {mask_name(b.name)}】"
    from_b = f"【{policy.RELATIONS[policy.INVERSE[relation]]} {mask_name(a.name)}】"
    why = f"{message(code)}。{AGAIN[code]}"
    if kind == "binding":
        title = "家庭共济关系已自动终止"
        texts = (f"您与{to_a}的家庭共济关系已自动终止：{why}",
                 f"{from_b}与您的家庭共济关系已自动终止，此后不能再使用其个人账户支付：{why}")
        extra = {"binding_id": link_id, "application_id": None, "kind": "binding_ended"}
    else:
        title = "家庭共济申请未通过"
        texts = (f"您为{to_a}提交的家庭共济申请（受理编号 {receipt_no}）未通过：{why}",
                 f"{from_b}为您提交的家庭共济申请未通过：{why}")
        extra = {"binding_id": None, "application_id": link_id, "kind": "application_rejected"}
    return [{"id": new_id(), "person_id": person.id, "title": title, "body": body, "created_at": now, **extra}
            for person, body in ((a, texts[0]), (b, texts[1]))]


def _write_notices(notices: list[dict]) -> None:
    """The notices as pending inbox rows, in the caller's transaction; delivered by jobs after its commit (and by
    the sweeper, `redeliver_pending`, should Redis be away then)."""
    if not notices:
        return
    persons = [SimpleNamespace(id=pid) for pid in sorted({n["person_id"] for n in notices})]
    channels = {}
    for chunk in _chunks(persons):
        channels.update(notifications.channels_for(chunk))
    for notice in notices:
        if notice["kind"] not in notifications.KINDS:
            raise ValueError(f"unknown notification kind {notice['kind']!r}")
        notice.update(channel=channels[notice["person_id"]], delivery_status="pending", attempts=0)
    for chunk in _chunks(notices):
        db.session.execute(insert(Notification.__table__), chunk)
    with tx.within_callers_transaction() as unit:
        ids = [n["id"] for n in notices]
        for chunk in _chunks(ids, NOTICES_PER_JOB):
            unit.enqueue_after_commit(jobs.NOTIFICATIONS, jobs.DELIVER_NOTIFICATIONS, f"notify-batch-{chunk[-1]}",
                                      chunk)
