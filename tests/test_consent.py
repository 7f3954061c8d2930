"""R13 over HTTP with real Redis and a real RQ worker: where the policy sets consent_age (甘肃, 海南, 新疆: 16) an
application for a beneficiary that old waits for his own answer — agreement sends it to review, refusal ends it,
silence expires it, both people are told each time; younger beneficiaries skip the step; the bot asks the same."""
import datetime as dt

import pytest
from sqlalchemy import select, update

from api.extensions import db
from api.models import Application, Notification, utcnow
from api.services import sweeper
from tests import factories
from tests.bot_helpers import Chat
from tests.lifecycle_helpers import person_headers, run_worker

URL = "/api/v1/bindings/applications"


@pytest.fixture
def gansu(clean_app):
    """A 兰州 employee with a wife (adult), a son of 20 and a daughter of 11, all in the kinship registry."""
    factories.load_policies()
    f = type("Family", (), {})()
    today = dt.date.today()
    f.father = factories.person("马志强", region_code="620102", balance_fen=420000, birth=dt.date(1972, 4, 9))
    f.wife = factories.person("赵玉兰", insurance_type="resident", balance_fen=None, region_code="620102",
                              male=False, birth=dt.date(1974, 8, 15))
    f.son = factories.person("马小军", insurance_type="resident", balance_fen=None, region_code="620102",
                             birth=today.replace(year=today.year - 20) - dt.timedelta(days=3))
    f.daughter = factories.person("马小雨", insurance_type="resident", balance_fen=None, region_code="620102",
                                  male=False, birth=today.replace(year=today.year - 11))
    f.stranger = factories.person("赵某", insurance_type="resident", balance_fen=None, region_code="620102")
    factories.kinship(f.father, f.wife, "spouse")
    factories.kinship(f.father, f.son, "child")
    factories.kinship(f.father, f.daughter, "child")
    return f


def apply(client, authorizer, beneficiary, relation):
    return client.post(URL, headers=person_headers(authorizer), json={
        "beneficiary_name": beneficiary.name, "beneficiary_id_number": beneficiary.id_number, "relation": relation})


def consent(client, person, app_id, agree):
    return client.post(f"{URL}/{app_id}/consent", json={"agree": agree}, headers=person_headers(person))


def kinds(app_id, person) -> list[str]:
    return [n.kind for n in db.session.scalars(select(Notification).where(
        Notification.application_id == app_id, Notification.person_id == person.id).order_by(Notification.created_at,
                                                                                            Notification.id))]


def detail(client, person, app_id) -> dict:
    return client.get(f"{URL}/{app_id}", headers=person_headers(person)).json


def test_agreement_sends_the_application_to_review(client, gansu):
    r = apply(client, gansu.father, gansu.son, "child")
    assert r.status_code == 202 and r.json["status"] == "awaiting_consent", r.json
    app_id = r.json["id"]
    run_worker()  # the review job does not take an application that waits for consent
    waiting = detail(client, gansu.son, app_id)
    assert waiting["status"] == "awaiting_consent" and waiting["status_label"] == "待共济人确认"
    assert waiting["consent_due_at"] and waiting["role"] == "beneficiary"
    due = db.session.get(Application, app_id).consent_due_at
    assert dt.timedelta(days=6, hours=23) < due - utcnow() <= dt.timedelta(days=7)  # 甘肃: the default 7 days
    asked = db.session.scalar(select(Notification).where(Notification.person_id == gansu.son.id,
                                                         Notification.kind == "application_awaiting_consent"))
    assert "需要您本人确认" in asked.body and "同意" in asked.body and asked.delivery_status == "sent"
    # nobody but the beneficiary may answer, not even the authorizer: 404 as for an application that does not exist
    for other in (gansu.father, gansu.stranger):
        r = consent(client, other, app_id, True)
        assert r.status_code == 404 and r.json["error"]["code"] == "NOT_FOUND"
    assert consent(client, gansu.son, "no-such-id", True).status_code == 404
    assert client.post(f"{URL}/{app_id}/consent", json={"agree": "yes"},
                       headers=person_headers(gansu.son)).status_code == 400

    r = consent(client, gansu.son, app_id, True)
    assert r.status_code == 200 and r.json["status"] == "submitted", r.json
    run_worker()
    done = detail(client, gansu.father, app_id)
    assert done["status"] == "approved" and done["binding_id"]
    assert [e["status"] for e in done["timeline"]] == ["submitted", "awaiting_consent", "submitted", "reviewing",
                                                        "approved"]
    assert [e["actor"] for e in done["timeline"]][:3] == ["applicant", "system", "beneficiary"]
    for person in (gansu.father, gansu.son):
        assert kinds(app_id, person) == ["application_awaiting_consent", "application_submitted",
                                         "application_approved"]
    r = consent(client, gansu.son, app_id, False)  # too late to change his mind: the binding is his to revoke
    assert r.status_code == 409 and r.json["error"]["code"] == "CONSENT_ANSWERED"


def test_refusal_ends_the_application_and_both_are_told(client, gansu):
    app_id = apply(client, gansu.father, gansu.wife, "spouse").json["id"]
    r = consent(client, gansu.wife, app_id, False)
    assert r.status_code == 200 and r.json["status"] == "rejected" and r.json["reason_code"] == "CONSENT_DECLINED"
    run_worker()
    assert detail(client, gansu.father, app_id)["status"] == "rejected"
    told = {n.person_id: n.body for n in db.session.scalars(select(Notification).where(
        Notification.application_id == app_id, Notification.kind == "application_rejected"))}
    assert "没有同意" in told[gansu.father.id] and "您已拒绝" in told[gansu.wife.id]
    assert consent(client, gansu.wife, app_id, True).json["error"]["code"] == "CONSENT_ANSWERED"
    # a refused application is not pending: the authorizer may ask again, and it waits again
    again = apply(client, gansu.father, gansu.wife, "spouse")
    assert again.status_code == 202 and again.json["status"] == "awaiting_consent"


def test_silence_past_the_policys_days_expires_it(client, gansu):
    app_id = apply(client, gansu.father, gansu.son, "child").json["id"]
    assert apply(client, gansu.father, gansu.son, "child").json["error"]["code"] == "DUPLICATE_APPLICATION"
    assert sweeper.expire_overdue() == 0  # not due yet
    db.session.execute(update(Application).where(Application.id == app_id)
                       .values(consent_due_at=utcnow() - dt.timedelta(seconds=1)))
    db.session.commit()
    r = consent(client, gansu.son, app_id, True)  # the sweeper has not come by: silence has run out all the same
    assert r.status_code == 409 and r.json["error"]["code"] == "APPLICATION_EXPIRED"
    assert sweeper.expire_overdue() == 1
    run_worker()
    expired = detail(client, gansu.son, app_id)
    assert expired["status"] == "expired" and expired["reason_code"] == "CONSENT_EXPIRED"
    assert expired["consent_due_at"] is None
    for person in (gansu.father, gansu.son):
        assert kinds(app_id, person) == ["application_awaiting_consent", "application_expired"]
    assert sweeper.expire_overdue() == 0
    assert consent(client, gansu.son, app_id, True).json["error"]["code"] == "APPLICATION_EXPIRED"


def test_the_authorizer_may_withdraw_while_it_waits(client, gansu):
    app_id = apply(client, gansu.father, gansu.son, "child").json["id"]
    r = client.post(f"{URL}/{app_id}/withdraw", headers=person_headers(gansu.father))
    assert r.status_code == 200 and r.json["status"] == "withdrawn"
    assert consent(client, gansu.son, app_id, True).json["error"]["code"] == "APPLICATION_WITHDRAWN"


def test_too_young_to_be_asked_skips_the_step(client, gansu):
    r = apply(client, gansu.father, gansu.daughter, "child")
    assert r.status_code == 202 and r.json["status"] == "submitted"
    run_worker()
    done = detail(client, gansu.father, r.json["id"])
    assert done["status"] == "approved" and "awaiting_consent" not in [e["status"] for e in done["timeline"]]
    assert consent(client, gansu.daughter, r.json["id"], True).json["error"]["code"] == "CONSENT_ANSWERED"


def test_a_region_without_consent_age_never_asks(client, clean_app):
    factories.load_policies()
    husband = factories.person("王建国", region_code="440106", balance_fen=300000)
    wife = factories.person("李秀英", insurance_type="resident", balance_fen=None, region_code="440104", male=False,
                            birth=dt.date(1972, 3, 8))
    factories.kinship(husband, wife, "spouse")
    assert apply(client, husband, wife, "spouse").json["status"] == "submitted"


def test_the_bot_offers_agree_and_decline(client, gansu):
    son_app = apply(client, gansu.father, gansu.son, "child").json["id"]
    chat = Chat(client, gansu.son)
    chat.say("你好")
    assert "待您本人确认" in chat.text and chat.options["待我确认"] == "consent"
    chat.tap("consent")
    assert "【父母 马**】" in chat.text and "您同意吗" in chat.text
    assert set(chat.options) >= {"同意", "不同意"}
    chat.say("同意")  # typed: the label of the option shown
    assert "您已同意" in chat.text
    run_worker()
    assert detail(client, gansu.son, son_app)["status"] == "approved"

    wife_app = apply(client, gansu.father, gansu.wife, "spouse").json["id"]
    chat = Chat(client, gansu.wife)
    chat.say("不同意")  # without an offer on screen: the request is shown again, nothing decided
    assert "您同意吗" in chat.text and db.session.get(Application, wife_app).status == "awaiting_consent"
    chat.tap(chat.options["不同意"])
    assert "您已拒绝" in chat.text
    assert db.session.get(Application, wife_app).reason_code == "CONSENT_DECLINED"
    chat.say("待我确认")
    assert "没有待确认" in chat.text
    # 同意 inside a question is not an answer to a request: the question is answered
    chat.say("家人不同意怎么办？")
    assert "没有待确认" not in chat.text and "您同意吗" not in chat.text
    chat.say("办理家庭共济需要家人同意吗")
    assert "没有待确认" not in chat.text
    # someone else's answer option gets the service's 404, said in words
    stranger = Chat(client, gansu.stranger)
    stranger.tap(f"consent_agree:{wife_app}")
    assert "没能办理" in stranger.text
