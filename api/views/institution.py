"""定点医药机构: settlement, 预结算, 退费, and the institution's own settlements (X-Institution-Key)."""
from flask import request
from marshmallow import Schema, fields, validate

from api import policy
from api.auth import current_institution, institution_required
from api.errors import ApiError
from api.pagination import PageArgs
from api.extensions import smorest
from api.schemas import (Money, JSON_BODY, QUERY, REPLAYED_HEADER, Blueprint, idempotency_key_parameter, refusals,
                         replayed_header)
from api.services import settlements, usage

blp = Blueprint("institution", __name__, url_prefix="/api/v1/institution", description="定点医药机构：结算、预结算、退费")
INSTITUTION_KEY = [{"institutionKey": []}]


@blp.record_once
def _document_key(_state) -> None:
    components = smorest.spec.components
    if "institutionKey" not in components.security_schemes:
        components.security_scheme("institutionKey", {
            "type": "apiKey", "in": "header", "name": "X-Institution-Key",
            "description": "定点医药机构的接口密钥（institutions.csv 的 api_key；只存其哈希）"})


class ItemIn(Schema):
    code = fields.String(required=True, validate=validate.Length(min=1, max=64))
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    category = fields.String(required=True, validate=validate.OneOf(sorted(policy.ITEM_CATEGORIES)),
                             metadata={"description": "drug 药品 | treatment 诊疗 | material 医用耗材 | "
                                                      "non_medical 非医疗（保健品、化妆品、生活用品…，只能自费）"})
    amount_fen = Money(required=True)


class SettlementIn(Schema):
    patient_id_number = fields.String(required=True, validate=validate.Length(min=15, max=20))
    credential = fields.String(required=True, validate=validate.Length(min=1, max=200),
                               metadata={"description": "患者本人的社保卡号，或本人医保电子凭证（GET /me/voucher）的码"})
    items = fields.List(fields.Nested(ItemIn), required=True, validate=validate.Length(min=1, max=500))
    pooled_fen = Money(load_default=0, metadata={"description": "统筹基金支付部分（由机构按医保政策算出），不得超过可报销的医疗费用"})


class MaskedPerson(Schema):
    name = fields.String()
    id_number = fields.String()


class FamilyPartOut(Schema):
    binding_id = fields.String()
    authorizer = fields.Nested(MaskedPerson)
    relation = fields.String(metadata={"description": "授权人是患者的什么人"})
    relation_label = fields.String()
    amount_fen = fields.Integer()


class BreakdownOut(Schema):
    total_fen = fields.Integer()
    eligible_fen = fields.Integer(metadata={"description": "医疗项目合计（非医疗项目不计）"})
    pooled_fen = fields.Integer()
    personal_burden_fen = fields.Integer(metadata={"description": "个人负担 = 合计 − 统筹"})
    own_account_fen = fields.Integer(metadata={"description": "本人个人账户支付"})
    family = fields.List(fields.Nested(FamilyPartOut), metadata={"description": "家庭共济支付，按支付顺序"})
    cash_fen = fields.Integer(metadata={"description": "现金（自付）"})


class SettlementOut(BreakdownOut):
    id = fields.String()
    status = fields.String(validate=validate.OneOf(["settled", "refunded"]))
    patient = fields.Nested(MaskedPerson)
    created_at = fields.String()
    refunded_at = fields.String(allow_none=True)


class SettlementsPage(Schema):
    items = fields.List(fields.Nested(SettlementOut))
    next_cursor = fields.String(allow_none=True)


class SettlementsArgs(PageArgs):
    patient_id_number = fields.String(load_default=None, validate=validate.Length(max=20))
    from_ = fields.Date(data_key="from", load_default=None)
    to = fields.Date(load_default=None)


KEY = {401: "UNAUTHORIZED：X-Institution-Key 缺失或不正确"}
BILL = {400: "INVALID_ID_NUMBER：患者身份证号不正确",
        403: "NOT_DESIGNATED：非定点机构；IMPERSONATION：凭证不是患者本人的（冒名就医，已记录）；VOUCHER_EXPIRED："
             "医保电子凭证已过期；SETTLEMENT_SUSPENDED：患者联网结算已暂停",
        422: "PATIENT_NOT_FOUND、PATIENT_NOT_NORMAL、POOLED_EXCEEDS_ELIGIBLE：统筹支付超过可报销部分"}


def _document(*tables, **by_status):
    def decorate(view):
        return blp.doc(security=INSTITUTION_KEY)(refusals(blp, KEY, *tables, **by_status)(view))
    return decorate


@blp.route("/settlements/quote", methods=["POST"])
@institution_required
@blp.arguments(SettlementIn)
@blp.response(200, BreakdownOut)
@_document(JSON_BODY, BILL)
def quote(data):
    """预结算: the same body as a settlement and the same breakdown back; nothing moves."""
    b = settlements.quote(current_institution(), data)
    return b.__dict__


@blp.route("/settlements", methods=["POST"])
@institution_required
@blp.arguments(SettlementIn)
@blp.response(201, SettlementOut, headers=REPLAYED_HEADER)
@blp.doc(parameters=[idempotency_key_parameter(
    required=True, description="每笔结算一个，重试时不变：同一编号与内容只结算一次，重放得到第一次的结果")])
@_document(JSON_BODY, BILL, s400="IDEMPOTENCY_KEY_REQUIRED：缺少 Idempotency-Key",
           s409="IDEMPOTENCY_KEY_REUSED：同一 Idempotency-Key 用于不同内容")
def settle(data):
    """结算: own account, then family accounts in the patient's order (R10), then cash; every fen through the ledger.

    Idempotency-Key is required here (API.md accepts it on money movements; a settlement without one could be paid
    twice by a retry, so it is refused with IDEMPOTENCY_KEY_REQUIRED)."""
    key = request.headers.get("Idempotency-Key", "").strip()
    if not key or len(key) > 255:
        raise ApiError("IDEMPOTENCY_KEY_REQUIRED", 400, "Idempotency-Key")
    answer, replayed = settlements.settle(current_institution(), data, key)
    return answer, 201, replayed_header(replayed)


@blp.route("/settlements/<settlement_id>/refund", methods=["POST"])
@institution_required
@blp.response(200, SettlementOut)
@_document(s404="NOT_FOUND：没有这笔结算（其他机构的结算亦然）", s409="ALREADY_REFUNDED：已退费")
def refund(settlement_id):
    """退费: reverses the settlement exactly, once."""
    return settlements.answer_of(settlements.refund(current_institution(), settlement_id))


@blp.route("/settlements", methods=["GET"])
@institution_required
@blp.arguments(SettlementsArgs, location="query")
@blp.response(200, SettlementsPage)
@_document(QUERY, s400="INVALID_ID_NUMBER、INVALID_PERIOD")
def list_settlements(args):
    """本机构的结算记录, newest first, by patient and date range (Beijing dates, both included)."""
    rows, cursor = usage.institution_settlements(current_institution(), args["patient_id_number"],
                                                 usage.Period(args["from_"], args["to"]), args["limit"],
                                                 args["cursor"])
    return {"items": [settlements.answer_of(s) for s in rows], "next_cursor": cursor}
