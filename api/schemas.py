"""Shared marshmallow schemas: what each reader of a person or staff user sees, and masked, declared once."""
from __future__ import annotations

import json

import flask_smorest
from flask_smorest.fields import Upload
from marshmallow import Schema, ValidationError, fields, pre_dump, validate
from webargs.flaskparser import FlaskParser
from werkzeug.datastructures import CombinedMultiDict, FileStorage

from api.errors import ApiError

from api import policy
from api.channels import CHANNELS
from api.masking import mask_id, mask_phone
from api.models import Person
from api.services import people
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
    error = fields.Nested(ErrorDetail)


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


def _account(person: Person, region: policy.Policy | None) -> dict | None:
    facts = people.facts_of(person)
    if person.insurance_type != "employee" or not facts.has_account:
        return None
    return {"balance_fen": facts.balance_fen, "prior_year_fen": facts.prior_year_fen,
            "shareable_fen": None if region is None else policy.shareable_balance(region, facts)}


class PersonSelf(Schema):
    """The person as he sees himself (GET /me, login): ID and phone numbers masked even here."""
    id_number = fields.String(metadata={"description": "masked, e.g. 440106********1234"})
    name = fields.String()
    insurance_type = fields.String(metadata={"description": "employee | resident"})
    insurance_type_label = fields.String(metadata={"description": "职工医保 | 居民医保"})
    status = fields.String(metadata={"description": "normal | suspended | terminated"})
    status_label = fields.String()
    region_code = fields.String()
    region_name = fields.String(allow_none=True, metadata={"description": "the region policy's name, e.g. 广东省"})
    phone = fields.String(allow_none=True, metadata={"description": "masked, e.g. 138****5678"})
    account = fields.Nested(AccountOut, allow_none=True,
                            metadata={"description": "the 职工医保个人账户; null for residents"})
    settlement_suspended = fields.Boolean(metadata={"description": "联网结算已暂停 (R9)"})

    @pre_dump
    def _view(self, person: Person, **_kw) -> dict:
        region = people.policy_or_none(person.region_code)
        return {
            "id_number": mask_id(person.id_number), "name": person.name,
            "insurance_type": person.insurance_type,
            "insurance_type_label": INSURANCE_TYPES.get(person.insurance_type),
            "status": person.status, "status_label": PERSON_STATUSES.get(person.status),
            "region_code": person.region_code, "region_name": region.name if region else None,
            "phone": mask_phone(person.phone), "account": _account(person, region),
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
    id = fields.String(metadata={"description": "family_binding | family_unbinding | usage_query | "
                                                "application_status"})
    title = fields.String()
    available = fields.Boolean()
    reason = fields.String(allow_none=True, metadata={"description": "why not available (中文), else null"})


class LabelledValue(Schema):
    value = fields.String()
    label = fields.String()


class PolicyOut(Schema):
    """Policy.to_public(): what a person may read of his region's rules."""
    province_code = fields.String()
    name = fields.String()
    app_name = fields.String()
    relations = fields.List(fields.Nested(LabelledValue))
    shareable = fields.String(metadata={"description": "all | prior_year (历年账户 only)"})
    reserve_fen = fields.Integer()
    beneficiary_area = fields.String()
    use_scope = fields.String()
    use_scope_label = fields.String()
    max_beneficiaries = fields.Integer(allow_none=True)
    max_authorizers = fields.Integer(allow_none=True)
    required_materials = fields.List(fields.Nested(LabelledValue))
    proof = fields.List(fields.String())
    review_mode = fields.String(metadata={"description": "auto | manual"})
    manual_review_days = fields.Integer()
    multi_authorizer_settlement = fields.Boolean()


# --- materials --------------------------------------------------------------------------------------------------

class MaterialUpload(Schema):
    """multipart/form-data: `file` and `kind`."""
    file = FileUpload(required=True, metadata={"description": "JPEG, PNG or PDF (judged by content), at most 5 MB"})
    kind = fields.String(required=True, validate=validate.OneOf(list(policy.MATERIAL_KINDS)),
                         metadata={"description": " | ".join(policy.MATERIAL_KINDS)})


class MaterialOut(Schema):
    id = fields.String()
    kind = fields.String()
    size = fields.Integer()
    sha256 = fields.String()
