"""1101 人员信息获取, and how a 就诊凭证 (mdtrt_cert_type + mdtrt_cert_no) names a person.

01 医保电子凭证: the token is our voucher code (GET /me/voucher); 02 居民身份证: the ID number; 03 社会保障卡: the
card number, with the card's `card_sn` (required, as the platform requires it; the registry keeps no card_sn to
compare it with). `psn_no` (人员编号) is our person id as text.
"""
from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from sqlalchemy import select

from api import idnumber, ledger
from api.auth import voucher_holder
from api.extensions import db
from api.his.amounts import to_yuan
from api.his.envelope import GatewayError, data_of, text_field
from api.models import Institution, Person
from api.services.people import person_by_id_number
from api.timefmt import local_today

INSUTYPE = {"employee": "310", "resident": "390"}  # 职工基本医疗保险 / 城乡居民基本医疗保险
INSU_STAS = {"normal": "1", "suspended": "2", "terminated": "4"}  # 正常参保 / 暂停参保 / 终止参保


@dataclass(frozen=True)
class Credential:
    cert_type: str
    holder: Person | None   # whose credential it is (None: nobody's)
    settle_with: str        # what the settlement service takes as this credential (a card number or a voucher code)
    expired: bool = False


def credential(data: dict, need_holder: bool = True) -> Credential:
    """The credential `data` carries; with need_holder False (2206/2207, whose field list has no card_sn) a card's
    holder is left to the settlement service."""
    cert_type = text_field(data, "mdtrt_cert_type", max_len=3)
    cert_no = text_field(data, "mdtrt_cert_no", max_len=200)
    if cert_type == "01":
        found = voucher_holder(cert_no)
        holder = db.session.get(Person, found[0]) if found else None
        return Credential(cert_type, holder, cert_no, bool(found and found[1]))
    if cert_type == "02":
        try:
            holder = person_by_id_number(idnumber.normalize(cert_no))
        except idnumber.InvalidIdNumber:
            raise GatewayError("INVALID_ID_NUMBER", "mdtrt_cert_no") from None
        # 刷身份证: the card itself is the holder's; the settlement service checks R9 on his card number
        return Credential(cert_type, holder, holder.card_number if holder else cert_no)
    if cert_type == "03":
        if need_holder and not text_field(data, "card_sn", required=False, max_len=32):
            raise GatewayError("CARD_SN_REQUIRED")
        holder = db.session.scalar(select(Person).where(Person.card_number == cert_no)) if need_holder else None
        return Credential(cert_type, holder, cert_no)
    raise GatewayError("CERT_TYPE_UNSUPPORTED")


def psn_no(person: Person) -> str:
    return str(person.id)


def by_psn_no(value: str) -> Person:
    person = db.session.get(Person, int(value)) if value.isdigit() and len(value) <= 18 else None
    if person is None:
        raise GatewayError("PSN_NOT_FOUND")
    return person


def baseinfo(person: Person) -> dict:
    birth = idnumber.birth_date(person.id_number)
    days = (local_today() - birth).days
    return {"psn_no": psn_no(person), "psn_cert_type": "01", "certno": person.id_number, "psn_name": person.name,
            "gend": "1" if idnumber.is_male(person.id_number) else "2", "naty": "", "brdy": birth.isoformat(),
            "age": (Decimal(days) / Decimal("365.2425")).quantize(Decimal("0.1"), ROUND_DOWN), "exp_content": ""}


def own_balance_fen(person: Person) -> int:
    return ledger.balance_of(person)[0] if person.insurance_type == "employee" else 0


def person_info(institution: Institution, envelope: dict) -> dict:
    """1101: the holder of the credential, with one insuinfo row for his one insurance type (balc = his own
    account's balance). Only a 定点医药机构 may ask (R8), as only one may register a visit or settle."""
    if not institution.designated:
        raise GatewayError("NOT_DESIGNATED")
    found = credential(data_of(envelope))
    if found.holder is None:
        raise GatewayError("PSN_NOT_FOUND")
    if found.expired:
        raise GatewayError("VOUCHER_EXPIRED")
    person = found.holder
    insuinfo = {"balc": to_yuan(own_balance_fen(person)), "insutype": INSUTYPE.get(person.insurance_type, ""),
                "psn_type": "", "psn_insu_stas": INSU_STAS.get(person.status, ""), "psn_insu_date": "",
                "paus_insu_date": "", "cvlserv_flag": "0", "insuplc_admdvs": person.region_code, "emp_name": ""}
    return {"baseinfo": baseinfo(person), "insuinfo": [insuinfo], "idetinfo": []}
