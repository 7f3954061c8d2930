"""The national platform's interface for hospital systems (HIS): `POST /fsi/api/rsfComIfsService/callService`,
and `…/callService/{infno}` as one client SDK posts; the protocol is api/his/."""
from flask import Blueprint, Response, request

from api.his import gateway
from api.his.envelope import MAX_BODY, GatewayError, dumps, failure, now_stamp

bp = Blueprint("fsi", __name__)
PATH = "/fsi/api/rsfComIfsService/callService"


@bp.post(PATH)
@bp.post(PATH + "/<infno>")
@bp.post("/api/v1" + PATH)
@bp.post("/api/v1" + PATH + "/<infno>")
def call_service(infno: str | None = None):
    """Any Content-Type (application/json, with a charset, text/plain): the body is read as JSON regardless."""
    if (request.content_length or 0) > MAX_BODY:
        answer = failure(GatewayError("MALFORMED_ENVELOPE", "报文过大"), now_stamp())
    else:
        raw = request.stream.read(MAX_BODY + 1)
        answer = failure(GatewayError("MALFORMED_ENVELOPE", "报文过大"), now_stamp()) if len(raw) > MAX_BODY \
            else gateway.handle(raw, request.headers, infno)
    return Response(dumps(answer), status=200, content_type="application/json;charset=utf-8")
