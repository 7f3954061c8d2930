"""What people are told at each step of an application (申请进度通知), each from his own side, names masked."""
from __future__ import annotations

import datetime as dt

from api import policy
from api.masking import mask_name
from api.models import Application
from api.services import notifications
from api.timefmt import SHANGHAI

STATUS_LABELS = {
    "awaiting_consent": "待共济人确认", "submitted": "已提交", "reviewing": "审核中", "manual_review": "人工审核中", "approved": "审核通过",
    "rejected": "未通过", "withdrawn": "已撤回", "expired": "已过期",
}


def actor_label(actor: str) -> str:
    """Who moved an application, as its timeline shows it: applicant, beneficiary (R13 consent), system, staff:…"""
    return {"applicant": "申请人", "beneficiary": "共济人", "system": "系统"}.get(actor, "工作人员")


def _label(relation: str) -> str:
    return policy.RELATIONS.get(relation, relation)


def announce(app: Application, status: str, reason: str | None = None, channels: dict[int, str] | None = None,
             due: dt.datetime | None = None, binding_id: str | None = None, notice: str | None = None) -> None:
    """Tells the authorizer and the beneficiary what happened; an approval links to the binding it created.
    `notice` picks the words of a step that shares its status with another (R13: consent given, declined, expired)."""
    a, b = app.authorizer, app.beneficiary
    by = f"，预计{due.astimezone(SHANGHAI):%Y年%m月%d日}前完成" if due else ""
    until = f"{due.astimezone(SHANGHAI):%Y年%m月%d日 %H:%M}" if due else ""
    to_a = f"【{_label(app.relation)} {mask_name(b.name)}】"
    from_b = f"【{_label(policy.INVERSE[app.relation])} {mask_name(a.name)}】"
    texts = {
        "submitted": (f"您为{to_a}提交的家庭共济申请已受理，受理编号 {app.receipt_no}，审核结果将另行通知。",
                      f"{from_b}已申请将其职工医保个人账户与您家庭共济，审核结果将另行通知。"),
        "manual_review": (f"您为{to_a}申请的家庭共济需人工审核{by}，请耐心等待。",
                          f"{from_b}为您申请的家庭共济需人工审核{by}，请耐心等待。"),
        "approved": (f"您为{to_a}申请的家庭共济已审核通过，即日起可使用。",
                     f"{from_b}的职工医保个人账户已与您家庭共济。就医购药时请出示您本人的医保卡或医保电子凭证。"),
        "rejected": (f"您为{to_a}申请的家庭共济未通过审核：{reason}",
                     f"{from_b}为您申请的家庭共济未通过审核：{reason}"),
        "withdrawn": (f"您为{to_a}提交的家庭共济申请已撤回。", f"{from_b}已撤回为您申请的家庭共济。"),
        "expired": (f"您为{to_a}申请的家庭共济超过审核期限未完成，申请已失效，请重新申请。",
                    f"{from_b}为您申请的家庭共济已失效。"),
        # R13: the beneficiary's own consent (甘肃/海南/新疆: 16 and older)
        "awaiting_consent": (
            f"您为{to_a}提交的家庭共济申请已受理，受理编号 {app.receipt_no}。按本地规定需由对方本人确认同意，"
            f"请提醒对方在{until}前确认，逾期申请失效。",
            f"{from_b}申请将其职工医保个人账户与您家庭共济，需要您本人确认。请在{until}前回复“同意”或“不同意”"
            f"（小程序“办理进度”或在本服务号回复“同意”）。"),
        "consent_given": (f"{to_a}已同意您的家庭共济申请，申请进入审核，审核结果将另行通知。",
                          f"您已同意{from_b}的家庭共济申请，申请进入审核，审核结果将另行通知。"),
        "consent_declined": (f"{to_a}没有同意您的家庭共济申请，申请已结束。",
                             f"您已拒绝{from_b}的家庭共济申请，申请已结束。"),
        "consent_expired": (f"{to_a}未在规定期限内确认，您提交的家庭共济申请已失效，如需办理请重新申请。",
                            f"您未在规定期限内确认{from_b}的家庭共济申请，申请已失效。"),
    }
    title = f"家庭共济申请{STATUS_LABELS[status]}"
    to_authorizer, to_beneficiary = texts[notice or status]
    channels = channels or notifications.channels_for([a, b])
    for person, body in ((a, to_authorizer), (b, to_beneficiary)):
        notifications.notify(person, f"application_{status}", title, body, application_id=app.id,
                             binding_id=binding_id, channel=channels[person.id])
