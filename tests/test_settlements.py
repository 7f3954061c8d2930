"""Settlement scenarios over HTTP (F7, R7–R10): who pays what, in which order, once; refunds; 冒名就医; usage records."""
import datetime as dt
import itertools

import pytest
from sqlalchemy import func, select

from api import ledger
from api.masking import mask_id
from api.extensions import db
from api.models import Binding, FamilyPayment, ImpersonationAttempt, Notification, Person
from api.timefmt import local_today
from tests import factories
from tests.lifecycle_helpers import pdf_text, person_headers, staff_headers

URL = "/api/v1/institution/settlements"
_keys = itertools.count()


@pytest.fixture
def world(clean_app):
    factories.load_policies()
    hospital = factories.institution("H4401001", "广州市第一人民医院", "440104", api_key="key-gz")
    return {"hospital": hospital, "gz": {"X-Institution-Key": "key-gz"}}


def patient(name="李秀英", region="440106", balance=None, **kw):
    if balance is None:
        return factories.person(name, insurance_type="resident", balance_fen=None, region_code=region, male=False,
                                birth=dt.date(1990, 5, 5), **kw)
    return factories.person(name, region_code=region, balance_fen=balance, male=False, birth=dt.date(1990, 5, 5), **kw)


_births = (dt.date(1950, 1, 1) + dt.timedelta(days=97 * i) for i in itertools.count())


def authorizer(name, region="440106", balance=300000, prior=None, male=True):
    return factories.person(name, region_code=region, balance_fen=balance, prior_year_fen=prior, male=male,
                            birth=next(_births))


def bind(a, b, relation="child", **kw):
    """b is a's `relation` (the binding as an approval creates it)."""
    binding = Binding(authorizer_id=a.id, beneficiary_id=b.id, relation=relation, **kw)
    db.session.add(binding)
    db.session.commit()
    return binding


def bill(p, amounts=(10000,), pooled=0, credential=None, non_medical=()):
    items = [{"code": f"D{i}", "name": "药品", "category": "drug", "amount_fen": a} for i, a in enumerate(amounts)]
    items += [{"code": f"N{i}", "name": "保健品", "category": "non_medical", "amount_fen": a}
              for i, a in enumerate(non_medical)]
    return {"patient_id_number": p.id_number, "credential": credential or p.card_number, "items": items,
            "pooled_fen": pooled}


def settle(client, headers, body, key=None):
    return client.post(URL, json=body, headers={**headers, "Idempotency-Key": key or f"k{next(_keys)}"})


def balance(person) -> int:
    db.session.rollback()
    return ledger.balance_of(db.session.get(Person, person.id))[0]


def family(r) -> list[tuple[str, int]]:
    return [(f["binding_id"], f["amount_fen"]) for f in r.json["family"]]


def test_own_account_first_then_authorizers_in_the_beneficiarys_order_then_cash(client, world):
    p = patient(balance=3000)
    father, mother = authorizer("李父", balance=5000), authorizer("张母", balance=4000, male=False)
    by_father = bind(father, p, "child", priority=2)
    by_mother = bind(mother, p, "child", priority=1)
    r = settle(client, world["gz"], bill(p, [15000]))
    assert r.status_code == 201, r.json
    assert (r.json["own_account_fen"], r.json["cash_fen"]) == (3000, 3000)
    assert family(r) == [(by_mother.id, 4000), (by_father.id, 5000)]
    assert (balance(p), balance(mother), balance(father)) == (0, 0, 0)
    assert not ledger.check()


def test_without_a_chosen_order_the_oldest_binding_pays_first(client, world):
    p = patient()
    first, second = authorizer("甲"), authorizer("乙")
    old = bind(first, p, created_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
    bind(second, p, created_at=dt.datetime(2026, 2, 1, tzinfo=dt.timezone.utc))
    assert family(settle(client, world["gz"], bill(p, [2000]))) == [(old.id, 2000)]


def test_the_monthly_limit_is_kept_across_settlements(client, world):
    p, a = patient(), authorizer("王父")
    b = bind(a, p, monthly_limit_fen=10000)
    assert family(settle(client, world["gz"], bill(p, [6000]))) == [(b.id, 6000)]
    r = settle(client, world["gz"], bill(p, [6000]))
    assert family(r) == [(b.id, 4000)] and r.json["cash_fen"] == 2000
    r = settle(client, world["gz"], bill(p, [1000]))
    assert family(r) == [] and r.json["cash_fen"] == 1000
    bindings = client.get("/api/v1/bindings", headers=person_headers(a)).json["granted"]
    assert bindings[0]["used_this_month_fen"] == 10000


def test_the_per_payment_limit(client, world):
    p, a = patient(), authorizer("王父")
    b = bind(a, p, per_payment_limit_fen=2500)
    r = settle(client, world["gz"], bill(p, [10000]))
    assert family(r) == [(b.id, 2500)] and r.json["cash_fen"] == 7500


@pytest.mark.parametrize("window", [
    {"valid_until": dt.date(2020, 1, 1)},
    {"valid_from": dt.date(2099, 1, 1)},
])
def test_a_binding_outside_its_validity_window_never_pays(client, world, window):
    p, a = patient(), authorizer("王父")
    bind(a, p, **window)
    r = settle(client, world["gz"], bill(p, [1000]))
    assert family(r) == [] and r.json["cash_fen"] == 1000
    assert balance(a) == 300000


def test_a_binding_inside_its_window_pays(client, world):
    p, a = patient(), authorizer("王父")
    b = bind(a, p, valid_from=local_today(), valid_until=local_today())
    assert family(settle(client, world["gz"], bill(p, [1000]))) == [(b.id, 1000)]


def test_shanxi_keeps_its_reserve_of_1000_yuan(client, world):
    shanxi = factories.institution("H1401001", "太原市中心医院", "140105", api_key="key-ty")
    p = patient(region="140105")
    a = authorizer("晋父", region="140105", balance=150000)
    b = bind(a, p)
    r = settle(client, {"X-Institution-Key": "key-ty"}, bill(p, [80000]))
    assert family(r) == [(b.id, 50000)] and r.json["cash_fen"] == 30000
    assert balance(a) == 100000
    del shanxi


def test_shanghai_shares_only_the_prior_year_part(client, world):
    shanghai = factories.institution("H3101001", "上海市第一人民医院", "310101", api_key="key-sh")
    p = patient(region="310101")
    a = authorizer("沪父", region="310101", balance=100000, prior=30000)
    b = bind(a, p)
    r = settle(client, {"X-Institution-Key": "key-sh"}, bill(p, [50000]))
    assert family(r) == [(b.id, 30000)] and r.json["cash_fen"] == 20000
    db.session.rollback()
    current, prior = ledger.personal_accounts(db.session.get(Person, a.id))
    assert (current.balance_fen, prior.balance_fen) == (70000, 0)  # the current year's part untouched
    del shanghai


def test_one_authorizer_per_settlement_where_the_policy_says_so(client, world):
    factories.institution("H3101001", "上海市第一人民医院", "310101", api_key="key-sh")
    p = patient(region="310101")
    first, second = authorizer("沪甲", region="310101", balance=2000), authorizer("沪乙", region="310101")
    one = bind(first, p, priority=1)
    bind(second, p, priority=2)
    r = settle(client, {"X-Institution-Key": "key-sh"}, bill(p, [5000]))
    assert family(r) == [(one.id, 2000)] and r.json["cash_fen"] == 3000


def test_an_authorizer_whose_funds_may_not_be_used_there_is_skipped(client, world):
    """A 广东 authorizer's account is used in 广东 only (省内): at a 湖南 hospital the next one pays."""
    factories.institution("H4301001", "长沙市中心医院", "430102", api_key="key-cs")
    p = patient(region="430102")
    gd = authorizer("粤父", region="440106")
    hn = authorizer("湘母", region="430102", male=False)
    bind(gd, p, priority=1)
    local = bind(hn, p, priority=2)
    r = settle(client, {"X-Institution-Key": "key-cs"}, bill(p, [1000]))
    assert family(r) == [(local.id, 1000)]


def test_a_revoked_binding_never_pays(client, world):
    p, a = patient(), authorizer("王父")
    b = bind(a, p)
    assert client.post(f"/api/v1/bindings/{b.id}/revoke", json={}, headers=person_headers(a)).status_code == 200
    r = settle(client, world["gz"], bill(p, [1000]))
    assert family(r) == [] and r.json["cash_fen"] == 1000


def test_non_medical_items_are_paid_in_cash_only(client, world):
    p = patient(balance=100000)
    r = settle(client, world["gz"], bill(p, [3000], non_medical=[2000]))
    assert (r.json["total_fen"], r.json["eligible_fen"], r.json["own_account_fen"], r.json["cash_fen"]) == \
        (5000, 3000, 3000, 2000)


def test_pooled_more_than_eligible_is_refused_and_nothing_moves(client, world):
    p = patient(balance=100000)
    r = settle(client, world["gz"], bill(p, [3000], pooled=3001, non_medical=[5000]))
    assert (r.status_code, r.json["error"]["code"], r.json["error"]["field"]) == \
        (422, "POOLED_EXCEEDS_ELIGIBLE", "pooled_fen")
    assert balance(p) == 100000


def test_the_pooled_part_is_not_paid_from_accounts(client, world):
    p = patient(balance=100000)
    r = settle(client, world["gz"], bill(p, [10000], pooled=7000))
    assert (r.json["personal_burden_fen"], r.json["own_account_fen"], r.json["cash_fen"]) == (3000, 3000, 0)


def test_a_quote_moves_nothing_and_equals_the_settlement_that_follows(client, world):
    p = patient(balance=1000)
    a = authorizer("王父", balance=5000)
    bind(a, p, monthly_limit_fen=3000)
    body = bill(p, [10000], pooled=2000, non_medical=[500])
    quote = client.post(f"{URL}/quote", json=body, headers=world["gz"])
    assert quote.status_code == 200, quote.json
    assert (balance(p), balance(a)) == (1000, 5000)
    assert db.session.scalar(select(func.count()).select_from(FamilyPayment)) == 0
    settled = settle(client, world["gz"], body)
    assert {k: settled.json[k] for k in quote.json} == quote.json


def test_impersonation_three_times_suspends_the_lender_until_a_reviewer_lifts_it(client, world):
    p = patient()
    lender = authorizer("李父")
    for n in range(3):
        r = settle(client, world["gz"], bill(p, [1000], credential=lender.card_number))
        assert (r.status_code, r.json["error"]["code"]) == (403, "IMPERSONATION")
    assert db.session.scalar(select(func.count()).select_from(ImpersonationAttempt)
                             .where(ImpersonationAttempt.holder_id == lender.id)) == 3
    assert client.get("/api/v1/me", headers=person_headers(lender)).json["settlement_suspended"] is True
    own = settle(client, world["gz"], bill(lender, [1000]))
    assert (own.status_code, own.json["error"]["code"]) == (403, "SETTLEMENT_SUSPENDED")
    assert db.session.scalar(select(Notification.body).where(Notification.person_id == lender.id,
                                                             Notification.kind == "settlement_suspended"))
    r = client.post(f"/api/v1/staff/persons/{lender.id_number}/settlement-suspension", headers=staff_headers(),
                    json={"suspended": False, "reason": "本人到窗口说明情况，已批评教育"})
    assert r.status_code == 200 and r.json["settlement_suspended"] is False
    assert settle(client, world["gz"], bill(lender, [1000])).status_code == 201


def test_a_voucher_is_a_credential_and_another_persons_voucher_is_not(client, world):
    p = patient(balance=5000)
    other = authorizer("他人")
    mine = client.get("/api/v1/me/voucher", headers=person_headers(p)).json["code"]
    theirs = client.get("/api/v1/me/voucher", headers=person_headers(other)).json["code"]
    assert settle(client, world["gz"], bill(p, [1000], credential=mine)).status_code == 201
    r = settle(client, world["gz"], bill(p, [1000], credential=theirs))
    assert (r.status_code, r.json["error"]["code"]) == (403, "IMPERSONATION")


def test_a_refund_restores_everything_once(client, world):
    p = patient(balance=2000)
    a = authorizer("王父", balance=5000)
    b = bind(a, p, monthly_limit_fen=5000)
    r = settle(client, world["gz"], bill(p, [6000]))
    sid = r.json["id"]
    assert (balance(p), balance(a)) == (0, 1000)
    refund = client.post(f"{URL}/{sid}/refund", headers=world["gz"])
    assert refund.status_code == 200 and refund.json["status"] == "refunded", refund.json
    assert (balance(p), balance(a)) == (2000, 5000)
    again = client.post(f"{URL}/{sid}/refund", headers=world["gz"])
    assert (again.status_code, again.json["error"]["code"]) == (409, "ALREADY_REFUNDED")
    assert (balance(p), balance(a)) == (2000, 5000)
    granted = client.get("/api/v1/bindings", headers=person_headers(a)).json["granted"]
    assert granted[0]["id"] == b.id and granted[0]["used_this_month_fen"] == 0
    kinds = db.session.scalars(select(Notification.kind).where(Notification.person_id == a.id)).all()
    assert kinds.count("family_payment") == 1 and kinds.count("family_refund") == 1
    assert not ledger.check()


def test_an_idempotent_replay_charges_once(client, world):
    p = patient(balance=10000)
    body = bill(p, [3000])
    first = settle(client, world["gz"], body, key="visit-1")
    again = settle(client, world["gz"], body, key="visit-1")
    assert again.status_code == 201 and again.json == first.json
    assert again.headers.get("Idempotency-Replayed") == "true"
    assert balance(p) == 7000
    other = settle(client, world["gz"], bill(p, [4000]), key="visit-1")
    assert (other.status_code, other.json["error"]["code"]) == (409, "IDEMPOTENCY_KEY_REUSED")
    missing = client.post(URL, json=body, headers=world["gz"])
    assert (missing.status_code, missing.json["error"]["code"]) == (400, "IDEMPOTENCY_KEY_REQUIRED")


def test_another_institution_cannot_read_or_refund_this_ones_settlement(client, world):
    factories.institution("H4401002", "广州市第二人民医院", "440104", api_key="key-other")
    p = patient(balance=10000)
    sid = settle(client, world["gz"], bill(p, [3000])).json["id"]
    other = {"X-Institution-Key": "key-other"}
    assert client.post(f"{URL}/{sid}/refund", headers=other).status_code == 404
    assert client.get(URL, headers=other).json["items"] == []
    assert [s["id"] for s in client.get(URL, headers=world["gz"]).json["items"]] == [sid]
    assert client.get(URL, headers={"X-Institution-Key": "wrong"}).status_code == 401


def test_a_non_designated_institution_is_refused(client, world):
    factories.institution("P4401009", "某保健品店", "440104", designated=False, api_key="key-shop")
    p = patient(balance=10000)
    r = settle(client, {"X-Institution-Key": "key-shop"}, bill(p, [1000]))
    assert (r.status_code, r.json["error"]["code"]) == (403, "NOT_DESIGNATED")


def test_the_authorizer_is_told_of_each_family_payment_masked(client, world):
    p = patient(name="李秀英")
    a = authorizer("李建国")
    bind(a, p, "child")
    settle(client, world["gz"], bill(p, [8650]))
    body = db.session.scalar(select(Notification.body).where(Notification.person_id == a.id,
                                                             Notification.kind == "family_payment"))
    assert body == "您的医保个人账户为【子女 李**】在【广州市第一人民医院】支付 86.50 元。"


def test_usage_records_for_each_reader(client, world):
    p = patient()
    a = authorizer("王父")
    b = bind(a, p)
    sid = settle(client, world["gz"], bill(p, [1200])).json["id"]
    for viewer in (a, p):
        items = client.get("/api/v1/usage", headers=person_headers(viewer)).json["items"]
        assert [(i["settlement_id"], i["amount_fen"], i["refunded"]) for i in items] == [(sid, 1200, False)]
        assert "*" in items[0]["patient"]["id_number"]
        assert client.get(f"/api/v1/bindings/{b.id}/usage", headers=person_headers(viewer)).json["items"]
    stranger = authorizer("外人")
    assert client.get("/api/v1/usage", headers=person_headers(stranger)).json["items"] == []
    assert client.get(f"/api/v1/bindings/{b.id}/usage", headers=person_headers(stranger)).status_code == 404
    clerk = staff_headers("clerk1", roles=("clerk",))
    staff_view = client.get(f"/api/v1/staff/persons/{p.id_number}/usage", headers=clerk)
    assert [i["amount_fen"] for i in staff_view.json["items"]] == [1200]
    pdf = client.get(f"/api/v1/staff/persons/{p.id_number}/usage", headers={**clerk, "Accept": "application/pdf"})
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    text = pdf_text(pdf.data)
    assert p.id_number not in text and mask_id(p.id_number) in text and "12.00" in text
    terminal = client.post("/api/v1/terminal/usage-query", json={"id_number": p.id_number,
                                                                 "card_number": p.card_number})
    assert [i["amount_fen"] for i in terminal.json["items"]] == [1200]
    wrong = client.post("/api/v1/terminal/usage-query", json={"id_number": p.id_number, "card_number": "X1"})
    unknown = client.post("/api/v1/terminal/usage-query", json={"id_number": factories.id_number("110105"),
                                                                "card_number": p.card_number})
    assert wrong.status_code == unknown.status_code == 404 and wrong.json == unknown.json


def test_the_bot_reads_the_same_usage_records(client, world):
    from tests.bot_helpers import Chat
    p = patient(name="李秀英")
    a = authorizer("李建国")
    bind(a, p, "child")
    settle(client, world["gz"], bill(p, [8650]))
    chat = Chat(client, a)
    chat.say("共济记录")
    assert "为子女 李**" in chat.text and "广州市第一人民医院" in chat.text and "86.50 元" in chat.text
    chat = Chat(client, p)
    chat.say("记录")
    assert "用父母 李**的账户" in chat.text and "86.50 元" in chat.text


def test_the_terminal_fails_closed_when_its_counters_are_away(world, app):
    """With Redis unreachable the terminal answers 503 rather than letting anyone try card numbers without limit."""
    import socket

    from flask.testing import FlaskClient

    from api import create_app
    p = patient(balance=5000)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = create_app({"TESTING": True, "REDIS_URL": f"redis://127.0.0.1:{port}/0"})
    client = FlaskClient(down, down.response_class)
    r = client.post("/api/v1/terminal/usage-query", json={"id_number": p.id_number, "card_number": p.card_number})
    assert (r.status_code, r.json["error"]["code"]) == (503, "SERVICE_UNAVAILABLE") and r.headers["Retry-After"]
    with down.app_context():
        db.session.remove()
        db.engine.dispose()


def test_a_settlement_runs_a_bounded_number_of_statements(client, world):
    """The busiest write of the service stays lean (api/services/settlement_store.py): a settlement paid from the
    patient's own account and a relative's takes one look-up of the institution and eleven statements of the store
    — not the ORM's 27 — whatever the database. (The first settlement of a process also reads the region's
    policy once, to parse it.)"""
    from sqlalchemy import event

    from api.services import settlement_store
    p = patient(balance=1000)
    bind(authorizer("李父"), p)
    assert settle(client, world["gz"], bill(p, [100])).status_code == 201
    body = bill(p, [5000])
    statements = []
    original = settlement_store.Sql.run

    def counted(self, statement, params=None):
        statements.append(statement.split()[0] + " " + statement.split()[2 if statement.startswith("INSERT") else 1])
        return original(self, statement, params)

    def orm(conn, cursor, statement, *args):
        statements.append("orm: " + statement.split("FROM")[-1].split()[0])

    settlement_store.Sql.run = counted
    event.listen(db.engine, "before_cursor_execute", orm)
    try:
        r = settle(client, world["gz"], body)
    finally:
        settlement_store.Sql.run = original
        event.remove(db.engine, "before_cursor_execute", orm)
    assert r.status_code == 201, r.json
    assert r.json["own_account_fen"] == 900 and family(r)[0][1] == 4100
    orm_statements = [s for s in statements if s.startswith("orm: ") and not s.startswith("orm: BEGIN")]
    assert orm_statements == ["orm: institutions"], statements
    # patient; locks; bindings; accounts; the ledger transaction, two guarded updates, its postings; the settlement,
    # its family payment, the notice
    assert len([s for s in statements if not s.startswith("orm: ")]) == 11, statements
