"""The offline window (医保大厅): a clerk files 《医保家庭共济申请表》 for a person who is present, uploads the proof
he brought, prints the 回执单; admins read the audit trail of every staff action."""
import json

from flask import make_response
from marshmallow import Schema, fields, validate

from api import documents, idnumber, policy
from api.auth import current_staff, staff_required
from api.errors import ApiError, Refusal
from api.schemas import (BEARER, JSON_BODY, QUERY, REPLAYED_HEADER, STAFF_AUTH, ApplicationAccepted, Blueprint,
                         accepted, idempotency_key_parameter, MaterialOut, MaterialUpload, refusals, replayed_header)
from api.services import applications, audit_log, contributions, idempotency, manual_reviews, materials
from api.services.logins import normalize_name
from api.services.people import person_by_id_number
from api.pagination import PageArgs
from api.timefmt import local_iso, local_now
from api.views.bindings import ApplicationIn
from api.views.contributions import ContributionOut, dump_payment

blp = Blueprint("window", __name__, url_prefix="/api/v1/staff", description="医保大厅窗口：代为申请、回执单、审计日志")

MATERIAL_KINDS = list(policy.MATERIAL_KINDS)


class WindowApplicationIn(ApplicationIn):
    """《医保家庭共济申请表》 as the clerk enters it: the authorizer (present at the window) and the online form's
    fields; `materials_seen` are the identity documents the clerk has checked (the policy's required_materials),
    `material_ids` the proof he scanned (POST /staff/materials)."""
    authorizer_name = fields.String(required=True, validate=validate.Length(min=1, max=50),
                                    metadata={"description": "授权人姓名（须与登记一致）"})
    authorizer_id_number = fields.String(required=True, validate=validate.Length(min=15, max=20),
                                         metadata={"description": "授权人身份证号码"})
    materials_seen = fields.List(fields.String(validate=validate.OneOf(MATERIAL_KINDS)), load_default=list,
                                 validate=validate.Length(max=10),
                                 metadata={"description": "经办人已查验的证件（GET /policy 的 required_materials），"
                                                          "如 id_card、insurance_card"})


@blp.route("/materials", methods=["POST"])
@staff_required("clerk")
@blp.doc(security=BEARER)
@blp.arguments(MaterialUpload, location="multipart")
@blp.response(201, MaterialOut)
@refusals(blp, STAFF_AUTH, s400="INVALID_INPUT（缺少 file 或 kind）、FILE_EMPTY", s413="PAYLOAD_TOO_LARGE：超过 5 MB",
          s415="UNSUPPORTED_MEDIA_TYPE：内容不是 JPEG、PNG 或 PDF（按文件内容判断）")
def upload_material(data):
    """窗口扫描上传申请人带来的证明材料（户口簿、结婚证、出生医学证明、承诺书 …）; pass the id in material_ids."""
    return materials.store(current_staff(), data["kind"], data["file"].stream)


def _authorizer(staff, data):
    """The person at the window, from the registry: his number must be valid, known, in the clerk's region
    (404 otherwise, like an unknown one) and his name the registry's."""
    try:
        number = idnumber.normalize(data["authorizer_id_number"])
    except idnumber.InvalidIdNumber:
        raise ApiError("INVALID_ID_NUMBER", 400, "authorizer_id_number") from None
    person = person_by_id_number(number)
    if person is None or not manual_reviews.serves(staff, person):
        raise ApiError("PERSON_NOT_FOUND", 404, "authorizer_id_number")
    if normalize_name(person.name) != normalize_name(data["authorizer_name"]):
        raise Refusal("AUTHORIZER_NAME_MISMATCH", "authorizer_name")
    return person


@blp.route("/applications", methods=["POST"])
@staff_required("clerk")
@blp.doc(security=BEARER)
@blp.arguments(WindowApplicationIn)
@blp.response(202, ApplicationAccepted, headers=REPLAYED_HEADER)
@blp.doc(parameters=[idempotency_key_parameter()])
@refusals(blp, STAFF_AUTH, JSON_BODY,
          s400="INVALID_ID_NUMBER（authorizer_id_number 或 beneficiary_id_number）；VALID_UNTIL_IN_PAST",
          s404="PERSON_NOT_FOUND：登记中没有该授权人，或不在本窗口的辖区",
          s409="DUPLICATE_BINDING、DUPLICATE_APPLICATION；IDEMPOTENCY_KEY_REUSED",
          s422="AUTHORIZER_NAME_MISMATCH：授权人姓名与登记不符；IDENTITY_DOCUMENTS_NOT_SEEN：未确认查验政策要求的证件；"
               "MATERIAL_NOT_FOUND；政策引擎的拒绝代码（AUTHORIZER_*、BENEFICIARY_*、RELATION_* …、REGION_NOT_COVERED）")
def file_application(data):
    """窗口代为提交家庭共济申请（channel = window）: the same rules and review pipeline as every channel; both
    people are notified; answers the receipt number (受理编号) for the 回执单."""
    staff = current_staff()

    def act():
        authorizer = _authorizer(staff, data)
        proof = materials.owned_materials(staff, data["material_ids"]) if data["material_ids"] else []
        app = applications.submit(authorizer, data, channel="window", staff=staff, materials=proof,
                                  materials_seen=data["materials_seen"])
        audit_log.record_staff(staff, "window_application", app.id, authorizer,
                               {"receipt_no": app.receipt_no, "relation": app.relation,
                                "materials_seen": sorted(data["materials_seen"]), "materials": len(proof)})
        return accepted(app), 202

    answer = idempotency.answer(f"staff:{staff.id}:applications", data, act)
    return answer.body, answer.status, replayed_header(answer.replayed)


class WindowContributionIn(Schema):
    """代缴 at the window for an authorizer who is present (R15), with the 代缴承诺书 he signed there."""
    authorizer_name = fields.String(required=True, validate=validate.Length(min=1, max=50))
    authorizer_id_number = fields.String(required=True, validate=validate.Length(min=15, max=20))
    binding_id = fields.String(required=True, validate=validate.Length(min=1, max=32),
                               metadata={"description": "授权人与被代缴家人的共济关系"})
    year = fields.Integer(required=True, strict=True,
                          validate=validate.Range(min=contributions.MIN_YEAR, max=contributions.MAX_YEAR))
    commitment = fields.Boolean(required=True, metadata={
        "description": "true: 授权人已在窗口签署代缴承诺书 — " + contributions.COMMITMENT})


@blp.route("/contributions", methods=["POST"])
@staff_required("clerk")
@blp.doc(security=BEARER)
@blp.arguments(WindowContributionIn)
@blp.response(201, ContributionOut)
@refusals(blp, STAFF_AUTH, JSON_BODY,
          s400="INVALID_ID_NUMBER；COMMITMENT_REQUIRED：须签署代缴承诺书",
          s404="PERSON_NOT_FOUND：登记中没有该授权人，或不在本窗口的辖区；NOT_FOUND：没有这个共济关系",
          s409="ALREADY_PAID：该年度已缴纳（任何人、任何渠道）；BINDING_NOT_ACTIVE",
          s422="AUTHORIZER_NAME_MISMATCH；NOT_AUTHORIZER；CONTRIBUTIONS_NOT_OFFERED；BENEFICIARY_NOT_RESIDENT；NOTHING_DUE；"
               "BALANCE_SHORT；AUTHORIZER_INSURANCE_CHANGED、BENEFICIARY_INSURANCE_CHANGED、OUT_OF_AREA")
def pay_contribution(data):
    """窗口为到场的授权人办理代缴（channel = window）: the same service, refusals and notices as in the app;
    audited. The 缴费证明 is then printed with GET /staff/contributions/{id}/certificate."""
    staff = current_staff()
    authorizer = _authorizer(staff, data)
    payment = contributions.pay(authorizer, data["binding_id"], data["year"], data["commitment"], "window",
                                staff=staff)
    return dump_payment(payment, authorizer.id)


@blp.route("/contributions/<contribution_id>/certificate")
@staff_required("clerk")
@blp.doc(security=BEARER)
@blp.response(200, description="缴费证明 (application/pdf)")
@blp.doc(responses={"200": {"description": "缴费证明 (application/pdf)", "content": {
    "application/pdf": {"schema": {"type": "string", "format": "binary"}}}}})
@refusals(blp, STAFF_AUTH, s404="NOT_FOUND：没有这笔代缴，或代缴人不在本窗口的辖区")
def contribution_certificate(contribution_id):
    """窗口打印居民医保缴费证明; audited."""
    staff = current_staff()
    payment = contributions.for_staff(staff, contribution_id)
    pdf = documents.contribution_certificate(payment, local_now().strftime("%Y-%m-%d %H:%M"))
    audit_log.record_staff_now(staff, "contribution_certificate_printed", payment.id, payment.payer,
                               {"year": payment.year})
    response = make_response(pdf)
    response.headers["Content-Type"] = "application/pdf"
    response.headers["Content-Disposition"] = f"inline; filename=contribution-{payment.year}.pdf"
    return response


class ReceiptArgs(Schema):
    format = fields.String(load_default="a4", validate=validate.OneOf(["a4", "80mm"]),
                           metadata={"description": "a4 (default) | 80mm (receipt printer roll)"})


@blp.route("/applications/<application_id>/receipt")
@staff_required("clerk")
@blp.doc(security=BEARER)
@blp.arguments(ReceiptArgs, location="query")
@blp.response(200, description="回执单 (application/pdf)", content_type="application/pdf")
@blp.doc(responses={"200": {"description": "回执单", "content": {"application/pdf": {
    "schema": {"type": "string", "format": "binary"}}}}})
@refusals(blp, STAFF_AUTH, QUERY, s404="NOT_FOUND：没有这份申请，或不在本窗口的辖区")
def receipt(args, application_id):
    """回执单 PDF: receipt number, date, office, masked persons, relation, status, how to follow progress;
    `?format=80mm` for an 80 mm receipt printer. Each printing is audited."""
    staff = current_staff()
    app = manual_reviews.for_staff(staff, application_id)
    pdf = documents.application_receipt(app, staff, local_now().strftime("%Y-%m-%d %H:%M"), args["format"],
                                        filed_by=app.created_by_staff.username if app.created_by_staff else None)
    audit_log.record_staff_now(staff, "receipt_printed", app.id, app.authorizer,
                               {"receipt_no": app.receipt_no, "format": args["format"]})
    response = make_response(pdf)
    response.headers["Content-Type"] = "application/pdf"
    response.headers["Content-Disposition"] = f"inline; filename=receipt-{app.receipt_no}.pdf"
    return response


# --- the audit trail ------------------------------------------------------------------------------------------------

class AuditArgs(PageArgs):
    actor = fields.String(load_default=None, validate=validate.Length(min=1, max=64),
                          metadata={"description": "e.g. staff:clerk1 (exact)"})
    action = fields.String(load_default=None, validate=validate.Length(min=1, max=64),
                           metadata={"description": "e.g. staff_login, window_application, review_approve (exact)"})
    from_ = fields.Date(data_key="from", load_default=None, metadata={"description": "起始日期（北京时间，含）"})
    to = fields.Date(load_default=None, metadata={"description": "截止日期（北京时间，含）"})


class AuditEventOut(Schema):
    id = fields.String(required=True)
    at = fields.String(required=True, metadata={"description": "ISO 8601, +08:00"})
    actor = fields.String(required=True, metadata={"description": "staff:<username> | operator | institution:<code>"})
    action = fields.String(required=True)
    target = fields.String(required=True, allow_none=True,
                           metadata={"description": "what was acted on: an application, material or staff id, or a "
                                                    "masked ID number"})
    person = fields.String(required=True, allow_none=True,
                           metadata={"description": "the person concerned, masked (440106********1234), or null"})
    detail = fields.Dict(keys=fields.String(), values=fields.String(), required=True, allow_none=True,
                         metadata={"description": "what else was recorded, each value as text (masked)"})


def _detail(detail: dict | None) -> dict | None:
    shown = {k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
             for k, v in (detail or {}).items() if k != "person"}
    return shown or None


class AuditPage(Schema):
    items = fields.List(fields.Nested(AuditEventOut), required=True)
    next_cursor = fields.String(required=True, allow_none=True)


@blp.route("/audit")
@staff_required("admin")
@blp.doc(security=BEARER)
@blp.arguments(AuditArgs, location="query")
@blp.response(200, AuditPage)
@refusals(blp, STAFF_AUTH, QUERY, s400="INVALID_PERIOD：起始日期晚于截止日期")
def audit_events(args):
    """审计日志（管理员）: who, when, what, which person (masked); newest first; filter by actor, action, dates."""
    if args["from_"] and args["to"] and args["from_"] > args["to"]:
        raise ApiError("INVALID_PERIOD", 400, "from")
    rows, cursor = audit_log.page(args["actor"], args["action"], args["from_"], args["to"], args["limit"],
                                  args["cursor"])
    return {"items": [{"id": str(e.id), "at": local_iso(e.at), "actor": e.actor, "action": e.action,
                       "target": e.target, "person": (e.detail or {}).get("person"),
                       "detail": _detail(e.detail)}
                      for e in rows], "next_cursor": cursor}

