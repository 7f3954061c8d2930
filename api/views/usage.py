"""Usage records (共济记录, R12) for every reader: the people concerned, the window, 12333 and self-service terminals."""
from flask import make_response, request
from marshmallow import Schema, fields, validate

from api import documents, policy
from api.auth import current_person, current_staff, person_required, staff_required
from api.masking import mask_id, mask_name
from api.pagination import PageArgs
from api.schemas import BEARER, JSON_BODY, PERSON_AUTH, QUERY, STAFF_AUTH, Blueprint, refusals
from api.services import settlements, usage
from api.timefmt import local_iso, local_now

blp = Blueprint("usage", __name__, url_prefix="/api/v1", description="共济记录查询：本人、窗口、12333 与自助终端")


class UsageArgs(PageArgs):
    from_ = fields.Date(data_key="from", load_default=None, metadata={"description": "起始日期（北京时间，含）"})
    to = fields.Date(load_default=None, metadata={"description": "截止日期（北京时间，含）"})


class Masked(Schema):
    name = fields.String()
    id_number = fields.String()


class InstitutionRef(Schema):
    code = fields.String()
    name = fields.String()


class UsageRecord(Schema):
    id = fields.String()
    at = fields.String(metadata={"description": "支付时间"})
    institution = fields.Nested(InstitutionRef)
    patient = fields.Nested(Masked, metadata={"description": "就医的共济人员（使用人）"})
    authorizer = fields.Nested(Masked, metadata={"description": "付款的授权人"})
    relation = fields.String(metadata={"description": "使用人是授权人的什么人"})
    relation_label = fields.String()
    role = fields.String(validate=validate.OneOf(["authorizer", "beneficiary", "staff", "terminal"]),
                         metadata={"description": "查询人在这笔记录中的身份"})
    amount_fen = fields.Integer()
    settlement_id = fields.String()
    binding_id = fields.String()
    refunded = fields.Boolean()
    refunded_at = fields.String(allow_none=True)


class UsagePage(Schema):
    items = fields.List(fields.Nested(UsageRecord))
    next_cursor = fields.String(allow_none=True)


def dump_record(r, viewer_id: int | None = None, role: str | None = None) -> dict:
    return {
        "id": r.id, "at": local_iso(r.created_at),
        "institution": {"code": r.institution.code, "name": r.institution.name},
        "patient": {"name": mask_name(r.beneficiary.name), "id_number": mask_id(r.beneficiary.id_number)},
        "authorizer": {"name": mask_name(r.authorizer.name), "id_number": mask_id(r.authorizer.id_number)},
        "relation": r.binding.relation, "relation_label": policy.RELATIONS[r.binding.relation],
        "role": role or ("authorizer" if viewer_id == r.authorizer_id else "beneficiary"),
        "amount_fen": r.amount_fen, "settlement_id": r.settlement_id, "binding_id": r.binding_id,
        "refunded": r.refunded_at is not None, "refunded_at": local_iso(r.refunded_at),
    }


def _period(args) -> usage.Period:
    return usage.Period(args["from_"], args["to"])


_PERIOD = "INVALID_PERIOD：起始日期晚于截止日期"


@blp.route("/usage")
@person_required
@blp.doc(security=BEARER)
@blp.arguments(UsageArgs, location="query")
@blp.response(200, UsagePage)
@refusals(blp, PERSON_AUTH, QUERY, s400=_PERIOD)
def my_usage(args):
    """本人可见的全部共济记录：作为授权人（为哪位家人支付）和作为使用人（用了谁的账户）, newest first."""
    person = current_person()
    rows, cursor = usage.of_person(person, _period(args), args["limit"], args["cursor"])
    return {"items": [dump_record(r, person.id) for r in rows], "next_cursor": cursor}


@blp.route("/bindings/<binding_id>/usage")
@person_required
@blp.doc(security=BEARER)
@blp.arguments(UsageArgs, location="query")
@blp.response(200, UsagePage)
@refusals(blp, PERSON_AUTH, QUERY, s400=_PERIOD, s404="NOT_FOUND：没有这个共济关系（或不是您的）")
def binding_usage(args, binding_id):
    """一个共济关系的使用记录（授权人和使用人都可查）."""
    person = current_person()
    rows, cursor = usage.of_binding(person, binding_id, _period(args), args["limit"], args["cursor"])
    return {"items": [dump_record(r, person.id) for r in rows], "next_cursor": cursor}


@blp.route("/staff/persons/<id_number>/usage")
@staff_required("clerk")
@blp.doc(security=BEARER)
@blp.arguments(UsageArgs, location="query")
@blp.response(200, UsagePage, description="JSON；请求头 Accept: application/pdf 时返回可打印的使用记录单（PDF）")
@refusals(blp, STAFF_AUTH, QUERY, s400=f"{_PERIOD}；INVALID_ID_NUMBER", s404="NOT_FOUND：没有此人，或不在本窗口的辖区")
def staff_usage(args, id_number):
    """窗口查询并打印参保人的共济记录（作为授权人和使用人）; each query and printout is audited."""
    staff = current_staff()
    person = usage.person_for_staff(staff, id_number)
    period = _period(args)
    if request.accept_mimetypes.best_match(["application/json", "application/pdf"]) == "application/pdf":
        records = usage.all_of_person(person, period)
        label = "全部记录" if not (period.start or period.end) else \
            f"{period.start or '最早的记录'} 至 {period.end or '今天'}"
        pdf = documents.usage_statement(person, records, usage.totals(records), label,
                                        local_now().strftime("%Y-%m-%d %H:%M"), staff.username)
        usage.record_statement(staff, person, "statement_printed")
        response = make_response(pdf)
        response.headers["Content-Type"] = "application/pdf"
        response.headers["Content-Disposition"] = "inline; filename=usage-statement.pdf"
        return response
    rows, cursor = usage.of_person(person, period, args["limit"], args["cursor"])
    usage.record_statement(staff, person, "queried")
    return {"items": [dump_record(r, role="staff") for r in rows], "next_cursor": cursor}


class SuspensionIn(Schema):
    suspended = fields.Boolean(required=True)
    reason = fields.String(required=True, validate=validate.Length(min=1, max=200))


class SuspensionOut(Schema):
    id_number = fields.String()
    name = fields.String()
    settlement_suspended = fields.Boolean()
    suspension_reason = fields.String(allow_none=True)


@blp.route("/staff/persons/<id_number>/settlement-suspension", methods=["POST"])
@staff_required("reviewer")
@blp.doc(security=BEARER)
@blp.arguments(SuspensionIn)
@blp.response(200, SuspensionOut)
@refusals(blp, STAFF_AUTH, JSON_BODY, s400="INVALID_ID_NUMBER", s404="NOT_FOUND：没有此人，或不在本人的辖区",
          s409="SUSPENSION_UNCHANGED：状态未变")
def suspension(data, id_number):
    """审核员恢复（或暂停）参保人的联网结算 (R9); audited, and the person is told."""
    staff = current_staff()
    person = settlements.set_suspension(staff, usage.person_for_staff(staff, id_number), data["suspended"],
                                        data["reason"].strip())
    return {"id_number": mask_id(person.id_number), "name": mask_name(person.name),
            "settlement_suspended": person.settlement_suspended, "suspension_reason": person.suspension_reason}


class TerminalIn(Schema):
    id_number = fields.String(required=True, validate=validate.Length(min=15, max=20))
    card_number = fields.String(required=True, validate=validate.Length(min=1, max=32))


class TerminalAnswer(UsagePage):
    person = fields.Nested(Masked)


@blp.route("/terminal/usage-query", methods=["POST"])
@blp.arguments(TerminalIn)
@blp.arguments(PageArgs, location="query")
@blp.response(200, TerminalAnswer)
@refusals(blp, JSON_BODY, QUERY, s404="PERSON_NOT_FOUND：身份证号与社保卡号不匹配（与查无此人的回答相同）",
          s429="RATE_LIMITED：每个身份证号、每台终端的查询次数有限",
          s503="SERVICE_UNAVAILABLE：查询次数限制所依赖的服务不可用，暂不受理（不会不限次数地受理）")
def terminal(data, page):
    """12333 / 自助终端: usage records with ID number + card number, masked."""
    person = usage.for_terminal(data["id_number"], data["card_number"])
    rows, cursor = usage.of_person(person, usage.Period(), page["limit"], page["cursor"])
    return {"person": {"name": mask_name(person.name), "id_number": mask_id(person.id_number)},
            "items": [dump_record(r, role="terminal") for r in rows], "next_cursor": cursor}
