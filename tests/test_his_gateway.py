"""The HIS gateway over HTTP: whole outpatient visits replayed as HIS code builds them (national-interface.md), on
the configured database. 9001 → 1101 → 2201 → 2203 → 2204 → 2206 → 2207, 2208, 2601, msgid replays, credentials,
impersonation, signatures, acct_used_flag "0", the envelope's formats."""
import datetime as dt
import json
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from api import ledger
from api.extensions import db
from api.his.settlement import AMOUNT_FIELDS
from api.his.signing import sign, signed_headers
from api.models import Binding, ImpersonationAttempt, Person, Settlement
from tests import factories
from tests.his_helpers import His, give_signing_key, load_catalogue

DRUG, TEST, SYRINGE = "XJ01CAA040E001010100391", "250101015", "C14010111300001600009"
SUPPLEMENT = "BJP0001"  # 保健品: not in the catalogue → 全自费
SETLINFO_FIELDS = {"mdtrt_id", "setl_id", "psn_no", "psn_name", "psn_cert_type", "certno", "gend", "naty", "brdy",
                   "age", "insutype", "psn_type", "cvlserv_flag", "setl_time", "mdtrt_cert_type", "med_type",
                   *AMOUNT_FIELDS, "pool_prop_selfpay", "balc", "medins_setl_id", "clr_optins", "clr_way", "clr_type"}


@pytest.fixture
def world(clean_app):
    factories.load_policies()  # 44: 起付线 200 元, 60 %, cap 3,000 元 a year
    load_catalogue()
    hospital = factories.institution("H44010601", "广州市天河区人民医院", "440106", api_key="key-h44010601")
    give_signing_key(hospital, "key-h44010601")
    patient = factories.person("李秀英", region_code="440106", balance_fen=3000, male=False,
                               birth=dt.date(1990, 5, 5))
    father = factories.person("李建国", region_code="440106", balance_fen=300000, birth=dt.date(1960, 3, 3))
    db.session.add(Binding(authorizer_id=father.id, beneficiary_id=patient.id, relation="child"))
    db.session.commit()
    return {"hospital": hospital, "patient": patient, "father": father}


def his(client, style="ohc"):
    return His(client, "H44010601", "key-h44010601", style=style)


def balance(person) -> int:
    db.session.rollback()
    return ledger.balance_of(db.session.get(Person, person.id))[0]


def ok(answer) -> dict:
    assert answer["infcode"] == 0, answer
    return answer["output"]


def refused(answer, text: str) -> None:
    assert answer["infcode"] == -1 and text in answer["err_msg"], answer


BILL = [(DRUG, "150.00"), (TEST, "100.00"), (SUPPLEMENT, "80.00")]  # 250 元 in the catalogue, 80 元 全自费


def visit(h, person, cert=("02", None), bill=BILL, batch="202612010828170091"):
    """9001 → 1101 → 2201 → 2203 → 2204: (psn_no, mdtrt_id, the credential, chrg_bchno)."""
    cert_type, cert_no = cert[0], cert[1] or person.id_number
    h.sign_in()
    info = ok(h.person(cert_type, cert_no, card_sn="C0000001" if cert_type == "03" else ""))
    psn_no = info["baseinfo"]["psn_no"]
    mdtrt_id = ok(h.register(psn_no, cert_type, cert_no))["data"]["mdtrt_id"]
    ok(h.visit_info(mdtrt_id, psn_no))
    ok(h.fees(mdtrt_id, psn_no, batch, bill))
    return {"psn_no": psn_no, "cert_type": cert_type, "cert_no": cert_no, "mdtrt_id": mdtrt_id, "chrg_bchno": batch}


def bill_of(v, medfee="330.00", **kw):
    return {"psn_no": v["psn_no"], "cert_type": v["cert_type"], "cert_no": v["cert_no"], "mdtrt_id": v["mdtrt_id"],
            "chrg_bchno": v["chrg_bchno"], "medfee": medfee, **kw}


def yuan(setlinfo, *names):
    return tuple(setlinfo[n] for n in names)


# --- the whole visit ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("style", ["ohc", "yr", "py", "hs"])
def test_a_whole_visit_pays_own_account_then_the_family_share_then_cash(client, world, style):
    h = his(client, style)
    v = visit(h, world["patient"])
    info = ok(h.person("02", world["patient"].id_number))
    assert info["insuinfo"][0]["balc"] == Decimal("30.00") and info["insuinfo"][0]["insutype"] == "310"
    preview = ok(h.preview(**bill_of(v)))["setlinfo"]
    assert balance(world["patient"]) == 3000 and balance(world["father"]) == 300000  # 2206 moves nothing
    out = ok(h.settle(**bill_of(v)))
    s = out["setlinfo"]
    assert set(s) >= SETLINFO_FIELDS and all(s[f] is not None for f in SETLINFO_FIELDS)
    # 250 in the catalogue: 200 起付线, then 60 % of 50 = 30 from the pooling fund; 80 全自费
    assert yuan(s, "medfee_sumamt", "fulamt_ownpay_amt", "inscp_scp_amt", "act_pay_dedc", "hifp_pay",
                "fund_pay_sumamt") == (330, 80, 250, 200, 30, 30)
    assert yuan(s, "acct_pay", "acct_mulaid_pay", "psn_cash_pay", "psn_part_amt", "hosp_part_amt") == (30, 190, 80, 300, 0)
    assert s["medfee_sumamt"] == s["fund_pay_sumamt"] + s["psn_part_amt"] + s["hosp_part_amt"]
    assert s["psn_part_amt"] == s["acct_pay"] + s["acct_mulaid_pay"] + s["psn_cash_pay"]
    assert s["balc"] == 0 and s["medins_setl_id"] and s["setl_id"] and s["pool_prop_selfpay"] == Decimal("0.6")
    assert {k: v for k, v in preview.items() if k not in ("setl_id", "setl_time", "medins_setl_id")} == \
        {k: v for k, v in s.items() if k not in ("setl_id", "setl_time", "medins_setl_id")}
    assert [(d["fund_pay_type"], d["fund_payamt"]) for d in out["setldetail"]] == [("310100", 30), ("310200", 220)]
    assert (balance(world["patient"]), balance(world["father"])) == (0, 300000 - 19000)
    assert not ledger.check()


def test_the_answer_is_the_native_endpoints_for_the_same_bill(client, world):
    h = his(client)
    v = visit(h, world["patient"])
    native = client.post("/api/v1/institution/settlements/quote", headers={"X-Institution-Key": "key-h44010601"},
                         json={"patient_id_number": world["patient"].id_number,
                               "credential": world["patient"].card_number, "pooled_fen": 3000,
                               "items": [{"code": DRUG, "name": "阿莫西林胶囊", "category": "drug", "amount_fen": 15000},
                                         {"code": TEST, "name": "血常规", "category": "treatment", "amount_fen": 10000},
                                         {"code": SUPPLEMENT, "name": "保健品", "category": "non_medical",
                                          "amount_fen": 8000}]}).json
    s = ok(h.settle(**bill_of(v)))["setlinfo"]
    assert (native["total_fen"], native["eligible_fen"], native["pooled_fen"], native["personal_burden_fen"],
            native["own_account_fen"], sum(f["amount_fen"] for f in native["family"]), native["cash_fen"]) == \
        tuple(int(s[n] * 100) for n in ("medfee_sumamt", "inscp_scp_amt", "hifp_pay", "psn_part_amt", "acct_pay",
                                        "acct_mulaid_pay", "psn_cash_pay"))
    settlement = db.session.scalar(select(Settlement))
    assert [p.amount_fen for p in settlement.family_payments] == [19000]


def test_the_years_deductible_is_paid_once(client, world):
    h = his(client)
    first = ok(h.settle(**bill_of(visit(h, world["patient"]))))["setlinfo"]
    second = ok(h.settle(**bill_of(visit(h, world["patient"], batch="B2"))))["setlinfo"]
    assert (first["act_pay_dedc"], first["hifp_pay"]) == (200, 30)
    assert (second["act_pay_dedc"], second["hifp_pay"]) == (0, 150)  # 60 % of 250


def test_2208_restores_every_account_with_a_new_setl_id(client, world):
    h = his(client)
    v = visit(h, world["patient"])
    s = ok(h.settle(**bill_of(v)))["setlinfo"]
    out = ok(h.cancel(s["setl_id"], v["mdtrt_id"], v["psn_no"]))
    r = out["setlinfo"]
    assert r["setl_id"] != s["setl_id"] and r["setl_id"]
    assert yuan(r, "medfee_sumamt", "acct_pay", "acct_mulaid_pay", "psn_cash_pay", "hifp_pay", "psn_part_amt") == \
        (-330, -30, -190, -80, -30, -300)
    assert r["balc"] == Decimal("30.00") and all(r[f] is not None for f in SETLINFO_FIELDS)
    assert [d["fund_payamt"] for d in out["setldetail"]] == [-30, -220]
    assert (balance(world["patient"]), balance(world["father"])) == (3000, 300000)
    refused(h.cancel(s["setl_id"], v["mdtrt_id"], v["psn_no"]), "已撤销")
    # the year's 起付线 is free again, and the batch may be settled again
    assert ok(h.settle(**bill_of(v)))["setlinfo"]["act_pay_dedc"] == 200
    assert not ledger.check()


def test_2601_reverses_a_2207_whose_reply_was_lost(client, world):
    h = his(client)
    v = visit(h, world["patient"])
    msgid = h.msgid()
    h.settle(msgid=msgid, **bill_of(v))  # the reply never reached the HIS
    assert balance(world["father"]) == 281000
    out = ok(h.void(msgid, v["psn_no"]))
    assert out["setlinfo"]["acct_mulaid_pay"] == -190
    assert (balance(world["patient"]), balance(world["father"])) == (3000, 300000)
    refused(h.settle(msgid=msgid, **bill_of(v)), "已冲正")  # a late retry of the voided message
    assert (balance(world["patient"]), balance(world["father"])) == (3000, 300000)
    ok(h.void(msgid, v["psn_no"]))  # 冲正 again: still done, nothing moves
    assert balance(world["father"]) == 300000


def test_2601_of_a_2207_that_never_arrived_voids_its_msgid(client, world):
    h = his(client)
    v = visit(h, world["patient"])
    msgid = h.msgid()
    ok(h.void(msgid, v["psn_no"]))
    refused(h.settle(msgid=msgid, **bill_of(v)), "已冲正")
    assert (balance(world["patient"]), db.session.scalar(select(func.count()).select_from(Settlement))) == (3000, 0)


def test_a_replayed_msgid_answers_the_first_answer_and_moves_nothing_twice(client, world):
    h = his(client)
    v = visit(h, world["patient"])
    msgid = h.msgid()
    first = h.settle(msgid=msgid, **bill_of(v))
    again = h.settle(msgid=msgid, **bill_of(v))
    assert again == first
    assert balance(world["father"]) == 281000
    assert db.session.scalar(select(func.count()).select_from(Settlement)) == 1
    refused(h.settle(msgid=msgid, **bill_of(v, acct_used_flag="0")), "报文ID已用于内容不同的交易")
    # a second 2207 of the settled batch under a new msgid
    refused(h.settle(**bill_of(v)), "已结算")


@pytest.mark.parametrize("cert", ["01", "02", "03"])
def test_each_credential_type_settles(client, world, cert):
    from api.auth import issue_voucher
    p = world["patient"]
    cert_no = {"01": issue_voucher(p.id)[0], "02": p.id_number, "03": p.card_number}[cert]
    h = his(client)
    v = visit(h, p, cert=(cert, cert_no))
    s = ok(h.settle(**bill_of(v, card_sn="C0000001")))["setlinfo"]
    assert s["mdtrt_cert_type"] == cert and s["acct_pay"] == 30


def test_a_card_without_its_card_sn_is_refused(client, world):
    refused(his(client).person("03", world["patient"].card_number, card_sn=""), "card_sn")


def test_another_persons_card_is_impersonation(client, world):
    h = his(client)
    v = visit(h, world["patient"])
    father = world["father"]
    refused(h.settle(**{**bill_of(v), "cert_type": "03", "cert_no": father.card_number}), "他人凭证不能使用")
    refused(h.preview(**{**bill_of(v), "cert_type": "02", "cert_no": father.id_number}), "他人凭证不能使用")
    attempts = db.session.scalars(select(ImpersonationAttempt)).all()
    assert [a.holder_id for a in attempts] == [father.id, father.id]
    assert (balance(world["patient"]), balance(father)) == (3000, 300000)


def test_acct_used_flag_0_pays_the_personal_burden_in_cash(client, world):
    h = his(client)
    s = ok(h.settle(**bill_of(visit(h, world["patient"]), acct_used_flag="0")))["setlinfo"]
    assert yuan(s, "hifp_pay", "acct_pay", "acct_mulaid_pay", "psn_cash_pay", "psn_part_amt") == (30, 0, 0, 300, 300)
    assert (balance(world["patient"]), balance(world["father"])) == (3000, 300000)


# --- authentication and the envelope -------------------------------------------------------------------------

def test_a_wrong_signature_a_stale_timestamp_and_another_institutions_code_are_refused(client, world):
    h = his(client)
    given = {"signIn": {"opter_no": "1"}}
    bad = signed_headers("not-the-key", "H44010601", "9001")
    refused(h.call("9001", given, headers=bad), "签名校验失败")
    stale = signed_headers("key-h44010601", "H44010601", "9001", at_ms=int((dt.datetime.now().timestamp() - 400) * 1000))
    refused(h.call("9001", given, headers=stale), "过期")
    refused(h.call("9001", given, headers={}), "缺少接口签名")
    seconds = {"_api_access_key": "H44010601", "_api_name": "9001", "_api_version": "1.0.0",
               "_api_timestamp": str(int(dt.datetime.now().timestamp()))}
    ok(h.call("9001", given, headers={**seconds, "_api_signature": sign("key-h44010601", seconds)}))
    other = His(client, "H44010601", "key-h44010601")
    body = other.envelope("9001", given)
    body["fixmedins_code"] = "H31010401"
    refused(json.loads(h.post("9001", given, raw=json.dumps(body).encode()).data), "不一致")


def test_refusals_are_infcode_minus_1_as_a_json_number_with_http_200(client, world):
    h = his(client)
    r = h.post("1101", {}, raw=b"this is not json")
    assert r.status_code == 200 and b'"infcode":-1' in r.data
    answer = json.loads(r.data)
    assert set(answer) >= {"infcode", "err_msg", "inf_refmsgid", "refmsg_time", "respond_time", "warn_msg", "output"}
    r = h.post("9001", {"signIn": {}})
    assert b'"infcode":0' in r.data
    refused(h.person("02", "440106199001011234"), "身份证号码不正确")


def test_amounts_as_strings_empty_and_any_scale_and_more_than_two_decimals_refused(client, world):
    h = his(client, "py")  # amounts as strings
    p = world["patient"]
    v = visit(h, p, bill=[(DRUG, "150"), (TEST, "100.0"), (SUPPLEMENT, "80.000")])
    s = ok(h.settle(**bill_of(v, medfee="330.0")))["setlinfo"]
    assert s["medfee_sumamt"] == 330
    refused(h.fees(v["mdtrt_id"], v["psn_no"], "B3", [(DRUG, "1.005")]), "最多两位小数")
    zero = h.fees(v["mdtrt_id"], v["psn_no"], "B4", [(DRUG, "")])  # "" is zero
    assert ok(zero)["result"][0]["det_item_fee_sumamt"] == 0
    refused(h.settle(**bill_of(v, medfee="329.99")), "医疗费总额与已上传的费用明细合计不一致")


# --- the settlement service's refusals, and races --------------------------------------------------------------

def test_a_suspended_patient_an_unknown_person_and_a_non_designated_institution_are_refused(client, world):
    h = his(client)
    v = visit(h, world["patient"])
    world["patient"].settlement_suspended = True
    db.session.commit()
    refused(h.settle(**bill_of(v)), "联网结算已被暂停")
    refused(h.person("03", "NOBODY0001", card_sn="C1"), "未查询到该人员的参保信息")
    refused(h.register("999999", "02", world["patient"].id_number), "未查询到该人员的参保信息")
    shop = factories.institution("N44010601", "美容养生馆", "440106", designated=False, api_key="key-n44010601")
    give_signing_key(shop, "key-n44010601")
    other = His(client, "N44010601", "key-n44010601")
    refused(other.register(v["psn_no"], "02", world["patient"].id_number), "不是定点医药机构")
    # nor may it read who a person is and what his account holds (1101)
    refused(other.person("02", world["patient"].id_number), "不是定点医药机构")
    assert balance(world["father"]) == 300000


def _race(app, h, bodies: list[bytes]) -> list[dict]:
    import threading

    from flask.testing import FlaskClient
    barrier, results = threading.Barrier(len(bodies)), [None] * len(bodies)

    def send(n, body):
        plain = FlaskClient(app, app.response_class)  # each request with its own session and connection
        barrier.wait()
        r = plain.post("/fsi/api/rsfComIfsService/callService", data=body,
                       headers={"Content-Type": "application/json", **signed_headers(h.api_key, h.code, "2207")})
        results[n] = json.loads(r.data)

    threads = [threading.Thread(target=send, args=(n, b)) for n, b in enumerate(bodies)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def _settle_body(h, v, msgid):
    from tests.his_helpers import encode
    data = h.settle_data(**bill_of(v))
    return encode(h.envelope("2207", {"data": data}, msgid=msgid))


def test_the_same_msgid_twice_at_once_settles_once(client, world):
    h = his(client)
    v = visit(h, world["patient"])
    db.session.commit()
    msgid = h.msgid()
    first, second = _race(client.application, h, [_settle_body(h, v, msgid)] * 2)
    assert first == second and first["infcode"] == 0
    assert db.session.scalar(select(func.count()).select_from(Settlement)) == 1
    assert balance(world["father"]) == 281000


def test_one_batch_under_two_msgids_at_once_settles_once(client, world):
    h = his(client)
    v = visit(h, world["patient"])
    db.session.commit()
    answers = _race(client.application, h, [_settle_body(h, v, h.msgid()), _settle_body(h, v, h.msgid())])
    assert sorted(a["infcode"] for a in answers) == [-1, 0]
    assert "已结算" in [a for a in answers if a["infcode"] == -1][0]["err_msg"]
    assert db.session.scalar(select(func.count()).select_from(Settlement)) == 1
    assert balance(world["father"]) == 281000 and not ledger.check()
