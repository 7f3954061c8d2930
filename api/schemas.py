"""Shared marshmallow schemas: what each reader of a person or staff user sees, and masked, declared once."""
from __future__ import annotations

import json

import flask_smorest
from flask_smorest.fields import Upload
from marshmallow import Schema, ValidationError, fields, pre_dump, validate
from webargs import core as webargs_core
from webargs.flaskparser import FlaskParser
from werkzeug.datastructures import CombinedMultiDict, FileStorage

from api.errors import ApiError
from api.messages import MESSAGES

from api import policy
from api.channels import CHANNELS
from api.masking import mask_id, mask_phone
from api.services import notifications, people
from api.services.application_notices import STATUS_LABELS
from api.services.logins import STAFF_ROLES

INSURANCE_TYPES = {"employee": "职工医保", "resident": "居民医保"}
PERSON_STATUSES = {"normal": "正常参保", "suspended": "暂停参保", "terminated": "终止参保"}


# --- request parsing --------------------------------------------------------------------------------------------

class _Parser(FlaskParser):
    """webargs with a `multipart` location (form fields and files together) and 400 for invalid input."""
    DEFAULT_VALIDATION_STATUS = 400  # API.md: 400 malformed; 422 is kept for the rules' refusals
    __location_map__ = dict(FlaskParser.__location_map__, multipart="load_multipart")

    def load_multipart(self, req, schema):
        return self._makeproxy(CombinedMultiDict([req.form, req.files]), schema)

    def _raw_load_json(self, req):
        """JSON bodies the standard parser lets through to fail later, refused here: nested deeper than Python
        recurses, an integer of thousands of digits, a lone surrogate (no UTF-8 text can hold it)."""
        if not webargs_core.is_json(req.mimetype) and (req.mimetype or req.get_data(cache=True)):
            # a form, text or a file where JSON is expected: say so, rather than "missing field"
            raise ApiError("UNSUPPORTED_MEDIA_TYPE", 415, msg=MESSAGES["JSON_REQUIRED"])
        try:
            data = super()._raw_load_json(req)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise  # webargs answers these itself
        except (RecursionError, ValueError):
            raise ApiError("MALFORMED_JSON", 400) from None
        if not _utf8_encodable(data):
            raise ApiError("MALFORMED_JSON", 400)
        return data


def _utf8_encodable(data) -> bool:
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
    return True


class FileUpload(Upload):
    """A multipart file part; the same name sent as a plain form field is no file."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, FileStorage):
            raise ValidationError("Not a valid file.")
        return value


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint, documenting `multipart` arguments as one multipart/form-data request body.

    (flask-smorest documents only one body location per view, so a file and its form fields must share one.)
    """
    ARGUMENTS_PARSER = _Parser()
    DEFAULT_LOCATION_CONTENT_TYPE_MAPPING = {
        **flask_smorest.Blueprint.DEFAULT_LOCATION_CONTENT_TYPE_MAPPING, "multipart": "multipart/form-data"}


BEARER = [{"bearerAuth": []}]  # `security` of an endpoint that needs a person or staff token


# --- errors -----------------------------------------------------------------------------------------------------

class ErrorDetail(Schema):
    code = fields.String(metadata={"description": "stable code, e.g. REALNAME_MISMATCH"})
    message = fields.String(metadata={"description": "中文说明"})
    field = fields.String(allow_none=True, metadata={"description": "the input field at fault, or null"})


class ErrorBody(Schema):
    """Every 4xx/5xx body: {"error": {code, message, field}}."""
    error = fields.Nested(ErrorDetail, required=True)


for _field in ErrorDetail._declared_fields.values():
    _field.required = True

# the 200 of a material download: the stored file as its sniffed type
FILE_ANSWER = {"responses": {"200": {
    "description": "the file, as image/jpeg, image/png or application/pdf",
    "content": {media_type: {"schema": {"type": "string", "format": "binary"}}
                for media_type in ("image/jpeg", "image/png", "application/pdf")}}}}
def Money(**kw) -> fields.Integer:  # noqa: N802  (reads like a field class)
    """An amount in integer 分, never negative; a JSON integer only ("100" and 1.0 are refused)."""
    return fields.Integer(strict=True, validate=validate.Range(min=0, max=10**10), **kw)


# Idempotency-Key (API.md): the header a client sends, and the one that says an answer is a replay
REPLAYED_HEADER = {"Idempotency-Replayed": {
    "description": "true: this is the first answer to the same Idempotency-Key and body, replayed",
    "schema": {"type": "string", "enum": ["true"]}}}


def idempotency_key_parameter(required: bool = False, description: str | None = None) -> dict:
    parameter = {"in": "header", "name": "Idempotency-Key", "required": required,
                 "schema": {"type": "string", "maxLength": 255}}
    return parameter | ({"description": description} if description else {})


def replayed_header(replayed: bool) -> dict:
    return {"Idempotency-Replayed": "true"} if replayed else {}


RETRY_AFTER = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
PERSON_AUTH = {401: "UNAUTHORIZED：未登录或令牌无效；TOKEN_EXPIRED：登录已过期",
               403: "WRONG_TOKEN_KIND：工作人员的令牌不能用于参保人接口"}
STAFF_AUTH = {401: "UNAUTHORIZED：未登录、令牌无效或账号已停用；TOKEN_EXPIRED：登录已过期",
              403: "WRONG_TOKEN_KIND：参保人的令牌不能用于工作人员接口；FORBIDDEN：没有该角色"}
JSON_BODY = {400: "MALFORMED_JSON：不是有效的 JSON；INVALID_INPUT：字段格式不正确（field 指出哪一项）",
             415: "UNSUPPORTED_MEDIA_TYPE：请求内容须为 JSON（Content-Type: application/json）"}
QUERY = {400: "INVALID_INPUT：查询参数格式不正确（field 指出哪一项，如 cursor、limit）"}


def refusals(blp: flask_smorest.Blueprint, *tables: dict, **by_status: str):
    """Documents the error answers of an operation as ErrorBody alt_responses, the codes named in the description.

    `tables` (PERSON_AUTH, JSON_BODY …) and `by_status` ({"409": "…"} as s409="…") merge; one status's
    descriptions are joined with "；". A 429 or 503 documents Retry-After.
    """
    merged: dict[int, list[str]] = {}
    for table in (*tables, {int(k.lstrip("s")): v for k, v in by_status.items()}):
        for status, text in table.items():
            merged.setdefault(int(status), []).append(text)

    def decorate(view):
        for status in sorted(merged, reverse=True):
            extra = {"headers": RETRY_AFTER} if status in (429, 503) else {}
            view = blp.alt_response(status, schema=ErrorBody, description="；".join(merged[status]), **extra)(view)
        return view
    return decorate


# --- logins -----------------------------------------------------------------------------------------------------

class LoginIn(Schema):
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS),
                            metadata={"description": "wechat | alipay | suishenban | nhsa_app | web"})
    code = fields.String(required=True, validate=validate.Length(min=1, max=128),
                         metadata={"description": "the channel's login code (simulated channels: the openid)"})
    name = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=50),
                         metadata={"description": "姓名; required on the first login of this channel account"})
    id_number = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=20),
                              metadata={"description": "身份证号码; required on the first login (实名认证)"})


class StaffLoginIn(Schema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=64))
    password = fields.String(required=True, validate=validate.Length(min=1, max=256), load_only=True)


# --- the person, as he sees himself (GET /me) ------------------------------------------------------------------

class AccountOut(Schema):
    balance_fen = fields.Integer(metadata={"description": "个人账户余额（当年 + 历年）, 分"})
    prior_year_fen = fields.Integer(metadata={"description": "历年账户部分, 分"})
    shareable_fen = fields.Integer(allow_none=True,
                                   metadata={"description": "可共济金额 under the region policy; null: no policy"})


def _account(profile: people.Profile) -> dict | None:
    facts = profile.facts
    if profile.person.insurance_type != "employee" or not facts.has_account:
        return None
    return {"balance_fen": facts.balance_fen, "prior_year_fen": facts.prior_year_fen,
            "shareable_fen": profile.shareable_fen}


class PersonSelf(Schema):
    """The person as he sees himself (GET /me, login): ID and phone numbers masked even here."""
    id_number = fields.String(metadata={"description": "masked, e.g. 440106********1234"})
    name = fields.String()
    insurance_type = fields.String(validate=validate.OneOf(list(INSURANCE_TYPES)),
                                   metadata={"description": "employee | resident"})
    insurance_type_label = fields.String(metadata={"description": "职工医保 | 居民医保"})
    status = fields.String(validate=validate.OneOf(list(PERSON_STATUSES)),
                           metadata={"description": "normal | suspended | terminated"})
    status_label = fields.String()
    region_code = fields.String()
    region_name = fields.String(allow_none=True, metadata={"description": "the region policy's name, e.g. 广东省"})
    phone = fields.String(allow_none=True, metadata={"description": "masked, e.g. 138****5678"})
    account = fields.Nested(AccountOut, allow_none=True,
                            metadata={"description": "the 职工医保个人账户; null for residents"})
    settlement_suspended = fields.Boolean(metadata={"description": "联网结算已暂停 (R9)"})

    @pre_dump
    def _view(self, profile: people.Profile, **_kw) -> dict:
        """Reads the profile the view loaded (serialization queries nothing)."""
        person, region = profile.person, profile.policy
        return {
            "id_number": mask_id(person.id_number), "name": person.name,
            "insurance_type": person.insurance_type,
            "insurance_type_label": INSURANCE_TYPES.get(person.insurance_type),
            "status": person.status, "status_label": PERSON_STATUSES.get(person.status),
            "region_code": person.region_code, "region_name": region.name if region else None,
            "phone": mask_phone(person.phone), "account": _account(profile),
            "settlement_suspended": bool(person.settlement_suspended),
        }


class LoginOut(Schema):
    token = fields.String(metadata={"description": "send as Authorization: Bearer <token>"})
    expires_at = fields.String(metadata={"description": "ISO 8601, +08:00"})
    person = fields.Nested(PersonSelf)


class StaffOut(Schema):
    username = fields.String()
    roles = fields.List(fields.String(validate=validate.OneOf(list(STAFF_ROLES))))


class StaffLoginOut(Schema):
    token = fields.String()
    expires_at = fields.String()
    staff = fields.Nested(StaffOut)


class VoucherOut(Schema):
    code = fields.String(metadata={"description": "医保电子凭证 code (show as a QR code); valid a few minutes"})
    expires_at = fields.String()


class ServiceItem(Schema):
    id = fields.String(validate=validate.OneOf(["family_binding", "family_unbinding", "usage_query",
                                                "application_status"]),
                       metadata={"description": "family_binding | family_unbinding | usage_query | "
                                                "application_status"})
    title = fields.String()
    available = fields.Boolean()
    reason = fields.String(allow_none=True, metadata={"description": "why not available (中文), else null"})


class LabelledValue(Schema):
    value = fields.String()
    label = fields.String()


class PolicyOut(Schema):
    """Policy.to_public(): what a person may read of a region's rules (his own, or any in the coverage checker)."""
    province_code = fields.String()
    name = fields.String()
    app_name = fields.String(metadata={"description": "the channel people use there (粤医保, 随申办 …)"})
    channel_path = fields.String(metadata={"description": "where in that channel, as the sources give it"})
    relations = fields.List(fields.Nested(LabelledValue))
    shareable = fields.String(validate=validate.OneOf(["all", "prior_year"]),
                              metadata={"description": "all | prior_year (历年账户 only)"})
    reserve_fen = fields.Integer(metadata={"description": "what stays in the authorizer's account (分)"})
    beneficiary_area = fields.String(validate=validate.OneOf(list(policy.AREAS)),
                                     metadata={"description": "where the beneficiary must be insured: "
                                                              + " | ".join(policy.AREAS)})
    use_scope = fields.String(validate=validate.OneOf(list(policy.AREAS)), metadata={"description": " | ".join(
        policy.AREAS)})
    use_scope_label = fields.String()
    max_spouses = fields.Integer(allow_none=True)
    one_father_one_mother = fields.Boolean()
    max_beneficiaries = fields.Integer(allow_none=True, metadata={"description": "per authorizer; null: no cap"})
    max_authorizers = fields.Integer(allow_none=True, metadata={"description": "per beneficiary; null: no cap"})
    required_materials = fields.List(fields.Nested(LabelledValue))
    proof = fields.List(fields.String(validate=validate.OneOf(["registry", "materials", "commitment"])))
    review_mode = fields.String(validate=validate.OneOf(list(policy.REVIEW_MODES)),
                                metadata={"description": "auto | manual | none (承诺制, no reviewer)"})
    review_label = fields.String()
    manual_review_days = fields.Integer()
    multi_authorizer_settlement = fields.Boolean()
    end_on_pause = fields.Boolean(metadata={"description": "R14: a paused authorizer's bindings end (西安: false)"})
    contributions = fields.Boolean(metadata={"description": "R15: 居民医保 代缴 from the account is offered"})
    validity_window = fields.Boolean(metadata={"description": "the channel asks for 授权起止日期 (江苏, 贵州)"})
    per_payment_limit = fields.Boolean(metadata={"description": "a 单次最高支付额度 per member is offered (山西)"})
    consent_age = fields.Integer(allow_none=True, metadata={
        "description": "R13: beneficiaries this old or older confirm themselves (甘肃/海南/新疆: 16); null: never"})
    consent_days = fields.Integer(allow_none=True, metadata={"description": "R13: days to answer; null: no step"})
    # R15 代缴 adds its fields here (its own block)


class PoliciesArgs(Schema):
    province = fields.String(load_default=None, validate=validate.Regexp(r"^[0-9]{2}$"),
                             metadata={"description": "two-digit province code (62 甘肃); absent: every region"})


class PoliciesAnswer(Schema):
    items = fields.List(fields.Nested(PolicyOut), required=True)


# --- materials --------------------------------------------------------------------------------------------------

class MaterialUpload(Schema):
    """multipart/form-data: `file` and `kind`."""
    file = FileUpload(required=True, metadata={"description": "JPEG, PNG or PDF (judged by content), at most 5 MB"})
    kind = fields.String(required=True, validate=validate.OneOf(list(policy.MATERIAL_KINDS)),
                         metadata={"description": " | ".join(policy.MATERIAL_KINDS)})


class MaterialOut(Schema):
    id = fields.String()
    kind = fields.String(validate=validate.OneOf(list(policy.MATERIAL_KINDS)))
    size = fields.Integer()
    sha256 = fields.String()


# --- closed value sets (enums in the OpenAPI document) -----------------------------------------------------------

RELATIONS = list(policy.RELATIONS)
# the application life cycle (labels: applications.STATUS_LABELS); tests/test_contract.py holds them equal
APPLICATION_STATUSES = list(STATUS_LABELS)
# why an application was rejected or sent to a reviewer, or how it ended (codes of the policy engine and life cycle)
REASON_CODES = [
    "AUTHORIZER_NOT_EMPLOYEE", "AUTHORIZER_NOT_NORMAL", "AUTHORIZER_NO_ACCOUNT", "AUTHORIZER_BALANCE_ZERO",
    "BENEFICIARY_NOT_INSURED", "BENEFICIARY_NOT_NORMAL", "BENEFICIARY_NAME_MISMATCH", "SELF_BINDING",
    "BENEFICIARY_OUT_OF_AREA", "RELATION_UNKNOWN", "RELATION_NOT_ALLOWED", "SPOUSE_LIMIT", "PARENT_LIMIT",
    "BENEFICIARY_LIMIT", "AUTHORIZER_LIMIT", "DUPLICATE_BINDING", "DUPLICATE_APPLICATION", "REGION_NOT_COVERED",
    "KINSHIP_NOT_CONFIRMED", "PROOF_UNDER_REVIEW", "MANUAL_REVIEW_REQUIRED", "AUTO_REVIEW_FAILED",
    "REJECTED_BY_REVIEWER", "REVIEW_EXPIRED", "WITHDRAWN_BY_APPLICANT",
    *policy.END_CODES,  # R14: a registry change rejected it
    "CONSENT_DECLINED", "CONSENT_EXPIRED",  # R13: the beneficiary said no, or nothing in time
]
BINDING_STATUSES = ["active", "revoked", "ended"]  # ended: R14, by a registry change (end_code says why)
NOTIFICATION_KINDS = list(notifications.KINDS)
MATERIAL_KINDS = list(policy.MATERIAL_KINDS)
ROLES = ["authorizer", "beneficiary"]


def OneOf(values, **kw) -> fields.String:  # noqa: N802  (reads like a field class)
    """A string out of a closed set, documented as an enum; `|`-joined in the description."""
    kw.setdefault("metadata", {}).setdefault("description", " | ".join(values))
    return fields.String(validate=validate.OneOf(values), **kw)


def _out(cls):
    """Every field of an answer schema is always present (null where allowed): `required` in the document."""
    for field in cls._declared_fields.values():
        field.required = True
    return cls


# --- applications, bindings, the inbox (what a person reads) -------------------------------------------------------

@_out
class MaskedParty(Schema):
    name = fields.String(metadata={"description": "masked, e.g. 王**"})
    id_number = fields.String(metadata={"description": "masked, e.g. 440106********1234"})


@_out
class Counterpart(MaskedParty):
    relation = OneOf(RELATIONS, metadata={"description": "what he is to the caller: " + " | ".join(RELATIONS)})
    relation_label = fields.String(metadata={"description": "配偶、父母 …"})


@_out
class TimelineEntryOut(Schema):
    status = OneOf(APPLICATION_STATUSES)
    status_label = fields.String()
    at = fields.String(metadata={"description": "ISO 8601, +08:00"})
    actor = fields.String(metadata={"description": "applicant | beneficiary | system | staff:<username>"})
    actor_label = fields.String(metadata={"description": "申请人 | 共济人 | 系统 | 工作人员"})
    reason_code = OneOf(REASON_CODES, allow_none=True)
    reason = fields.String(allow_none=True, metadata={"description": "中文说明"})


@_out
class MaterialRef(Schema):
    id = fields.String()
    kind = OneOf(MATERIAL_KINDS)


@_out
class ApplicationAccepted(Schema):
    id = fields.String()
    status = OneOf(APPLICATION_STATUSES)
    status_label = fields.String()
    receipt_no = fields.String(metadata={"description": "受理编号 GJ<YYYYMMDD, Beijing date><8 hex>"})


def accepted(app) -> dict:
    """The answer to a filed application (ApplicationAccepted), from the app and from the window alike."""
    return {"id": app.id, "status": app.status, "status_label": STATUS_LABELS[app.status],
            "receipt_no": app.receipt_no}


@_out
class ApplicationOut(Schema):
    """An application as one of its two sides reads it; `relation` is what the counterpart is to the caller."""
    id = fields.String()
    receipt_no = fields.String()
    status = OneOf(APPLICATION_STATUSES)
    status_label = fields.String()
    role = OneOf(ROLES, metadata={"description": "the caller's side: authorizer | beneficiary"})
    can_withdraw = fields.Boolean(metadata={"description": "the caller may withdraw it now (its authorizer, while "
                                                           "it is pending)"})
    relation = OneOf(RELATIONS)
    relation_label = fields.String()
    authorizer = fields.Nested(MaskedParty)
    beneficiary = fields.Nested(MaskedParty)
    counterpart = fields.Nested(Counterpart)
    monthly_limit_fen = fields.Integer(allow_none=True)
    per_payment_limit_fen = fields.Integer(allow_none=True)
    valid_from = fields.String(allow_none=True, metadata={"description": "YYYY-MM-DD, 授权起始日期"})
    valid_until = fields.String(allow_none=True, metadata={"description": "YYYY-MM-DD"})
    channel = fields.String()
    reason_code = OneOf(REASON_CODES, allow_none=True)
    reason = fields.String(allow_none=True)
    binding_id = fields.String(allow_none=True)
    created_at = fields.String()
    decided_at = fields.String(allow_none=True)
    review_due_at = fields.String(allow_none=True)
    consent_due_at = fields.String(allow_none=True, metadata={
        "description": "R13, while awaiting_consent: the beneficiary answers by then, or the application expires"})


@_out
class ApplicationDetail(ApplicationOut):
    timeline = fields.List(fields.Nested(TimelineEntryOut))
    materials = fields.List(fields.Nested(MaterialRef))


@_out
class ApplicationsAnswer(Schema):
    items = fields.List(fields.Nested(ApplicationOut))
    next_cursor = fields.String(allow_none=True, metadata={"description": "pass as ?cursor= for the next page"})


@_out
class BindingOut(Schema):
    id = fields.String()
    relation = OneOf(RELATIONS)
    relation_label = fields.String()
    role = OneOf(ROLES)
    counterpart = fields.Nested(Counterpart)
    status = OneOf(BINDING_STATUSES)
    monthly_limit_fen = fields.Integer(allow_none=True)
    per_payment_limit_fen = fields.Integer(allow_none=True)
    valid_from = fields.String(allow_none=True, metadata={"description": "YYYY-MM-DD, 授权起始日期（含）"})
    valid_until = fields.String(allow_none=True, metadata={"description": "YYYY-MM-DD, 授权截止日期（含）"})
    priority = fields.Integer(allow_none=True)
    in_effect = fields.Boolean(metadata={"description": "今天是否可用：有效且在授权起止日期之内"})
    effect_note = fields.String(allow_none=True, metadata={"description": "未生效或已过期时的说明（含日期）"})
    used_this_month_fen = fields.Integer(metadata={"description": "本月（北京时间）已用，不含已退费"})
    remaining_this_month_fen = fields.Integer(allow_none=True, metadata={"description": "本月限额剩余；null 为不限"})
    created_at = fields.String()
    revoked_at = fields.String(allow_none=True)
    revoked_by = OneOf(ROLES, allow_none=True)
    end_code = OneOf(list(policy.END_CODES), allow_none=True, metadata={"description": "R14: why it ended"})
    end_reason = fields.String(allow_none=True, metadata={"description": "中文说明 of end_code"})
    ended_at = fields.String(allow_none=True)


@_out
class BindingsAnswer(Schema):
    granted = fields.List(fields.Nested(BindingOut))
    received = fields.List(fields.Nested(BindingOut))


@_out
class NotificationOut(Schema):
    id = fields.String()
    kind = OneOf(NOTIFICATION_KINDS)
    title = fields.String()
    body = fields.String()
    application_id = fields.String(allow_none=True)
    binding_id = fields.String(allow_none=True)
    created_at = fields.String()
    read = fields.Boolean()
    read_at = fields.String(allow_none=True)


@_out
class InboxAnswer(Schema):
    items = fields.List(fields.Nested(NotificationOut))
    next_cursor = fields.String(allow_none=True)
    unread_count = fields.Integer(metadata={"description": "all unread messages of the caller, not only this page"})


# --- the review office (what a reviewer reads) ---------------------------------------------------------------------

@_out
class ReviewParty(MaskedParty):
    region_code = fields.String()


@_out
class ReviewOut(Schema):
    """An application as a reviewer reads it: both sides named (masked) with their regions; no caller's side."""
    id = fields.String()
    receipt_no = fields.String()
    status = OneOf(APPLICATION_STATUSES)
    status_label = fields.String()
    relation = OneOf(RELATIONS, metadata={"description": "the beneficiary is the authorizer's …"})
    relation_label = fields.String()
    authorizer = fields.Nested(ReviewParty)
    beneficiary = fields.Nested(ReviewParty)
    monthly_limit_fen = fields.Integer(allow_none=True)
    per_payment_limit_fen = fields.Integer(allow_none=True)
    valid_until = fields.String(allow_none=True)
    channel = fields.String()
    reason_code = OneOf(REASON_CODES, allow_none=True)
    reason = fields.String(allow_none=True)
    binding_id = fields.String(allow_none=True)
    created_at = fields.String()
    decided_at = fields.String(allow_none=True)
    review_due_at = fields.String(allow_none=True)
    timeline = fields.List(fields.Nested(TimelineEntryOut))
    materials = fields.List(fields.Nested(MaterialRef))


@_out
class ReviewsAnswer(Schema):
    items = fields.List(fields.Nested(ReviewOut))
    next_cursor = fields.String(allow_none=True)
