"""The person's own pages of the mini-program: me, 医保电子凭证, the 业务办理 menu, his policy, his materials."""
from flask import send_file

from api.auth import current_person, issue_voucher, person_required
from api.schemas import (BEARER, FILE_ANSWER, PERSON_AUTH, QUERY, Blueprint, MaterialOut, MaterialUpload,
                         PersonSelf, PoliciesAnswer, PoliciesArgs, PolicyOut, ServiceItem, VoucherOut, refusals)
from api.services import materials, menu, people
from api.timefmt import local_iso

blp = Blueprint("persons", __name__, url_prefix="/api/v1", description="参保人：本人信息、医保电子凭证、业务办理、材料上传")

@blp.route("/me")
@person_required
@blp.doc(security=BEARER)
@blp.response(200, PersonSelf)
@refusals(blp, PERSON_AUTH)
def me():
    """本人信息: ID and phone numbers masked; `account` is null for 居民医保."""
    return people.profile(current_person())


@blp.route("/me/voucher")
@person_required
@blp.doc(security=BEARER)
@blp.response(200, VoucherOut)
@refusals(blp, PERSON_AUTH)
def voucher():
    """医保电子凭证: a signed code naming the caller, valid a few minutes; institutions accept it as credential."""
    code, expires_at = issue_voucher(current_person().id)
    return {"code": code, "expires_at": local_iso(expires_at)}


@blp.route("/services")
@person_required
@blp.doc(security=BEARER)
@blp.response(200, ServiceItem(many=True))
@refusals(blp, PERSON_AUTH)
def services():
    """业务办理 menu; family_binding is available only to an authorizer R1 admits, else `reason` says why."""
    return menu.services_for(current_person())


@blp.route("/policy")
@person_required
@blp.doc(security=BEARER)
@blp.response(200, PolicyOut)
@refusals(blp, PERSON_AUTH, s422="REGION_NOT_COVERED：本地区尚未开通家庭共济")
def region_policy():
    """本地区家庭共济政策: relations, scope, required materials, review mode."""
    return people.policy_for(current_person().region_code).to_public()


@blp.route("/policies")
@blp.arguments(PoliciesArgs, location="query")
@blp.response(200, PoliciesAnswer)
@refusals(blp, QUERY)
def all_policies(args):
    """各地家庭共济政策（无需登录）: every region's public rules — relations, shareable part, scope, caps, consent
    age — for the coverage checker a person opens before he starts; `?province=62` for one region."""
    items = [p.to_public() for p in people.all_policies()
             if args["province"] is None or p.province_code == args["province"]]
    return {"items": items}


@blp.route("/materials", methods=["POST"])
@person_required
@blp.doc(security=BEARER)
@blp.arguments(MaterialUpload, location="multipart")
@blp.response(201, MaterialOut)
@refusals(blp, PERSON_AUTH, s400="INVALID_INPUT（缺少 file 或 kind）、FILE_EMPTY",
          s413="PAYLOAD_TOO_LARGE：超过 5 MB",
          s415="UNSUPPORTED_MEDIA_TYPE：内容不是 JPEG、PNG 或 PDF（按文件内容判断，不看文件名）",
          s429="UPLOAD_QUOTA_EXCEEDED：今日（北京时间）上传的份数或总大小已达上限（UPLOAD_DAILY_COUNT、UPLOAD_DAILY_BYTES）；"
               "Retry-After 为到次日零点的秒数")
def upload_material(data):
    """上传申请材料 (户口簿、结婚证、出生医学证明 …): multipart `file` + `kind`; pass the id in material_ids.

    A material no application takes within a day is deleted."""
    return materials.store(current_person(), data["kind"], data["file"].stream)


@blp.route("/materials/<material_id>")
@person_required
@blp.doc(security=BEARER)
@blp.response(200, description="the file, as image/jpeg, image/png or application/pdf")
@blp.doc(**FILE_ANSWER)
@refusals(blp, PERSON_AUTH, s404="NOT_FOUND：不存在，或不是本人上传的材料")
def download_material(material_id):
    """本人上传的材料原件; another person's material answers 404 like a missing one."""
    return send_material(*materials.owned_file(current_person(), material_id))


def send_material(material, path):
    """The stored file as its sniffed type, as a download (never rendered in our origin: an uploaded PDF could
    carry script), never cached, never re-sniffed by the browser. Every route serving a material uses this."""
    response = send_file(path, mimetype=material.content_type, conditional=False, as_attachment=True,
                         download_name=f"{material.id}.{materials.EXTENSIONS[material.content_type]}")
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
