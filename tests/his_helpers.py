"""A hospital system (HIS) as the public HIS code of the research notes builds its messages: the 18-field envelope
in OH/YR's order, the `_api_*` gateway headers, and the value formats of each client (see national-interface.md)."""
from __future__ import annotations

import datetime as dt
import itertools
import json
import random
import re
from decimal import Decimal

from api.extensions import db
from api.his.signing import encrypt, signed_headers
from api.models import CatalogueItem, InstitutionSigningKey
from api.auth import hash_key

URL = "/fsi/api/rsfComIfsService/callService"
_seq = itertools.count(1)

CATALOGUE = [("XJ01CAA040E001010100391", "阿莫西林胶囊", "drug"),
             ("250101015", "血细胞分析（血常规）", "treatment"),
             ("C14010111300001600009", "一次性使用无菌注射器", "material"),
             ("XA10BAA001A001010104415", "盐酸二甲双胍片", "drug")]


def load_catalogue() -> None:
    for code, name, category in CATALOGUE:
        db.session.merge(CatalogueItem(code=code, name=name, category=category))
    db.session.commit()


def give_signing_key(institution, api_key: str) -> None:
    db.session.add(InstitutionSigningKey(institution_id=institution.id, key_hash=hash_key(api_key),
                                         ciphertext=encrypt(api_key)))
    db.session.commit()


def encode(body: dict) -> bytes:
    # json's float repr is float.__repr__, so write the Decimals' own text in by hand
    marked = json.dumps(_mark(body), ensure_ascii=False)
    return re.sub(r'"@@(-?[0-9.]+)@@"', r"\1", marked).encode()


def _mark(o):
    if isinstance(o, Decimal):
        return f"@@{o}@@"
    if isinstance(o, dict):
        return {k: _mark(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_mark(v) for v in o]
    return o


class His:
    """One institution's HIS. `style`: ohc (application/json), yr (json;charset=utf-8, its extra envelope fields,
    signtype SM2), py (text/plain, posts to …/callService/{infno}), hs (POWERSI's reduced envelope)."""

    def __init__(self, client, code: str, api_key: str, admdvs: str = "440106", style: str = "ohc"):
        self.client, self.code, self.api_key, self.admdvs, self.style = client, code, api_key, admdvs, style
        self.sign_no = ""

    def msgid(self) -> str:
        now = dt.datetime.now()
        return f"{self.code[:12]}{now:%Y%m%d%H%M%S}{next(_seq) % 10000:04d}"

    def envelope(self, infno: str, given: dict, msgid: str | None = None, insuplc: str = "") -> dict:
        msgid = msgid or self.msgid()
        if self.style == "hs":
            return {"infno": infno, "msgid": msgid, "insuplc_admdvs": insuplc, "medins_code": self.code,
                    "insur_code": self.admdvs, "mdtrtarea_admvs": self.admdvs, "opter": "1022", "opter_name": "收费员",
                    "input": given}
        body = {"infno": infno, "msgid": msgid, "mdtrtarea_admvs": self.admdvs, "insuplc_admdvs": insuplc,
                "recer_sys_code": "YBXT", "dev_no": "", "dev_safe_info": "", "cainfo": "",
                "signtype": "SM2" if self.style == "yr" else "", "infver": "V1.0", "opter_type": "1",
                "opter": "1022", "opter_name": "收费员", "inf_time": f"{dt.datetime.now():%Y-%m-%d %H:%M:%S}",
                "fixmedins_code": self.code, "fixmedins_name": "演示医院", "sign_no": self.sign_no, "input": given}
        if self.style == "yr":
            body.update(fixmedins_soft_fcty="", enc_type="")
        if self.style == "ohc" and infno == "2207":
            body.update(serv_code="<服务商代码>", serv_sign="<服务商识别码>")
        return body

    def post(self, infno: str, given: dict, msgid: str | None = None, headers: dict | None = None,
             raw: bytes | None = None, insuplc: str = ""):
        body = raw if raw is not None else encode(self.envelope(infno, given, msgid, insuplc))
        content_type = {"ohc": "application/json", "yr": "application/json;charset=utf-8",
                        "py": "text/plain; charset=utf-8", "hs": "application/json"}[self.style]
        url = f"{URL}/{infno}" if self.style == "py" else URL
        sent = headers if headers is not None else signed_headers(self.api_key, self.code, infno)
        r = self.client.post(url, data=body, headers={"Content-Type": content_type, **sent})
        assert r.status_code == 200
        return r

    def call(self, infno: str, given: dict, **kw) -> dict:
        return json.loads(self.post(infno, given, **kw).data, parse_float=Decimal)

    # --- the visit, step by step, as OHJ's outpatient flow does it --------------------------------------------

    def amount(self, value: str):
        """An amount in this client's format: C# decimal / BigDecimal numbers, or the PY SDK's strings."""
        return value if self.style == "py" else Decimal(value)

    def sign_in(self) -> dict:
        out = self.call("9001", {"signIn": {"opter_no": "1022", "mac": "00-16-3E-00-00-01", "ip": "10.0.0.8"}})
        self.sign_no = out["output"]["signinoutb"]["sign_no"]
        return out

    def person(self, cert_type: str, cert_no: str, card_sn: str = "") -> dict:
        return self.call("1101", {"data": {"mdtrt_cert_type": cert_type, "mdtrt_cert_no": cert_no, "card_sn": card_sn,
                                           "begntime": "", "psn_cert_type": "", "certno": "", "psn_name": ""}})

    def register(self, psn_no: str, cert_type: str, cert_no: str, insutype: str = "310") -> dict:
        return self.call("2201", {"data": {"psn_no": psn_no, "insutype": insutype,
                                           "begntime": f"{dt.datetime.now():%Y-%m-%d %H:%M:%S}",
                                           "mdtrt_cert_type": cert_type, "mdtrt_cert_no": cert_no,
                                           "ipt_otp_no": f"MZ{random.randrange(10 ** 8):08d}", "atddr_no": "D001",
                                           "dr_name": "王医生", "dept_code": "A03", "dept_name": "内科", "caty": "A03"}})

    def visit_info(self, mdtrt_id: str, psn_no: str) -> dict:
        return self.call("2203", {"mdtrtinfo": {"mdtrt_id": mdtrt_id, "psn_no": psn_no, "med_type": "11",
                                                "begntime": f"{dt.datetime.now():%Y-%m-%d %H:%M:%S}",
                                                "main_cond_dscr": "", "dise_codg": "J06.900", "dise_name": "急性上呼吸道感染",
                                                "birctrl_type": "", "birctrl_matn_date": "", "matn_type": "",
                                                "geso_val": ""},
                                  "diseinfo": [{"diag_type": "1", "diag_srt_no": "1", "diag_code": "J06.900",
                                                "diag_name": "急性上呼吸道感染", "diag_dept": "内科", "dise_dor_no": "D001",
                                                "dise_dor_name": "王医生",
                                                "diag_time": f"{dt.datetime.now():%Y-%m-%d %H:%M:%S}",
                                                "vali_flag": "1"}]})

    def fees(self, mdtrt_id: str, psn_no: str, chrg_bchno: str, lines: list[tuple[str, str]]) -> dict:
        """lines: (med_list_codg, amount in 元 as text); cnt 1, pric = the amount."""
        detail = [{"feedetl_sn": f"{chrg_bchno[-6:]}{i:04d}", "mdtrt_id": mdtrt_id, "psn_no": psn_no, "chrg_bchno": chrg_bchno,
                   "dise_codg": "", "rxno": "", "rx_circ_flag": "0",
                   "fee_ocur_time": f"{dt.datetime.now():%Y-%m-%d %H:%M:%S}", "med_list_codg": code,
                   "medins_list_codg": f"YN{i:06d}", "det_item_fee_sumamt": self.amount(amount),
                   "cnt": self.amount("1.0000"), "pric": self.amount(amount), "sin_dos_dscr": "", "used_frqu_dscr": "",
                   "prd_days": self.amount("0"), "medc_way_dscr": "", "bilg_dept_codg": "A03", "bilg_dept_name": "内科",
                   "bilg_dr_codg": "D001", "bilg_dr_name": "王医生", "acord_dept_codg": "", "acord_dept_name": "",
                   "orders_dr_code": "", "orders_dr_name": "", "hosp_appr_flag": "1", "tcmdrug_used_way": "",
                   "etip_flag": "", "etip_hosp_code": "", "dscg_tkdrug_flag": "", "matn_fee_flag": "",
                   "exp_content": ""}
                  for i, (code, amount) in enumerate(lines, 1)]
        return self.call("2204", {"feedetail": detail})

    def settle_data(self, psn_no, cert_type, cert_no, mdtrt_id, chrg_bchno, medfee: str, acct_used_flag="1",
                    card_sn="") -> dict:
        data = {"psn_no": psn_no, "mdtrt_cert_type": cert_type, "mdtrt_cert_no": cert_no, "med_type": "11",
                "medfee_sumamt": self.amount(medfee), "psn_setlway": "01", "mdtrt_id": mdtrt_id,
                "chrg_bchno": chrg_bchno, "insutype": "310", "acct_used_flag": acct_used_flag}
        if self.style == "hs":  # POWERSI: the breakdown amounts as "", and its extra fields
            data.update(card_sn=card_sn, psn_cert_type="1", certno="", psn_type="", pub_hosp_rfom_flag="",
                        fulamt_ownpay_amt="", overlmt_selfpay="", preselfpay_amt="", inscp_scp_amt="")
        return data

    def preview(self, **kw) -> dict:
        return self.call("2206", {"data": self.settle_data(**kw)})

    def settle(self, msgid: str | None = None, **kw) -> dict:
        data = self.settle_data(**kw)
        data.update(invono=("INV" + kw["chrg_bchno"])[-20:])  # a retry sends the same body
        if self.style != "hs":
            data.update(fulamt_ownpay_amt=self.amount("0"), overlmt_selfpay=self.amount("0"),
                        preselfpay_amt=self.amount("0"), inscp_scp_amt=self.amount(kw["medfee"]))
        return self.call("2207", {"data": data}, msgid=msgid)

    def cancel(self, setl_id: str, mdtrt_id: str, psn_no: str) -> dict:
        return self.call("2208", {"data": {"psn_no": psn_no, "mdtrt_id": mdtrt_id, "setl_id": setl_id}})

    def void(self, omsgid: str, psn_no: str) -> dict:
        return self.call("2601", {"data": {"psn_no": psn_no, "omsgid": omsgid, "oinfno": "2207"}})
