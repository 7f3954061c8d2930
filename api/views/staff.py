"""Staff endpoints of the 医保大厅 and the review office."""
from marshmallow import Schema, fields, validate

from api.schemas import BEARER, FILE_ANSWER, JSON_BODY, QUERY, STAFF_AUTH, Blueprint, ReviewOut, ReviewsAnswer, refusals

from api.auth import current_staff, staff_required
from api.masking import mask_id, mask_name
from api.pagination import PageArgs, paginate
from api.models import Application
from api.services import manual_reviews, materials
from api.timefmt import local_iso
from api.views.bindings import dump_application
from api.views.persons import send_material

blp = Blueprint("staff", __name__, url_prefix="/api/v1/staff", description="窗口经办与人工审核")


def dump_review(app) -> dict:
    body = dump_application(app, app.authorizer_id, detail=True)
    body.pop("counterpart", None)
    body.pop("role", None)
    body["authorizer"]["region_code"] = app.authorizer.region_code
    body["beneficiary"]["region_code"] = app.beneficiary.region_code
    return body


@blp.route("/reviews")
@staff_required("reviewer")
@blp.doc(security=BEARER)
@blp.arguments(PageArgs, location="query")
@blp.response(200, ReviewsAnswer)
@refusals(blp, STAFF_AUTH, QUERY)
def reviews(args):
    """待人工审核的申请, oldest first."""
    rows, cursor = paginate(manual_reviews.review_queue(current_staff()), Application, args["limit"], args["cursor"],
                            ascending=True)
    return {"items": [dump_review(a) for a in rows], "next_cursor": cursor}


class DecisionIn(Schema):
    decision = fields.String(required=True, validate=validate.OneOf(["approve", "reject"]))
    reason = fields.String(load_default="", validate=validate.Length(max=200))


@blp.route("/reviews/<application_id>/decision", methods=["POST"])
@staff_required("reviewer")
@blp.doc(security=BEARER)
@blp.arguments(DecisionIn)
@blp.response(200, ReviewOut)
@refusals(blp, STAFF_AUTH, JSON_BODY, s400="REJECTION_REASON_REQUIRED：驳回时须填写 reason",
          s404="NOT_FOUND：没有这份申请", s409="APPLICATION_NOT_PENDING：该申请不在待人工审核状态",
          s422="批准时政策引擎重新检查的拒绝代码（AUTHORIZER_*、BENEFICIARY_*、RELATION_* …、REGION_NOT_COVERED）")
def decide(data, application_id):
    """审核员作出决定: approve | reject (a rejection needs a reason)."""
    app = manual_reviews.decide_manually(current_staff(), application_id, data["decision"], data["reason"].strip())
    return dump_review(app)


@blp.route("/materials/<material_id>")
@staff_required("reviewer")
@blp.doc(security=BEARER)
@blp.response(200, description="the file, as image/jpeg, image/png or application/pdf")
@blp.doc(**FILE_ANSWER)
@refusals(blp, STAFF_AUTH, s404="NOT_FOUND：不存在、未附在申请上，或其申请已不在待审核状态")
def review_material(material_id):
    """审核员查看申请所附的证明材料 (audited); a material attached to no application answers 404."""
    return send_material(*materials.file_for_review(current_staff(), material_id))
