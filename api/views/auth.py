"""Logins: persons through a channel (实名认证 on the first login), staff with username and password."""

from api import ratelimit
from api.auth import issue_token
from api.extensions import smorest
from api.schemas import JSON_BODY, Blueprint, LoginIn, LoginOut, StaffLoginIn, StaffLoginOut, refusals
from api.services import logins, people
from api.timefmt import local_iso

blp = Blueprint("auth", __name__, url_prefix="/api/v1", description="登录（参保人渠道登录、工作人员登录）")


@blp.record_once
def _document_bearer(_state) -> None:
    """Declares the bearer scheme that person and staff endpoints name in their `security`; drops what is not ours."""
    components = smorest.spec.components
    if "bearerAuth" not in components.security_schemes:
        components.security_scheme("bearerAuth", {
            "type": "http", "scheme": "bearer",
            "description": "token from POST /auth/login or POST /staff/login: Authorization: Bearer <token>"})
    # flask-smorest's page-number pagination is not ours (api/pagination.py pages by cursor): no such component
    components.schemas.pop("PaginationMetadata", None)
    components.headers_lazy.pop("PAGINATION", None)
    components.headers.pop("PAGINATION", None)


_RATE_LIMITED = "RATE_LIMITED：登录尝试过于频繁（按 IP 与按账号计数）"
_LIMITS_UNAVAILABLE = "LOGIN_UNAVAILABLE：登录次数限制所依赖的服务（Redis）不可用，暂不受理工作人员登录"


@blp.route("/auth/login", methods=["POST"])
@blp.arguments(LoginIn)
@blp.response(200, LoginOut)
@refusals(blp, JSON_BODY,
          s400="REALNAME_REQUIRED：首次登录须填写 name 与 id_number（field 指出缺哪一项）；"
               "INVALID_ID_NUMBER：身份证号码校验不通过",
          s401="REALNAME_MISMATCH：姓名与身份证号码不符或未查到参保信息（两者同一答复）；"
               "CHANNEL_CODE_INVALID：渠道不认可该 code",
          s429=_RATE_LIMITED)
def login(data):
    """参保人渠道登录: the code names a channel account; its first login binds it to a person by 实名认证."""
    # Fails open when Redis is down: the channel's own code exchange is the real limit here (a code is issued to
    # a logged-in WeChat/Alipay/… user, is short-lived and good once), and the elderly people this service is for
    # must not be locked out of their accounts by our own outage. Staff logins below fail closed instead.
    ratelimit.hit("login", f"{data['channel']}:{data['code']}")
    person = logins.login_person(data["channel"], data["code"], data.get("name"), data.get("id_number"))
    token, expires_at = issue_token("person", person.id, ch=data["channel"])
    return {"token": token, "expires_at": local_iso(expires_at), "person": people.profile(person)}


@blp.route("/staff/login", methods=["POST"])
@blp.arguments(StaffLoginIn)
@blp.response(200, StaffLoginOut)
@refusals(blp, JSON_BODY, s401="INVALID_CREDENTIALS：用户名或密码错误（或账号已停用）", s429=_RATE_LIMITED,
          s503=_LIMITS_UNAVAILABLE)
def staff_login(data):
    """工作人员登录（窗口经办人 clerk、审核员 reviewer、管理员 admin）; failed attempts count toward the limits."""
    # Fails closed: a password alone guards staff powers (reviews, every person's records), so without the
    # counters in Redis no attempt is allowed: 503 LOGIN_UNAVAILABLE with Retry-After, never unlimited guesses.
    ratelimit.hit("staff-login", data["username"].strip().lower(), fail_closed=True)
    staff = logins.login_staff(data["username"].strip(), data["password"])
    token, expires_at = issue_token("staff", staff.id)
    return {"token": token, "expires_at": local_iso(expires_at),
            "staff": {"username": staff.username, "roles": list(staff.roles)}}
