"""The 业务办理 menu (GET /services and the bot's menu): which services a person may use now, and why not."""
from __future__ import annotations

from sqlalchemy import or_, select

from api import policy
from api.extensions import db
from api.messages import message
from api.models import Binding, Person
from api.services import people

# the services in the order GET /services lists them
SERVICES = (
    ("family_binding", "亲情账号绑定"),
    ("family_unbinding", "亲情账号解绑"),
    ("usage_query", "共济记录查询"),
    ("application_status", "办理进度查询"),
)
TITLES = dict(SERVICES)


def has_active_binding(person_id: int) -> bool:
    return db.session.scalar(select(Binding.id).where(
        Binding.status == "active",
        or_(Binding.authorizer_id == person_id, Binding.beneficiary_id == person_id)).limit(1)) is not None


def binding_refusal(person: Person) -> str | None:
    """Why `person` may not apply as authorizer (R1, or his region has no policy), or None."""
    region = people.policy_or_none(person.region_code)
    return "REGION_NOT_COVERED" if region is None else policy.authorizer_refusal(region, people.facts_of(person))


def refusals(person: Person) -> dict[str, str | None]:
    """Each service's refusal code for `person` (None: available)."""
    return {
        "family_binding": binding_refusal(person),
        "family_unbinding": None if has_active_binding(person.id) else "NO_ACTIVE_BINDING",
        "usage_query": None,
        "application_status": None,
    }


def services_for(person: Person) -> list[dict]:
    """The menu as GET /services answers it: `[{id, title, available, reason}]`."""
    codes = refusals(person)
    return [{"id": sid, "title": title, "available": codes[sid] is None,
             "reason": message(codes[sid]) if codes[sid] else None} for sid, title in SERVICES]
