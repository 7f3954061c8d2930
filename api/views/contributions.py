"""R15: 居民医保 代缴 — the authorizer pays a relative's resident contribution; the records and the 缴费证明."""
from flask import make_response
from marshmallow import Schema, fields, validate

from api import documents, policy
from api.auth import current_channel, current_person, person_required
from api.masking import mask_id, mask_name
from api.pagination import PageArgs, paginate
from api.schemas import (BEARER, JSON_BODY, PERSON_AUTH, QUERY, REPLAYED_HEADER, _out, Blueprint,
                         idempotency_key_parameter, OneOf, refusals, replayed_header)
from api.services import contributions, idempotency
from api.timefmt import local_iso, local_now

blp = Blueprint("contributions", __name__, url_prefix="/api/v1", description="居民医保代缴（家庭共济）与缴费证明")


class ContributionIn(Schema):
    year = fields.Integer(required=True, strict=True,
                          validate=validate.Range(min=contributions.MIN_YEAR, max=contributions.MAX_YEAR),
                          metadata={"description": "缴费年度"})
    commitment = fields.Boolean(required=True, metadata={
        "description": "true: the payer confirms the 代缴承诺书 — " + contributions.COMMITMENT})


@_out
class Party(Schema):
    name = fields.String(metadata={"description": "masked"})
    id_number = fields.String(metadata={"description": "masked"})


@_out
class ContributionOut(Schema):
    id = fields.String()
    year = fields.Integer()
    amount_fen = fields.Integer()
    binding_id = fields.String()
    role = OneOf(["payer", "beneficiary"], metadata={"description": "the caller's side: payer | beneficiary"})
    payer = fields.Nested(Party)
    beneficiary = fields.Nested(Party)
    relation = OneOf(list(policy.RELATIONS), metadata={"description": "the beneficiary is the payer's …"})
    relation_label = fields.String()
    channel = fields.String()
    paid_at = fields.String(metadata={"description": "ISO 8601, +08:00"})
    certificate_url = fields.String()


@_out
class ContributionsAnswer(Schema):
    items = fields.List(fields.Nested(ContributionOut))
    next_cursor = fields.String(allow_none=True)


def dump_payment(p, viewer_id: int) -> dict:
    return {
        "id": p.id, "year": p.year, "amount_fen": p.amount_fen, "binding_id": p.binding_id,
        "role": "payer" if viewer_id == p.payer_id else "beneficiary",
        "payer": {"name": mask_name(p.payer.name), "id_number": mask_id(p.payer.id_number)},
        "beneficiary": {"name": mask_name(p.beneficiary.name), "id_number": mask_id(p.beneficiary.id_number)},
        "relation": p.binding.relation, "relation_label": policy.RELATIONS[p.binding.relation],
        "channel": p.channel, "paid_at": local_iso(p.created_at),
        "certificate_url": f"/api/v1/contributions/{p.id}/certificate",
    }


@blp.route("/bindings/<binding_id>/contributions", methods=["POST"])
@person_required
@blp.doc(security=BEARER)
@blp.arguments(ContributionIn)
@blp.response(201, ContributionOut, headers=REPLAYED_HEADER)
@blp.doc(parameters=[idempotency_key_parameter()])
@refusals(blp, PERSON_AUTH, JSON_BODY,
          s400="COMMITMENT_REQUIRED：须确认代缴承诺书（commitment: true）",
          s403="NOT_AUTHORIZER：只有授权人可以代缴",
          s404="NOT_FOUND：不存在，或与本人无关的共济关系",
          s409="ALREADY_PAID：该年度已缴纳（任何人、任何渠道）；BINDING_NOT_ACTIVE：共济关系已解除或终止；"
               "IDEMPOTENCY_KEY_REUSED",
          s422="CONTRIBUTIONS_NOT_OFFERED：授权人所在地区政策未开通代缴；BENEFICIARY_NOT_RESIDENT：共济人员不是居民医保参保人；"
               "NOTHING_DUE：登记中没有该年度应缴费用；BALANCE_SHORT：可共济余额不足，不部分缴纳；"
               "AUTHORIZER_INSURANCE_CHANGED、BENEFICIARY_INSURANCE_CHANGED、OUT_OF_AREA：参保情况已变化；"
               "REGION_NOT_COVERED")
def pay(data, binding_id):
    """授权人用本人个人账户为共济人员代缴该年度居民医保个人缴费（全额），双方收到通知；须确认代缴承诺书."""
    person = current_person()

    def act():
        payment = contributions.pay(person, binding_id, data["year"], data["commitment"], current_channel())
        return dump_payment(payment, person.id), 201

    answer = idempotency.answer(f"person:{person.id}:contributions:{binding_id}", data, act)
    return answer.body, answer.status, replayed_header(answer.replayed)


@blp.route("/contributions")
@person_required
@blp.doc(security=BEARER)
@blp.arguments(PageArgs, location="query")
@blp.response(200, ContributionsAnswer)
@refusals(blp, PERSON_AUTH, QUERY)
def list_payments(args):
    """本人的代缴记录：作为代缴人（为家人缴费）和作为被代缴人, newest first."""
    person = current_person()
    rows, cursor = paginate(contributions.list_for(person), contributions.ContributionPayment, args["limit"],
                            args["cursor"])
    return {"items": [dump_payment(p, person.id) for p in rows], "next_cursor": cursor}


@blp.route("/contributions/<contribution_id>/certificate")
@person_required
@blp.doc(security=BEARER)
@blp.response(200, description="缴费证明 (application/pdf)")
@blp.doc(responses={"200": {"description": "缴费证明 (application/pdf)", "content": {
    "application/pdf": {"schema": {"type": "string", "format": "binary"}}}}})
@refusals(blp, PERSON_AUTH, s404="NOT_FOUND：不存在，或与本人无关的代缴记录")
def certificate(contribution_id):
    """居民医保缴费证明（PDF，内嵌中文字体）：年度、金额、双方（脱敏）、缴费日期；代缴人和被代缴人都可下载."""
    payment = contributions.visible_to(current_person(), contribution_id)
    pdf = documents.contribution_certificate(payment, local_now().strftime("%Y-%m-%d %H:%M"))
    response = make_response(pdf)
    response.headers["Content-Type"] = "application/pdf"
    response.headers["Content-Disposition"] = f"inline; filename=contribution-{payment.year}.pdf"
    response.headers["Cache-Control"] = "private, no-store"
    return response
