"""2206 门诊预结算 (our quote), 2207 门诊结算 (our settlement), 2208 门诊结算撤销 (our refund) and 2601 冲正.

The bill is the batch (`chrg_bchno`) that 2204 uploaded; its lines keep the catalogue's categories, so 全自费 lines
are paid in cash. The funds' part is the patient's region's outpatient pooling rule applied to the 政策范围内 part
under the patient's lock (the year's 起付线 and cap read from this table's earlier settlements), and the rest is the
personal burden, paid by the settlement service in the R10 order — own account, family accounts, cash — or all in
cash when acct_used_flag is "0". How the amounts relate is in setlinfo() and the README.
"""
from __future__ import annotations

from decimal import Decimal

from sqlalchemy import bindparam, func, insert, select

from api import policy
from api.extensions import db
from api.his.amounts import AmountError, to_fen, to_yuan
from api.his.context import Context
from api.his.envelope import GatewayError, data_of, revive, text_field
from api.his.persons import INSUTYPE, baseinfo, credential, own_balance_fen
from api.his.visits import batch_lines, new_id, visit_of
from api.models import HisMessage, HisSettlement, Person, Settlement, utcnow
from api.services import settlements
from api.services.settlement_store import PersonRow
from api.services.tx import unit_of_work
from api.timefmt import SHANGHAI, local_today

AMOUNT_FIELDS = ("medfee_sumamt", "fulamt_ownpay_amt", "overlmt_selfpay", "preselfpay_amt", "inscp_scp_amt",
                 "act_pay_dedc", "hifp_pay", "cvlserv_pay", "hifes_pay", "hifmi_pay", "hifob_pay", "maf_pay", "oth_pay",
                 "fund_pay_sumamt", "psn_part_amt", "acct_pay", "psn_cash_pay", "hosp_part_amt", "acct_mulaid_pay")
FUND_NAMES = {"310100": "职工基本医疗保险统筹基金", "390100": "城乡居民基本医疗保险基金",
              "310200": "城镇职工基本医疗保险个人账户基金"}


class _Pooling:
    """The fund's part, computed by the policy engine under the patient's lock; what it found is kept for setlinfo."""

    def __init__(self) -> None:
        self.part = policy.PooledPart(0, 0)
        self.ratio = 0

    def __call__(self, patient: PersonRow, eligible_fen: int, region_policy: policy.Policy | None) -> int:
        rule = (region_policy or _NO_POLICY).outpatient_pooling
        deducted, pooled = db.session.execute(_YEAR_SO_FAR, {"patient": patient.id, "year": local_today().year}).one()
        self.part = policy.outpatient_pooled(rule, eligible_fen, int(deducted), int(pooled))
        self.ratio = rule.ratio_percent
        return self.part.pooled_fen


# the year's 起付线 and fund payments so far, asked at every settlement: built once
_YEAR_SO_FAR = select(func.coalesce(func.sum(HisSettlement.deductible_fen), 0),
                      func.coalesce(func.sum(HisSettlement.hifp_fen), 0)) \
    .where(HisSettlement.patient_id == bindparam("patient"), HisSettlement.year == bindparam("year"),
           HisSettlement.kind == "settle", HisSettlement.reversed_at.is_(None))


class _NoPolicy:
    outpatient_pooling = policy.OutpatientPooling()


_NO_POLICY = _NoPolicy()


class _Bill:
    """What 2206/2207 read from the message and the visit before the settlement service is asked."""

    def __init__(self, ctx: Context):
        data = data_of(ctx.envelope)
        self.data = data
        self.visit = visit_of(ctx.institution, data)
        self.chrg_bchno = text_field(data, "chrg_bchno", max_len=30)
        flag = text_field(data, "acct_used_flag", required=False, max_len=1) or "1"
        if flag not in ("0", "1"):
            raise GatewayError("ACCT_USED_FLAG_INVALID")
        self.use_accounts = flag == "1"
        self.credential = credential(data, need_holder=False)
        self.lines = batch_lines(self.visit, self.chrg_bchno)
        try:
            medfee = to_fen(data.get("medfee_sumamt"), "medfee_sumamt")
        except AmountError as exc:
            raise GatewayError("FIELD_INVALID", str(exc)) from None
        if medfee != sum(line.amount_fen for line in self.lines):
            raise GatewayError("MEDFEE_MISMATCH", f"明细合计 {to_yuan(sum(l.amount_fen for l in self.lines))} 元")
        self.patient = db.session.get(Person, self.visit.patient_id)
        # kept as read: the settlement's unit of work begins by ending (SQLite) or expiring (PostgreSQL) what the
        # session loaded, and the answer reads these again after it
        for row in (self.visit, self.patient, *self.lines):
            db.session.expunge(row)
        self.pooling = _Pooling()

    def body(self) -> dict:
        """The settlement service's bill: the batch's lines; pooled_fen is computed (`pooling`), not taken."""
        return {"patient_id_number": self.patient.id_number, "credential": self.credential.settle_with,
                "items": [{"code": line.med_list_codg, "name": line.name, "category": line.category,
                           "amount_fen": line.amount_fen} for line in self.lines], "pooled_fen": 0}


def _time(at) -> str:
    return at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def setlinfo(bill: _Bill, b: settlements.Breakdown, msgid: str, setl_id: str, balc_fen: int, at) -> dict:
    """Every field of the national list, never null. The amounts:
    medfee_sumamt = fund_pay_sumamt + psn_part_amt + hosp_part_amt (0);
    fund_pay_sumamt = hifp_pay (the pooling fund; the personal accounts are not funds here);
    psn_part_amt = acct_pay (own account) + acct_mulaid_pay (family share) + psn_cash_pay;
    inscp_scp_amt = medfee_sumamt − fulamt_ownpay_amt (全自费 lines); act_pay_dedc = the 起付线 part of this bill."""
    patient, visit = bill.patient, bill.visit
    family = sum(part["amount_fen"] for part in b.family)
    amounts = {
        "medfee_sumamt": b.total_fen, "fulamt_ownpay_amt": b.total_fen - b.eligible_fen, "overlmt_selfpay": 0,
        "preselfpay_amt": 0, "inscp_scp_amt": b.eligible_fen, "act_pay_dedc": bill.pooling.part.deductible_fen,
        "hifp_pay": b.pooled_fen, "cvlserv_pay": 0, "hifes_pay": 0, "hifmi_pay": 0, "hifob_pay": 0, "maf_pay": 0,
        "oth_pay": 0, "fund_pay_sumamt": b.pooled_fen, "psn_part_amt": b.personal_burden_fen,
        "acct_pay": b.own_account_fen, "psn_cash_pay": b.cash_fen, "hosp_part_amt": 0, "acct_mulaid_pay": family,
    }
    assert amounts["psn_part_amt"] == amounts["acct_pay"] + family + amounts["psn_cash_pay"]
    base = baseinfo(patient)
    info = {"mdtrt_id": visit.id, "setl_id": setl_id, "psn_no": base["psn_no"], "psn_name": base["psn_name"],
            "psn_cert_type": "01", "certno": base["certno"], "gend": base["gend"], "naty": base["naty"],
            "brdy": base["brdy"], "age": base["age"],
            "insutype": visit.insutype or INSUTYPE.get(patient.insurance_type, ""), "psn_type": "",
            "cvlserv_flag": "0", "setl_time": _time(at), "mdtrt_cert_type": bill.credential.cert_type,
            "med_type": visit.med_type, **{k: to_yuan(v) for k, v in amounts.items()},
            "pool_prop_selfpay": (Decimal(bill.pooling.ratio) / 100).quantize(Decimal("0.0001")),
            "balc": to_yuan(balc_fen), "medins_setl_id": msgid, "clr_optins": bill.visit_institution_region,
            "clr_way": "1", "clr_type": "11"}
    return info


def setldetail(patient: Person, b: settlements.Breakdown, eligible_fen: int) -> list[dict]:
    """One row per fund that paid: the pooling fund, and the personal accounts (310200: own and family together,
    the split in setl_proc_info)."""
    rows = []
    if b.pooled_fen:
        fund = "310100" if patient.insurance_type == "employee" else "390100"
        rows.append(_detail(fund, b.pooled_fen, eligible_fen, ""))
    family = sum(part["amount_fen"] for part in b.family)
    if b.own_account_fen or family:
        rows.append(_detail("310200", b.own_account_fen + family, eligible_fen,
                            f"本人个人账户 {to_yuan(b.own_account_fen)} 元；家庭共济 {to_yuan(family)} 元"))
    return rows


def _detail(fund: str, amount_fen: int, eligible_fen: int, info: str) -> dict:
    return {"fund_pay_type": fund, "inscp_scp_amt": to_yuan(eligible_fen), "crt_payb_lmt_amt": to_yuan(0),
            "fund_payamt": to_yuan(amount_fen), "fund_pay_type_name": FUND_NAMES[fund], "setl_proc_info": info}


def _output(bill: _Bill, b, msgid: str, setl_id: str, balc_fen: int, at) -> dict:
    return {"setlinfo": setlinfo(bill, b, msgid, setl_id, balc_fen, at),
            "setldetail": setldetail(bill.patient, b, b.eligible_fen)}


def _open(ctx: Context) -> _Bill:
    bill = _Bill(ctx)
    bill.visit_institution_region = ctx.institution.region_code
    return bill


# --- 2206, 2207 -------------------------------------------------------------------------------------------------

def preview(ctx: Context) -> dict:
    """2206: the settlement service's quote of the batch; nothing moves. setl_id is "" (there is none yet)."""
    bill = _open(ctx)
    b = settlements.quote(ctx.institution, bill.body(), use_accounts=bill.use_accounts, pooling=bill.pooling)
    balc = own_balance_fen(bill.patient) - b.own_account_fen
    return ctx.answer(_output(bill, b, ctx.msgid, "", balc, utcnow()))


def settle(ctx: Context) -> dict:
    """2207: the settlement service's settlement of the batch, idempotent under the msgid; this table's row and the
    answer are written in the settlement's transaction."""
    bill = _open(ctx)
    kept: dict = {}

    def record(settlement: settlements.Settled, b: settlements.Breakdown) -> None:
        balc = settlement.own_balance_fen
        setl_id = new_id("ST")
        family = sum(part["amount_fen"] for part in b.family)
        db.session.execute(insert(HisSettlement.__table__), dict(
            setl_id=setl_id, kind="settle", settlement_id=settlement.id, institution_id=ctx.institution.id,
            patient_id=bill.patient.id, visit_id=bill.visit.id, chrg_bchno=bill.chrg_bchno, msgid=ctx.msgid,
            year=local_today().year, medfee_fen=b.total_fen, fulamt_ownpay_fen=b.total_fen - b.eligible_fen,
            deductible_fen=bill.pooling.part.deductible_fen, hifp_fen=b.pooled_fen, acct_fen=b.own_account_fen,
            mulaid_fen=family, cash_fen=b.cash_fen, balc_fen=balc, acct_used=bill.use_accounts,
            created_at=settlement.created_at))
        answer = ctx.answer(_output(bill, b, ctx.msgid, setl_id, balc, settlement.created_at or utcnow()))
        ctx.remember(answer)
        kept["answer"] = answer

    _, replayed = settlements.settle(ctx.institution, bill.body(), "his:" + ctx.msgid,
                                     use_accounts=bill.use_accounts, pooling=bill.pooling, on_settled=record)
    if replayed:  # a concurrent copy of this message won: its answer is the answer
        return stored_answer(ctx)
    return kept["answer"]


def stored_answer(ctx: Context) -> dict:
    found = db.session.scalar(select(HisMessage).where(HisMessage.institution_id == ctx.institution.id,
                                                       HisMessage.msgid == ctx.msgid))
    if found is None or found.voided:
        raise GatewayError("MSGID_VOIDED")
    return revive(found.answer)


# --- 2208, 2601 -------------------------------------------------------------------------------------------------

def _reversal(ctx: Context, original: HisSettlement, voiding: HisMessage | None = None) -> dict:
    """Refunds the settlement through the settlement service and answers with the original's setlinfo negated, a
    new setl_id and the restored balance; this table's rows and the answer commit with the refund."""
    first = db.session.scalar(select(HisMessage).where(HisMessage.institution_id == ctx.institution.id,
                                                       HisMessage.msgid == original.msgid))
    kept: dict = {}

    def record(settlement: Settlement) -> None:
        patient = db.session.get(Person, original.patient_id)
        balc = own_balance_fen(patient)
        setl_id = new_id("SR")
        now = utcnow()
        db.session.add(HisSettlement(
            setl_id=setl_id, kind="reversal", settlement_id=settlement.id, institution_id=ctx.institution.id,
            patient_id=original.patient_id, visit_id=original.visit_id, chrg_bchno=original.chrg_bchno,
            msgid=ctx.msgid, year=original.year, medfee_fen=-original.medfee_fen,
            fulamt_ownpay_fen=-original.fulamt_ownpay_fen, deductible_fen=-original.deductible_fen,
            hifp_fen=-original.hifp_fen, acct_fen=-original.acct_fen, mulaid_fen=-original.mulaid_fen,
            cash_fen=-original.cash_fen, balc_fen=balc, acct_used=original.acct_used, original_setl_id=original.setl_id))
        original.reversed_at = now
        if voiding is not None:
            voiding.voided = True
        old = revive(first.answer)["output"] if first is not None and first.answer else {"setlinfo": {}, "setldetail": []}
        info = {k: (-v if k in AMOUNT_FIELDS and isinstance(v, Decimal) else v) for k, v in old["setlinfo"].items()}
        info.update(setl_id=setl_id, setl_time=_time(now), balc=to_yuan(balc), medins_setl_id=ctx.msgid)
        details = [{**row, "fund_payamt": -row["fund_payamt"], "inscp_scp_amt": -row["inscp_scp_amt"]}
                   for row in old["setldetail"]]
        answer = ctx.answer({"setlinfo": info, "setldetail": details})
        ctx.remember(answer)
        kept["answer"] = answer

    settlements.refund(ctx.institution, original.settlement_id, on_refunded=record)
    return kept["answer"]


def cancel(ctx: Context) -> dict:
    """2208: the reversal of a 2207 by its setl_id (mdtrt_id and psn_no must be its own)."""
    data = data_of(ctx.envelope)
    original = db.session.get(HisSettlement, text_field(data, "setl_id", max_len=30))
    if original is None or original.kind != "settle" or original.institution_id != ctx.institution.id:
        raise GatewayError("SETTLEMENT_NOT_FOUND")
    visit = visit_of(ctx.institution, data)
    if visit.id != original.visit_id:
        raise GatewayError("SETTLEMENT_NOT_FOUND", "mdtrt_id")
    if original.reversed_at is not None:
        raise GatewayError("SETTLEMENT_REVERSED")
    return _reversal(ctx, original)


def void(ctx: Context) -> dict:
    """2601 冲正 of a 2207 by its msgid: its settlement is reversed if it happened; if it never arrived, its msgid is
    voided so that a late copy settles nothing. Either way the HIS may treat the trade as not done."""
    data = data_of(ctx.envelope)
    omsgid = text_field(data, "omsgid", max_len=40)
    if text_field(data, "oinfno", max_len=6) != "2207":
        raise GatewayError("REVERSAL_UNSUPPORTED")
    sent_psn = text_field(data, "psn_no", required=False, max_len=30)
    first = db.session.scalar(select(HisMessage).where(HisMessage.institution_id == ctx.institution.id,
                                                       HisMessage.msgid == omsgid))
    if first is None:
        with unit_of_work():
            db.session.add(HisMessage(institution_id=ctx.institution.id, msgid=omsgid, infno="2207",
                                      request_hash="", answer=None, voided=True))
            answer = ctx.answer({}, warn_msg="原交易未办理，已作废该报文ID")
            ctx.remember(answer)
        return answer
    if first.infno != "2207":
        raise GatewayError("REVERSAL_UNSUPPORTED")
    original = db.session.scalar(select(HisSettlement).where(HisSettlement.institution_id == ctx.institution.id,
                                                             HisSettlement.msgid == omsgid,
                                                             HisSettlement.kind == "settle"))
    if original is not None and sent_psn and sent_psn != str(original.patient_id):
        raise GatewayError("PSN_MISMATCH")
    if original is None or original.reversed_at is not None or first.voided:
        with unit_of_work():
            first.voided = True
            answer = ctx.answer({}, warn_msg="原交易已撤销或已冲正")
            ctx.remember(answer)
        return answer
    return _reversal(ctx, original, voiding=first)
