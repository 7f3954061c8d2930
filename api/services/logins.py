"""Logins and staff users: channel accounts bound to persons by 实名认证; staff with hashed passwords, roles, regions."""
from __future__ import annotations

import functools
import logging
import re
import unicodedata

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from api import channels, idnumber
from api.errors import ApiError
from api.extensions import db
from api.masking import mask_id, mask_typed_username
from api.models import ChannelAccount, Person, StaffUser, utcnow
from api.services import audit
from api.services.people import person_by_id_number
from api.services.tx import unit_of_work

log = logging.getLogger(__name__)

STAFF_ROLES = {"clerk": "窗口经办人", "reviewer": "审核员", "admin": "管理员"}
MIN_PASSWORD_LENGTH = 8
# checked when the username is unknown, so a wrong username costs as long as a wrong password


@functools.cache
def _dummy_hash() -> str:
    """A hash to check unknown usernames against, so they take as long as known ones (made once, on first use)."""
    return generate_password_hash("not-a-password")

_MIDDLE_DOTS = re.compile(r"[•・．.‧∙⋅･]")


def normalize_name(name: str | None) -> str:
    """Names as people type them: full-width forms folded, spaces dropped, every middle dot the same (买买提·艾力)."""
    folded = unicodedata.normalize("NFKC", name or "")
    return _MIDDLE_DOTS.sub("·", re.sub(r"\s+", "", folded))


# --- persons ----------------------------------------------------------------------------------------------------

def login_person(channel: str, code: str, name: str | None = None, id_number: str | None = None) -> Person:
    """The person behind a channel login; the first login of an openid binds it by name + ID number (实名认证)."""
    openid = channels.get(channel).openid_for(code)
    account = db.session.scalar(
        select(ChannelAccount).where(ChannelAccount.channel == channel, ChannelAccount.openid == openid))
    if account is not None:
        if id_number:
            # details sent again must name the bound person, not quietly log in someone else
            _verify_realname(name, id_number, expected=account.person)
        with unit_of_work():
            account.last_login_at = utcnow()
        return account.person

    person = _verify_realname(name, id_number)
    try:
        with unit_of_work():
            db.session.add(ChannelAccount(channel=channel, openid=openid, person_id=person.id,
                                          last_login_at=utcnow()))
    except IntegrityError:
        # a concurrent first login of the same openid won: use its binding
        account = db.session.scalar(
            select(ChannelAccount).where(ChannelAccount.channel == channel, ChannelAccount.openid == openid))
        if account is None or account.person_id != person.id:
            raise ApiError("REALNAME_MISMATCH", 401) from None
        return account.person
    log.info("channel account bound: %s %s", channel, mask_id(person.id_number))
    return db.session.get(Person, person.id)


def person_for_openid(channel: str, openid: str) -> Person | None:
    """The person a prior login bound to this channel user id (openid), or None: nothing is bound by asking."""
    account = db.session.scalar(
        select(ChannelAccount).where(ChannelAccount.channel == channel, ChannelAccount.openid == openid[:128]))
    return account.person if account is not None else None


def _verify_realname(name: str | None, id_number: str | None, expected: Person | None = None) -> Person:
    if not id_number:
        raise ApiError("REALNAME_REQUIRED", 400, "id_number")
    if not name or not normalize_name(name):
        raise ApiError("REALNAME_REQUIRED", 400, "name")
    try:
        number = idnumber.normalize(id_number)
    except idnumber.InvalidIdNumber:
        raise ApiError("INVALID_ID_NUMBER", 400, "id_number") from None
    person = person_by_id_number(number)
    # one answer for "no such person" and "wrong name", so the endpoint does not tell who is insured
    if person is None or normalize_name(person.name) != normalize_name(name) or \
            (expected is not None and person.id != expected.id):
        log.warning("realname mismatch for %s", mask_id(number))
        raise ApiError("REALNAME_MISMATCH", 401)
    return person


# --- staff ------------------------------------------------------------------------------------------------------

def login_staff(username: str, password: str) -> StaffUser:
    staff = db.session.scalar(select(StaffUser).where(StaffUser.username == username))
    ok = check_password_hash(staff.password_hash if staff else _dummy_hash(), password)
    with unit_of_work():
        if staff is None or not ok or not staff.active:
            # a name no account has was typed wrongly: often a password or a phone number, kept masked
            audit.record(f"staff:{username if staff else mask_typed_username(username)}"[:64], "staff_login_failed")
            failed = True
        else:
            audit.record(f"staff:{username}"[:64], "staff_login", target=str(staff.id))
            failed = False
    if failed:
        raise ApiError("INVALID_CREDENTIALS", 401)
    return staff


class StaffError(ValueError):
    """A staff user that cannot be created; the message is for the operator (zh-CN)."""


def check_new_staff(username: str, roles: list[str], region_code: str | None = None) -> None:
    """What can be refused before a password is asked for: the username's form, the roles, the region, a duplicate."""
    # at most 32: "staff:<username>" is the actor of timelines and audit records
    if not re.fullmatch(r"[A-Za-z0-9_.@-]{2,32}", username or ""):
        raise StaffError("用户名须为 2–32 位字母、数字或 _ . @ -")
    unknown = sorted(set(roles) - STAFF_ROLES.keys())
    if unknown:
        raise StaffError(f"未知角色：{'、'.join(unknown)}；可用角色：{'、'.join(STAFF_ROLES)}")
    if not roles:
        raise StaffError(f"请至少指定一个角色（--role）：{'、'.join(STAFF_ROLES)}")
    if region_code is not None and not re.fullmatch(r"[1-9][0-9]", region_code):
        raise StaffError("--region 须为两位省级区划代码，如 44（广东）；不指定则为全国")
    if db.session.scalar(select(StaffUser.id).where(StaffUser.username == username)) is not None:
        raise StaffError(f"用户名 {username} 已存在")


def create_staff(username: str, password: str, roles: list[str], region_code: str | None = None) -> StaffUser:
    """A staff user; `region_code` (a province) scopes a clerk or reviewer to its insured, None means national."""
    check_new_staff(username, roles, region_code)
    if len(password or "") < MIN_PASSWORD_LENGTH:
        raise StaffError(f"密码至少 {MIN_PASSWORD_LENGTH} 位")
    staff = StaffUser(username=username, password_hash=generate_password_hash(password),
                      roles=sorted(set(roles), key=list(STAFF_ROLES).index), region_code=region_code, active=True)
    try:
        with unit_of_work():
            db.session.add(staff)
            audit.record("operator", "staff_created", target=username,
                         detail={"roles": staff.roles, "region_code": region_code})
    except IntegrityError:  # created meanwhile by someone else
        raise StaffError(f"用户名 {username} 已存在") from None
    return staff
