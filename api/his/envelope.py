"""The national interface's envelopes: reading what real HIS code posts, and the answer every HIS client accepts.

A request is one JSON object (whatever its Content-Type: application/json, with or without a charset, text/plain),
read with amounts as Decimal. Unknown envelope fields (serv_code, serv_sign, fixmedins_soft_fcty, enc_type …) are
ignored. An answer carries `infcode` as a JSON number — 0 ok, -1 refused — which is the one form every client read
in the research notes accepts, the Chinese `err_msg` of a catalogue code, and amounts as JSON numbers written from
Decimal text (never through a float).
"""
from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from decimal import Decimal

from api.messages import MESSAGES
from api.timefmt import SHANGHAI

MAX_BODY = 2 * 1024 * 1024  # a 2204 upload of a few hundred lines is far below this

# The gateway's own refusals; the settlement service's codes (IMPERSONATION, NOT_DESIGNATED …) come from
# api.messages, so one rule says one thing in both interfaces.
HIS_MESSAGES = {
    "MALFORMED_ENVELOPE": "报文格式不正确：须为 JSON 对象，并含 infno、msgid、input",
    "UNSUPPORTED_INFNO": "不支持的交易编号",
    "INFNO_MISMATCH": "交易编号与请求地址或 _api_name 不一致",
    "SIGNATURE_MISSING": "缺少接口签名信息（_api_access_key、_api_timestamp、_api_name、_api_version、_api_signature）",
    "SIGNATURE_INVALID": "接口签名校验失败",
    "TIMESTAMP_STALE": "接口请求时间戳已过期（超过 5 分钟），请校准系统时间后重试",
    "UNKNOWN_INSTITUTION": "未登记的定点医药机构，或机构未配置接口密钥",
    "FIXMEDINS_MISMATCH": "报文中的定点医药机构编号与签名机构不一致",
    "MSGID_REUSED": "报文ID已用于内容不同的交易，请生成新的报文ID",
    "MSGID_VOIDED": "该报文ID对应的交易已冲正，不能再次办理",
    "FIELD_REQUIRED": "缺少必填字段",
    "FIELD_INVALID": "字段格式不正确",
    "CERT_TYPE_UNSUPPORTED": "就诊凭证类型须为 01（医保电子凭证）、02（居民身份证）或 03（社会保障卡）",
    "CARD_SN_REQUIRED": "使用社会保障卡时须提供卡识别码 card_sn",
    "PSN_NOT_FOUND": "未查询到该人员的参保信息",
    "PSN_MISMATCH": "人员编号与就诊信息不一致",
    "VISIT_NOT_FOUND": "未找到该就诊信息（mdtrt_id），请先办理门诊挂号（2201）",
    "FEE_DETAIL_DUPLICATE": "费用明细流水号重复上传",
    "FEE_BATCH_NOT_FOUND": "未找到该收费批次的费用明细，请先上传费用明细（2204）",
    "FEE_BATCH_SETTLED": "该收费批次已结算，不能修改或重复结算；如需更正请先撤销结算（2208）",
    "MEDFEE_MISMATCH": "医疗费总额与已上传的费用明细合计不一致",
    "SETTLEMENT_NOT_FOUND": "未找到该结算记录（setl_id）",
    "SETTLEMENT_REVERSED": "该结算已撤销，不能重复撤销",
    "REVERSAL_UNSUPPORTED": "只能冲正门诊结算（2207）",
    "ACCT_USED_FLAG_INVALID": "个人账户使用标志 acct_used_flag 须为 0 或 1",
}


class GatewayError(Exception):
    """A refusal answered as infcode -1 (with HTTP 200, as the platform answers)."""

    def __init__(self, code: str, detail: str | None = None):
        super().__init__(code)
        self.code = code
        base = HIS_MESSAGES.get(code) or MESSAGES.get(code) or MESSAGES["INVALID_INPUT"]
        self.message = f"{base}：{detail}" if detail else base


def parse(raw: bytes) -> dict:
    """The envelope as a dict, amounts as Decimal; GatewayError MALFORMED_ENVELOPE otherwise."""
    try:
        text = raw.decode("utf-8-sig").strip()
        envelope = json.loads(text, parse_float=Decimal)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise GatewayError("MALFORMED_ENVELOPE") from None
    if not isinstance(envelope, dict):
        raise GatewayError("MALFORMED_ENVELOPE")
    infno, msgid = envelope.get("infno"), envelope.get("msgid")
    if isinstance(infno, int) and not isinstance(infno, bool):
        infno = envelope["infno"] = str(infno)  # BZ declares infno as a 4-character field; some send a number
    if not isinstance(infno, str) or not re.fullmatch(r"[0-9]{4}", infno):
        raise GatewayError("MALFORMED_ENVELOPE", "infno")
    if not isinstance(msgid, str) or not 1 <= len(msgid) <= 40 or not msgid.isprintable():
        raise GatewayError("MALFORMED_ENVELOPE", "msgid")
    if not isinstance(envelope.get("input", {}), dict):
        raise GatewayError("MALFORMED_ENVELOPE", "input")
    return envelope


def data_of(envelope: dict) -> dict:
    """`input.data`, the object most transactions carry."""
    data = (envelope.get("input") or {}).get("data")
    if not isinstance(data, dict):
        raise GatewayError("FIELD_REQUIRED", "input.data")
    return data


def text_field(data: dict, name: str, required: bool = True, max_len: int = 50) -> str:
    """A string field; numbers are taken as their text (some HIS send codes as numbers)."""
    value = data.get(name)
    if isinstance(value, (int, Decimal)) and not isinstance(value, bool):
        value = str(value)
    if value is None or value == "":
        if required:
            raise GatewayError("FIELD_REQUIRED", name)
        return ""
    if not isinstance(value, str) or len(value) > max_len:
        raise GatewayError("FIELD_INVALID", name)
    return value.strip()


def now_stamp() -> str:
    """yyyyMMddHHmmssSSS, Beijing time."""
    return dt.datetime.now(SHANGHAI).strftime("%Y%m%d%H%M%S%f")[:17]


def ref_msgid(admdvs: str) -> str:
    """接收方报文ID: admdvs(6) + yyyyMMddHHmmss(14) + seq(10)."""
    return (admdvs or "000000")[:6].ljust(6, "0") + dt.datetime.now(SHANGHAI).strftime("%Y%m%d%H%M%S") + \
        f"{secrets.randbelow(10 ** 10):010d}"


def answer(output: dict, refmsg_time: str, admdvs: str, warn_msg: str = "") -> dict:
    return {"infcode": 0, "inf_refmsgid": ref_msgid(admdvs), "refmsg_time": refmsg_time,
            "respond_time": now_stamp(), "err_msg": "", "warn_msg": warn_msg, "cainfo": "", "signtype": "",
            "output": output}


def failure(error: GatewayError, refmsg_time: str, admdvs: str = "") -> dict:
    return {"infcode": -1, "inf_refmsgid": ref_msgid(admdvs), "refmsg_time": refmsg_time,
            "respond_time": now_stamp(), "err_msg": error.message, "warn_msg": "", "cainfo": "", "signtype": "",
            "output": {}}


_DECIMAL = re.compile(r'"\\u0000(-?[0-9]+(?:\.[0-9]+)?)\\u0000"')


def _mark(value):
    if isinstance(value, Decimal):
        return f"\u0000{value}\u0000"
    if isinstance(value, dict):
        return {k: _mark(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mark(v) for v in value]
    return value


def dumps(answer_: dict) -> str:
    """The answer as JSON, each Decimal written as the JSON number of its own text (4.52, not "4.52", and not the
    float 4.5199999…)."""
    text = json.dumps(_mark(answer_), ensure_ascii=False, separators=(",", ":"))
    return _DECIMAL.sub(r"\1", text)


def to_store(value):
    """The answer with each Decimal as {"$d": text}, for a JSON column (read back by `revive`)."""
    if isinstance(value, Decimal):
        return {"$d": str(value)}
    if isinstance(value, dict):
        return {k: to_store(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_store(v) for v in value]
    return value


def revive(value):
    """A stored answer with its Decimals back."""
    if isinstance(value, dict):
        if set(value) == {"$d"}:
            return Decimal(value["$d"])
        return {k: revive(v) for k, v in value.items()}
    if isinstance(value, list):
        return [revive(v) for v in value]
    return value
