"""The person's own pages of the mini-program: me, 医保电子凭证, the 业务办理 menu, his policy, his materials."""
from flask import send_file

from api.auth import current_person, issue_voucher, person_required
from api.schemas import (BEARER, Blueprint, ErrorBody, MaterialOut, MaterialUpload, PersonSelf, PolicyOut,
                         ServiceItem, VoucherOut)
from api.services import materials, menu, people
from api.timefmt import local_iso

blp = Blueprint("persons", __name__, url_prefix="/api/v1", description="参保人：本人信息、医保电子凭证、业务办理、材料上传")

_UNAUTHORIZED = {"schema": ErrorBody, "description": "UNAUTHORIZED（未登录）或 TOKEN_EXPIRED（登录已过期）"}


@blp.route("/me")
@person_required
@blp.doc(security=BEARER)
@blp.response(200, PersonSelf)
@blp.alt_response(401, **_UNAUTHORIZED)
def me():
    """本人信息: ID and phone numbers masked; `account` is null for 居民医保."""
    return current_person()


@blp.route("/me/voucher")
@person_required
@blp.doc(security=BEARER)
@blp.response(200, VoucherOut)
@blp.alt_response(401, **_UNAUTHORIZED)
def voucher():
    """医保电子凭证: a signed code naming the caller, valid a few minutes; institutions accept it as credential."""
    code, expires_at = issue_voucher(current_person().id)
    return {"code": code, "expires_at": local_iso(expires_at)}


@blp.route("/services")
@person_required
@blp.doc(security=BEARER)
@blp.response(200, ServiceItem(many=True))
@blp.alt_response(401, **_UNAUTHORIZED)
def services():
    """业务办理 menu; family_binding is available only to an authorizer R1 admits, else `reason` says why."""
    return menu.services_for(current_person())


@blp.route("/policy")
@person_required
@blp.doc(security=BEARER)
@blp.response(200, PolicyOut)
@blp.alt_response(401, **_UNAUTHORIZED)
@blp.alt_response(422, schema=ErrorBody, description="REGION_NOT_COVERED：本地区尚未开通家庭共济")
def region_policy():
    """本地区家庭共济政策: relations, scope, required materials, review mode."""
    return people.policy_for(current_person().region_code).to_public()


@blp.route("/materials", methods=["POST"])
@person_required
@blp.doc(security=BEARER)
@blp.arguments(MaterialUpload, location="multipart")
@blp.response(201, MaterialOut)
@blp.alt_response(400, schema=ErrorBody, description="INVALID_INPUT（缺少 file 或 kind）、FILE_EMPTY")
@blp.alt_response(401, **_UNAUTHORIZED)
@blp.alt_response(413, schema=ErrorBody, description="PAYLOAD_TOO_LARGE：超过 5 MB")
@blp.alt_response(415, schema=ErrorBody,
                  description="UNSUPPORTED_MEDIA_TYPE：内容不是 JPEG、PNG 或 PDF（按文件内容判断，不看文件名）")
def upload_material(data):
    """上传申请材料 (户口簿、结婚证、出生医学证明 …): multipart `file` + `kind`; pass the id in material_ids."""
    return materials.store(current_person(), data["kind"], data["file"].stream)


@blp.route("/materials/<material_id>")
@person_required
@blp.doc(security=BEARER)
@blp.response(200, content_type="application/octet-stream",
              description="the file, as image/jpeg, image/png or application/pdf")
@blp.alt_response(404, schema=ErrorBody, description="NOT_FOUND：不存在，或不是本人上传的材料")
def download_material(material_id):
    """本人上传的材料原件; another person's material answers 404 like a missing one."""
    return send_material(*materials.owned_file(current_person(), material_id))


def send_material(material, path):
    """The stored file as its sniffed type, never cached, never re-sniffed by the browser."""
    response = send_file(path, mimetype=material.content_type, conditional=False,
                         download_name=f"{material.id}.{materials.EXTENSIONS[material.content_type]}")
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
