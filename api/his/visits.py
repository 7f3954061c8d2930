"""The steps of a visit before its settlement: 2201 门诊挂号 (issues mdtrt_id), 2203 就诊信息上传, 2204 费用明细上传
(each line priced against the 医保目录: a code not in it is 全自费), 2205 撤销明细."""
from __future__ import annotations

import datetime as dt
import secrets
from decimal import Decimal

from sqlalchemy import delete, select

from api.extensions import db
from api.his.amounts import AmountError, quantity, to_fen, to_yuan
from api.his.envelope import GatewayError, data_of, text_field
from api.his.persons import by_psn_no, psn_no
from api.models import HisFeeDetail, HisSettlement, HisVisit, Institution
from api.services.catalogue import lookup
from api.timefmt import SHANGHAI

MAX_LINES = 1000
# 医疗收费项目类别 of the national list, by our category
CHRGITM_TYPE = {"drug": "09", "treatment": "05", "material": "08", "non_medical": "14"}


def new_id(prefix: str) -> str:
    """A 30-character id: prefix, Beijing time to the second, random digits."""
    stamp = dt.datetime.now(SHANGHAI).strftime("%Y%m%d%H%M%S")
    return prefix + stamp + f"{secrets.randbelow(10 ** (30 - len(prefix) - 14)):0{30 - len(prefix) - 14}d}"


def visit_of(institution: Institution, data: dict) -> HisVisit:
    """The visit `mdtrt_id` names, of this institution, and of the person `psn_no` names when it is sent."""
    visit = db.session.get(HisVisit, text_field(data, "mdtrt_id", max_len=30))
    if visit is None or visit.institution_id != institution.id:
        raise GatewayError("VISIT_NOT_FOUND")
    sent = text_field(data, "psn_no", required=False, max_len=30)
    if sent and sent != str(visit.patient_id):
        raise GatewayError("PSN_MISMATCH")
    return visit


def register(institution: Institution, envelope: dict) -> dict:
    """2201: a visit of the person, at this institution; the credential is checked at 2206/2207 (R9)."""
    data = data_of(envelope)
    if not institution.designated:
        raise GatewayError("NOT_DESIGNATED")
    person = by_psn_no(text_field(data, "psn_no", max_len=30))
    text_field(data, "mdtrt_cert_type", max_len=3)
    visit = HisVisit(id=new_id("MD"), institution_id=institution.id, patient_id=person.id,
                     insutype=text_field(data, "insutype", required=False, max_len=6),
                     med_type=text_field(data, "med_type", required=False, max_len=6) or "11",
                     ipt_otp_no=text_field(data, "ipt_otp_no", required=False, max_len=30))
    db.session.add(visit)
    db.session.flush()
    return {"data": {"mdtrt_id": visit.id, "psn_no": psn_no(person), "ipt_otp_no": visit.ipt_otp_no,
                     "exp_content": ""}}


def upload_visit_info(institution: Institution, envelope: dict) -> dict:
    """2203: the visit's mdtrtinfo and diseinfo, stored as sent; med_type updates the visit's."""
    given = envelope.get("input") or {}
    info = given.get("mdtrtinfo")
    if not isinstance(info, dict):
        raise GatewayError("FIELD_REQUIRED", "input.mdtrtinfo")
    visit = visit_of(institution, info)
    visit.med_type = text_field(info, "med_type", required=False, max_len=6) or visit.med_type
    diseinfo = given.get("diseinfo") if isinstance(given.get("diseinfo"), list) else []
    visit.mdtrtinfo = {"mdtrtinfo": _plain(info), "diseinfo": _plain(diseinfo)}
    return {}


def _plain(value):
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _batch_settled(visit_id: str, chrg_bchno: str) -> bool:
    return db.session.scalar(select(HisSettlement.setl_id).where(
        HisSettlement.visit_id == visit_id, HisSettlement.chrg_bchno == chrg_bchno, HisSettlement.kind == "settle",
        HisSettlement.reversed_at.is_(None))) is not None


def upload_fees(institution: Institution, envelope: dict) -> dict:
    """2204: the lines of `input.feedetail[]`, each priced against the catalogue; result[] tells the HIS how."""
    lines = (envelope.get("input") or {}).get("feedetail")
    if not isinstance(lines, list) or not lines or len(lines) > MAX_LINES:
        raise GatewayError("FIELD_REQUIRED", "input.feedetail")
    if not all(isinstance(line, dict) for line in lines):
        raise GatewayError("FIELD_INVALID", "input.feedetail")
    visit = visit_of(institution, lines[0])
    catalogue = lookup(text_field(line, "med_list_codg", max_len=50) for line in lines)
    seen, rows, result = set(), [], []
    for line in lines:
        if text_field(line, "mdtrt_id", max_len=30) != visit.id:
            raise GatewayError("FIELD_INVALID", "feedetail.mdtrt_id")
        sn = text_field(line, "feedetl_sn", max_len=30)
        batch = text_field(line, "chrg_bchno", max_len=30)
        code = text_field(line, "med_list_codg", max_len=50)
        try:
            amount = to_fen(line.get("det_item_fee_sumamt"), "det_item_fee_sumamt")
            cnt, pric = quantity(line.get("cnt"), "cnt"), quantity(line.get("pric"), "pric")
        except AmountError as exc:
            raise GatewayError("FIELD_INVALID", str(exc)) from None
        if amount < 0:
            raise GatewayError("FIELD_INVALID", "det_item_fee_sumamt")
        if sn in seen:
            raise GatewayError("FEE_DETAIL_DUPLICATE", sn)
        if _batch_settled(visit.id, batch):
            raise GatewayError("FEE_BATCH_SETTLED")
        seen.add(sn)
        item = catalogue.get(code)
        category = item.category if item else "non_medical"
        covered = item is not None and category != "non_medical"
        name = item.name if item else (text_field(line, "medins_list_name", required=False, max_len=200)
                                       or text_field(line, "medins_list_codg", required=False, max_len=150) or code)
        rows.append(HisFeeDetail(visit_id=visit.id, chrg_bchno=batch, feedetl_sn=sn, med_list_codg=code,
                                 medins_list_codg=text_field(line, "medins_list_codg", required=False, max_len=150),
                                 name=name, category=category, in_catalogue=item is not None, amount_fen=amount,
                                 cnt=str(cnt), pric=str(pric)))
        yuan = to_yuan(amount)
        zero = to_yuan(0)
        result.append({"feedetl_sn": sn, "det_item_fee_sumamt": yuan, "cnt": cnt, "pric": pric,
                       "pric_uplmt_amt": zero, "selfpay_prop": Decimal("0.00") if covered else Decimal("1.00"),
                       "fulamt_ownpay_amt": zero if covered else yuan, "overlmt_amt": zero, "preselfpay_amt": zero,
                       "inscp_scp_amt": yuan if covered else zero, "chrgitm_lv": "01" if covered else "03",
                       "med_chrgitm_type": CHRGITM_TYPE[category], "bas_medn_flag": "0", "hi_nego_drug_flag": "0",
                       "chld_medc_flag": "0", "list_sp_item_flag": "0", "lmt_used_flag": "0", "drt_reim_flag": "0",
                       "memo": "" if covered else "不在医保目录内，全自费"})
    taken = set(db.session.scalars(select(HisFeeDetail.feedetl_sn).where(HisFeeDetail.visit_id == visit.id,
                                                                          HisFeeDetail.feedetl_sn.in_(seen))))
    if taken:
        raise GatewayError("FEE_DETAIL_DUPLICATE", sorted(taken)[0])
    db.session.add_all(rows)
    db.session.flush()  # the unique (visit, feedetl_sn) guards against a concurrent upload of the same lines
    return {"result": result}


def revoke_fees(institution: Institution, envelope: dict) -> dict:
    """2205: removes a batch's lines (or one line by feedetl_sn; "0000" means all), before it is settled."""
    data = data_of(envelope)
    visit = visit_of(institution, data)
    batch = text_field(data, "chrg_bchno", max_len=30)
    if _batch_settled(visit.id, batch):
        raise GatewayError("FEE_BATCH_SETTLED")
    condition = [HisFeeDetail.visit_id == visit.id, HisFeeDetail.chrg_bchno == batch]
    sn = text_field(data, "feedetl_sn", required=False, max_len=30)
    if sn and sn != "0000":
        condition.append(HisFeeDetail.feedetl_sn == sn)
    if not db.session.execute(delete(HisFeeDetail).where(*condition)).rowcount:
        raise GatewayError("FEE_BATCH_NOT_FOUND")
    return {}


def batch_lines(visit: HisVisit, chrg_bchno: str) -> list[HisFeeDetail]:
    lines = db.session.scalars(select(HisFeeDetail).where(HisFeeDetail.visit_id == visit.id,
                                                          HisFeeDetail.chrg_bchno == chrg_bchno)
                               .order_by(HisFeeDetail.id)).all()
    if not lines:
        raise GatewayError("FEE_BATCH_NOT_FOUND")
    return lines
