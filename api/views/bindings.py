"""Applications, bindings and the inbox of a person (mini-program API)."""
from flask.views import MethodView
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from werkzeug.routing import BaseConverter

from api import policy, ratelimit
from api.auth import current_channel, current_person, person_required
from api.masking import mask_id, mask_name
from api.messages import message
from api.pagination import PageArgs, paginate
from api.schemas import (BEARER, Money, JSON_BODY, PERSON_AUTH, QUERY, RELATIONS, REPLAYED_HEADER, ApplicationAccepted,
                         ApplicationDetail, ApplicationsAnswer, BindingOut, BindingsAnswer, Blueprint,
                         accepted, idempotency_key_parameter, InboxAnswer, NotificationOut, refusals,
                         replayed_header)
from api.services import applications, bindings, idempotency, materials, notifications
from api.services.application_notices import actor_label
from api.timefmt import local_iso, local_today

blp = Blueprint("bindings", __name__, url_prefix="/api/v1", description="家庭共济申请、共济关系与消息")


class BindingIdConverter(BaseConverter):
    """A binding's id in /bindings/<id>: any segment but `applications`, so that /bindings/applications is that
    collection for every method (PATCH there is a 405 whose Allow names only GET and POST, not a binding's 404)."""
    regex = r"(?!applications$)[^/]+"


@blp.record_once
def _binding_id_converter(state) -> None:  # before the routes below are added
    state.app.url_map.converters["binding_id"] = BindingIdConverter

def _not_before_today(value) -> None:
    if value < local_today():
        raise ValidationError("VALID_UNTIL_IN_PAST")


def ValidUntil(**kw) -> fields.Date:  # noqa: N802
    """The last day (Beijing time) a binding may be used (江苏: 授权起止日期); never a day already gone."""
    return fields.Date(allow_none=True, validate=_not_before_today, **kw)


class ApplicationIn(Schema):
    beneficiary_name = fields.String(required=True, validate=validate.Length(min=1, max=50))
    beneficiary_id_number = fields.String(required=True, validate=validate.Length(min=15, max=20))
    # documented as the enum it is; another value is the policy engine's 422 RELATION_UNKNOWN (after R1, R2)
    relation = fields.String(required=True, validate=validate.Length(min=1, max=30),
                             metadata={"enum": RELATIONS, "description": "the beneficiary is the caller's …"})
    material_ids = fields.List(fields.String(validate=validate.Length(max=64)), load_default=list,
                               validate=validate.Length(max=20))
    monthly_limit_fen = Money(load_default=None, allow_none=True)
    per_payment_limit_fen = Money(load_default=None, allow_none=True)
    valid_from = fields.Date(load_default=None, allow_none=True,
                             metadata={"description": "授权起始日期（北京时间，含）；不填为审核通过即生效"})
    valid_until = ValidUntil(load_default=None)

    @validates_schema
    def _window(self, data, **_kw):
        if policy.validity_window_refusal(data.get("valid_from"), data.get("valid_until")):
            raise ValidationError("VALID_FROM_AFTER_UNTIL", "valid_from")


class TimelineEntry(Schema):
    status = fields.String()
    status_label = fields.Function(lambda e: applications.STATUS_LABELS[e.status])
    at = fields.Function(lambda e: local_iso(e.at))
    actor = fields.String()
    actor_label = fields.Function(lambda e: actor_label(e.actor))
    reason_code = fields.String(allow_none=True)
    reason = fields.String(allow_none=True)


def _counterpart(app_or_binding, viewer_id: int) -> dict:
    """The other side, masked, with what he is to the viewer."""
    if viewer_id == app_or_binding.authorizer_id:
        other, relation = app_or_binding.beneficiary, app_or_binding.relation
    else:
        other, relation = app_or_binding.authorizer, policy.INVERSE[app_or_binding.relation]
    return {"name": mask_name(other.name), "id_number": mask_id(other.id_number), "relation": relation,
            "relation_label": policy.RELATIONS[relation]}


def dump_application(app, viewer_id: int, detail: bool = False) -> dict:
    """`relation` is what the counterpart is to the viewer, as in `counterpart` (the beneficiary sees 父母 where
    the authorizer applied for 子女)."""
    counterpart = _counterpart(app, viewer_id)
    body = {
        "id": app.id, "receipt_no": app.receipt_no, "status": app.status,
        "status_label": applications.STATUS_LABELS[app.status],
        "role": "authorizer" if viewer_id == app.authorizer_id else "beneficiary",
        "can_withdraw": viewer_id == app.authorizer_id and app.status in policy.PENDING_APPLICATION,
        "relation": counterpart["relation"], "relation_label": counterpart["relation_label"],
        "authorizer": {"name": mask_name(app.authorizer.name), "id_number": mask_id(app.authorizer.id_number)},
        "beneficiary": {"name": mask_name(app.beneficiary.name), "id_number": mask_id(app.beneficiary.id_number)},
        "counterpart": counterpart,
        "monthly_limit_fen": app.monthly_limit_fen, "per_payment_limit_fen": app.per_payment_limit_fen,
        "valid_from": app.valid_from.isoformat() if app.valid_from else None,
        "valid_until": app.valid_until.isoformat() if app.valid_until else None,
        "channel": app.channel, "reason_code": app.reason_code,
        "reason": None if app.reason_code is None else message(app.reason_code),
        "binding_id": app.binding_id,
        "created_at": local_iso(app.created_at), "decided_at": local_iso(app.decided_at),
        "review_due_at": local_iso(app.review_due_at), "consent_due_at": local_iso(app.consent_due_at),
    }
    if detail:
        body["timeline"] = TimelineEntry(many=True).dump(app.events)
        body["materials"] = [{"id": m.id, "kind": m.kind} for m in app.materials]
    return body


def dump_binding(b, viewer_id: int, used: dict) -> dict:
    """With what this month leaves of the limit, and whether the binding is in effect today (R10: a binding
    outside its validity window pays nothing, and says so with its dates)."""
    counterpart = _counterpart(b, viewer_id)
    spent = used.get(b.id, 0)
    in_effect = b.status == "active" and policy.in_effect(b.valid_from, b.valid_until, local_today())
    return {
        "id": b.id, "relation": counterpart["relation"], "relation_label": counterpart["relation_label"],
        "role": "authorizer" if viewer_id == b.authorizer_id else "beneficiary",
        "counterpart": counterpart, "status": b.status,
        "monthly_limit_fen": b.monthly_limit_fen, "per_payment_limit_fen": b.per_payment_limit_fen,
        "valid_from": b.valid_from.isoformat() if b.valid_from else None,
        "valid_until": b.valid_until.isoformat() if b.valid_until else None, "priority": b.priority,
        "in_effect": in_effect,
        "effect_note": None if in_effect or b.status != "active" else
        policy.validity_note(b.valid_from, b.valid_until, local_today()),
        "used_this_month_fen": spent,
        "remaining_this_month_fen": None if b.monthly_limit_fen is None else max(0, b.monthly_limit_fen - spent),
        "created_at": local_iso(b.created_at),
        "revoked_at": local_iso(b.revoked_at), "revoked_by": b.revoked_by,
        "end_code": b.end_code, "end_reason": message(b.end_code) if b.end_code else None,
        "ended_at": local_iso(b.ended_at),
    }


@blp.route("/bindings/applications")
class Applications(MethodView):
    @person_required
    @blp.doc(security=BEARER)
    @blp.arguments(ApplicationIn)
    @blp.response(202, ApplicationAccepted, headers=REPLAYED_HEADER)
    @blp.doc(parameters=[idempotency_key_parameter()])
    @refusals(blp, PERSON_AUTH, JSON_BODY,
              s400="INVALID_ID_NUMBER：身份证号码校验不通过；VALID_UNTIL_IN_PAST：有效期早于今天；"
                   "INVALID_INPUT 也用于过长的 Idempotency-Key",
              s409="DUPLICATE_BINDING、DUPLICATE_APPLICATION；"
                   "IDEMPOTENCY_KEY_REUSED（同一 Idempotency-Key 用于不同内容）",
              s422="政策引擎的拒绝代码: AUTHORIZER_*、BENEFICIARY_*、SELF_BINDING、RELATION_*、SPOUSE_LIMIT、PARENT_LIMIT、"
                   "BENEFICIARY_LIMIT、AUTHORIZER_LIMIT、MATERIAL_NOT_FOUND; REGION_NOT_COVERED 本地区尚未开通家庭共济 "
                   "(before 2026-11-25 this case answered OUT_OF_SCOPE, which now means only R7's area of use)",
              s429="RATE_LIMITED：每人每小时最多 20 次申请（重放不计）")
    def post(self, data):
        """提交家庭共济申请（授权人为本人）: 202 {id, status, receipt_no}; rules refused → 422 with the engine's code."""
        person = current_person()

        def act():  # not run for a replay: that answers what the first request got, and is not counted
            ratelimit.hit("apply", str(person.id), per_account="RATELIMIT_APPLY_PER_PERSON", per_ip=None)
            proof = materials.owned_materials(person, data["material_ids"]) if data["material_ids"] else []
            app = applications.submit(person, data, channel=current_channel(), materials=proof)
            return accepted(app), 202

        answer = idempotency.answer(f"person:{person.id}:applications", data, act)
        return answer.body, answer.status, replayed_header(answer.replayed)

    @person_required
    @blp.doc(security=BEARER)
    @blp.arguments(PageArgs, location="query")
    @blp.response(200, ApplicationsAnswer)
    @refusals(blp, PERSON_AUTH, QUERY)
    def get(self, args):
        """本人的申请（作为授权人或被申请的共济人员）, newest first. `relation` / `relation_label` are what the
        counterpart is to the caller, as in `counterpart` and in GET /bindings (a beneficiary sees 父母 where his
        parent applied for 子女); `authorizer` and `beneficiary` name the two sides as they are."""
        person = current_person()
        rows, cursor = paginate(applications.list_for(person), applications.Application, args["limit"],
                                args["cursor"])
        return {"items": [dump_application(a, person.id) for a in rows], "next_cursor": cursor}


@blp.route("/bindings/applications/<application_id>")
@person_required
@blp.doc(security=BEARER)
@blp.response(200, ApplicationDetail)
@refusals(blp, PERSON_AUTH, s404="NOT_FOUND：不存在，或与本人无关的申请")
def application_detail(application_id):
    """申请详情与办理进度 (timeline)."""
    person = current_person()
    return dump_application(applications.visible_to(person, application_id), person.id, detail=True)


@blp.route("/bindings/applications/<application_id>/withdraw", methods=["POST"])
@person_required
@blp.doc(security=BEARER)
@blp.response(200, ApplicationDetail)
@refusals(blp, PERSON_AUTH, s403="FORBIDDEN：只有授权人（申请人）可以撤回",
          s404="NOT_FOUND：不存在，或与本人无关的申请",
          s409="APPLICATION_WITHDRAWN：已撤回；APPLICATION_EXPIRED：已过期；APPLICATION_DECIDED：已有审核结果")
def withdraw(application_id):
    """申请人撤回（审核结果出来之前）."""
    person = current_person()
    return dump_application(applications.withdraw(person, application_id), person.id, detail=True)


class ConsentIn(Schema):
    agree = fields.Boolean(required=True, truthy={True}, falsy={False}, metadata={"description": "true 同意, false 不同意"})


@blp.route("/bindings/applications/<application_id>/consent", methods=["POST"])
@person_required
@blp.doc(security=BEARER)
@blp.arguments(ConsentIn)
@blp.response(200, ApplicationDetail)
@refusals(blp, PERSON_AUTH, JSON_BODY, s404="NOT_FOUND：不存在，或不是以本人为共济人员的申请（授权人本人也是 404）",
          s409="CONSENT_ANSWERED：已确认过或不在待确认状态；APPLICATION_WITHDRAWN：已撤回；"
               "APPLICATION_EXPIRED：已超过确认期限")
def consent(data, application_id):
    """共济人员本人确认（R13，甘肃/海南/新疆 16 周岁以上）: agree → 进入审核; disagree → 申请结束 (CONSENT_DECLINED)."""
    person = current_person()
    return dump_application(applications.answer_consent(person, application_id, data["agree"]), person.id,
                            detail=True)


@blp.route("/bindings")
@person_required
@blp.doc(security=BEARER)
@blp.response(200, BindingsAnswer)
@refusals(blp, PERSON_AUTH)
def list_bindings():
    """我授权的 (granted) 与授权给我的 (received) 共济关系."""
    person = current_person()
    mine = bindings.of_person(person)
    used = bindings.used_this_month([b.id for side in mine.values() for b in side])
    return {side: [dump_binding(b, person.id, used) for b in rows] for side, rows in mine.items()}


class BindingPatch(Schema):
    monthly_limit_fen = Money(allow_none=True)
    per_payment_limit_fen = Money(allow_none=True)
    valid_from = fields.Date(allow_none=True)
    valid_until = ValidUntil()
    priority = fields.Integer(allow_none=True, validate=validate.Range(min=1, max=99))


class RevokeIn(Schema):
    reason = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=200))


@blp.route("/bindings/<binding_id:binding_id>", methods=["PATCH"])
@person_required
@blp.doc(security=BEARER)
@blp.arguments(BindingPatch)
@blp.response(200, BindingOut)
@refusals(blp, PERSON_AUTH, JSON_BODY,
          s400="INVALID_INPUT 也用于空的修改；VALID_UNTIL_IN_PAST：有效期早于今天",
          s403="FORBIDDEN：限额与有效期只能由授权人设置，priority 只能由共济人员设置",
          s404="NOT_FOUND：不存在，或与本人无关的共济关系", s409="BINDING_NOT_ACTIVE：该共济关系已解除")
def patch_binding(data, binding_id):
    """授权人设置限额与有效期（null 为不限）；共济人员设置使用顺序 priority."""
    person = current_person()
    b = bindings.update_settings(person, binding_id, data)
    return dump_binding(b, person.id, bindings.used_this_month([b.id]))


@blp.route("/bindings/<binding_id:binding_id>/revoke", methods=["POST"])
@person_required
@blp.doc(security=BEARER)
@blp.arguments(RevokeIn, required=False)  # no body: no reason given
@blp.response(200, BindingOut)
@refusals(blp, PERSON_AUTH, JSON_BODY, s404="NOT_FOUND：不存在，或与本人无关的共济关系",
          s409="BINDING_NOT_ACTIVE：该共济关系已解除")
def revoke_binding(data, binding_id):
    """解除共济关系（授权人解绑或共济人员退出），立即生效，记录保留."""
    person = current_person()
    b = bindings.revoke(person, binding_id, data.get("reason"))
    return dump_binding(b, person.id, bindings.used_this_month([b.id]))


class InboxArgs(PageArgs):
    unread = fields.Boolean(load_default=False)


def dump_notification(n) -> dict:
    return {"id": n.id, "kind": n.kind, "title": n.title, "body": n.body, "application_id": n.application_id,
            "binding_id": n.binding_id, "created_at": local_iso(n.created_at), "read": n.read_at is not None,
            "read_at": local_iso(n.read_at)}


@blp.route("/notifications")
@person_required
@blp.doc(security=BEARER)
@blp.arguments(InboxArgs, location="query")
@blp.response(200, InboxAnswer)
@refusals(blp, PERSON_AUTH, QUERY)
def inbox(args):
    """消息中心, newest first; ?unread=true for unread only. `unread_count` counts all his unread messages."""
    person = current_person()
    rows, cursor = paginate(notifications.inbox(person, args["unread"]), notifications.Notification,
                            args["limit"], args["cursor"])
    return {"items": [dump_notification(n) for n in rows], "next_cursor": cursor,
            "unread_count": notifications.unread_count(person)}


@blp.route("/notifications/<notification_id>/read", methods=["POST"])
@person_required
@blp.doc(security=BEARER)
@blp.response(200, NotificationOut)
@refusals(blp, PERSON_AUTH, s404="NOT_FOUND：不存在，或不是本人的消息")
def read_notification(notification_id):
    """标记为已读 (again: no change)."""
    return dump_notification(notifications.mark_read(current_person(), notification_id))
