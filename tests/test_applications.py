"""The binding life cycle over HTTP with real Redis and a real RQ worker: apply, review, notify, revoke."""
import datetime as dt

import pytest
from sqlalchemy import select, update

from api.extensions import db, redis_client
from api.models import Application, ApplicationEvent, Binding, Delivery, Notification
from api.timefmt import SHANGHAI
from tests import factories
from tests.lifecycle_helpers import person_headers, run_worker, staff_headers

URL = "/api/v1/bindings/applications"


@pytest.fixture
def family(clean_app):
    """An employee authorizer in 广州 with a resident spouse (in the kinship registry) and an unrelated person."""
    factories.load_policies()
    f = type("Family", (), {})()
    f.husband = factories.person("王建国", region_code="440106", balance_fen=300000)
    f.wife = factories.person("李秀英", insurance_type="resident", balance_fen=None, region_code="440104",
                              male=False, birth=dt.date(1972, 3, 8))
    f.stranger = factories.person("赵小明", insurance_type="resident", balance_fen=None, region_code="440111")
    factories.kinship(f.husband, f.wife, "spouse")
    return f


def apply(client, authorizer, beneficiary, relation, headers=None, **extra):
    body = {"beneficiary_name": beneficiary.name, "beneficiary_id_number": beneficiary.id_number,
            "relation": relation, **extra}
    return client.post(URL, json=body, headers=person_headers(authorizer) | (headers or {}))


def test_apply_approve_notify_and_revoke_by_beneficiary(client, family):
    r = apply(client, family.husband, family.wife, "spouse", monthly_limit_fen=50000)
    assert r.status_code == 202, r.json
    assert r.json["status"] == "submitted" and r.json["receipt_no"].startswith("GJ")
    app_id = r.json["id"]

    run_worker()

    detail = client.get(f"{URL}/{app_id}", headers=person_headers(family.husband)).json
    assert detail["status"] == "approved"
    assert [e["status"] for e in detail["timeline"]] == ["submitted", "reviewing", "approved"]
    assert detail["timeline"][0]["at"].endswith("+08:00")
    assert family.wife.id_number not in str(detail) and detail["beneficiary"]["id_number"].count("*") == 8

    # both sides were told, through their channel, exactly once per notification
    sent = db.session.scalars(select(Notification).where(Notification.application_id == app_id)).all()
    assert {(n.person_id, n.kind) for n in sent} == {
        (p.id, f"application_{s}") for p in (family.husband, family.wife) for s in ("submitted", "approved")}
    assert all(n.delivery_status == "sent" for n in sent)
    assert db.session.query(Delivery).count() == len(sent)
    approved = [n for n in sent if n.kind == "application_approved" and n.person_id == family.husband.id][0]
    assert approved.body == "您为【配偶 李**】申请的家庭共济已审核通过，即日起可使用。"

    inbox = client.get("/api/v1/notifications?unread=true", headers=person_headers(family.wife)).json
    assert len(inbox["items"]) == 2 and inbox["items"][0]["kind"] == "application_approved"

    granted = client.get("/api/v1/bindings", headers=person_headers(family.husband)).json["granted"]
    assert len(granted) == 1 and granted[0]["monthly_limit_fen"] == 50000 and granted[0]["used_this_month_fen"] == 0
    received = client.get("/api/v1/bindings", headers=person_headers(family.wife)).json["received"]
    assert received[0]["id"] == granted[0]["id"] and received[0]["relation"] == "spouse"

    r = client.post(f"/api/v1/bindings/{received[0]['id']}/revoke", json={"reason": "不再需要"},
                    headers=person_headers(family.wife))
    assert r.status_code == 200 and r.json["status"] == "revoked" and r.json["revoked_by"] == "beneficiary"
    again = client.post(f"/api/v1/bindings/{received[0]['id']}/revoke", json={},
                        headers=person_headers(family.husband))
    assert again.status_code == 409 and again.json["error"]["code"] == "BINDING_NOT_ACTIVE"
    run_worker()
    revoked = db.session.scalars(select(Notification).where(Notification.kind == "binding_revoked")).all()
    assert {n.person_id for n in revoked} == {family.husband.id, family.wife.id}
    assert all(n.delivery_status == "sent" for n in revoked)


def submit_with_proof(authorizer, beneficiary, relation):
    """An application with a 户口簿 attached (the file itself is tested in test_materials), submitted through the
    service; the registry has no record of them, so its review goes to a reviewer."""
    from api.models import Material
    from api.services import applications
    material = Material(owner_person_id=authorizer.id, kind="household_register", content_type="image/png",
                        size=10, sha256="0" * 64, storage_name="x")
    db.session.add(material)
    db.session.commit()
    return applications.submit(authorizer, {"beneficiary_name": beneficiary.name,
                                            "beneficiary_id_number": beneficiary.id_number, "relation": relation},
                               "wechat", materials=[material])


def test_no_kinship_record_with_proof_goes_to_a_reviewer_who_approves(client, family):
    sibling = factories.person("王建军", insurance_type="resident", balance_fen=None, region_code="440106")
    app = submit_with_proof(family.husband, sibling, "sibling")
    material = app.materials[0]
    run_worker()
    assert db.session.get(Application, app.id).status == "manual_review"

    # only reviewers see the queue
    assert client.get("/api/v1/staff/reviews", headers=person_headers(family.husband)).status_code == 403  # WRONG_TOKEN_KIND
    clerk = staff_headers("clerk1", roles=("clerk",))
    assert client.get("/api/v1/staff/reviews", headers=clerk).status_code == 403
    reviewer = staff_headers()
    queue = client.get("/api/v1/staff/reviews", headers=reviewer).json["items"]
    assert [a["id"] for a in queue] == [app.id]
    assert queue[0]["materials"] == [{"id": material.id, "kind": "household_register"}]
    assert client.post(f"/api/v1/staff/reviews/{app.id}/decision", json={"decision": "approve"},
                       headers=clerk).status_code == 403
    r = client.post(f"/api/v1/staff/reviews/{app.id}/decision", json={"decision": "reject", "reason": " "},
                    headers=reviewer)
    assert r.status_code == 400 and r.json["error"]["code"] == "REJECTION_REASON_REQUIRED"
    r = client.post(f"/api/v1/staff/reviews/{app.id}/decision", json={"decision": "approve", "reason": "户口簿核实"},
                    headers=reviewer)
    assert r.status_code == 200 and r.json["status"] == "approved"
    assert db.session.scalar(select(Binding).where(Binding.beneficiary_id == sibling.id)).status == "active"
    r = client.post(f"/api/v1/staff/reviews/{app.id}/decision", json={"decision": "reject", "reason": "x"},
                    headers=reviewer)
    assert r.status_code == 409 and r.json["error"]["code"] == "APPLICATION_NOT_PENDING"


def test_no_kinship_and_no_proof_is_rejected_with_the_reason(client, family):
    r = apply(client, family.husband, family.stranger, "child")
    assert r.status_code == 202
    run_worker()
    detail = client.get(f"{URL}/{r.json['id']}", headers=person_headers(family.husband)).json
    assert detail["status"] == "rejected" and detail["reason_code"] == "KINSHIP_NOT_CONFIRMED"
    assert "关系证明" in detail["reason"]
    note = db.session.scalar(select(Notification).where(Notification.person_id == family.husband.id,
                                                        Notification.kind == "application_rejected"))
    assert "未通过审核" in note.body and note.delivery_status == "sent"


def test_withdraw_before_the_decision_and_not_after(client, family):
    r = apply(client, family.husband, family.wife, "spouse")
    app_id = r.json["id"]
    assert client.post(f"{URL}/{app_id}/withdraw", headers=person_headers(family.wife)).status_code == 403
    w = client.post(f"{URL}/{app_id}/withdraw", headers=person_headers(family.husband))
    assert w.status_code == 200 and w.json["status"] == "withdrawn"
    run_worker()  # the review job finds nothing to do
    assert db.session.get(Application, app_id).status == "withdrawn"
    assert db.session.query(Binding).count() == 0
    r2 = apply(client, family.husband, family.wife, "spouse")
    run_worker()
    late = client.post(f"{URL}/{r2.json['id']}/withdraw", headers=person_headers(family.husband))
    assert late.status_code == 409 and late.json["error"]["code"] == "APPLICATION_DECIDED"
    again = client.post(f"{URL}/{app_id}/withdraw", headers=person_headers(family.husband))  # a second tap
    assert again.status_code == 409 and again.json["error"]["code"] == "APPLICATION_WITHDRAWN"
    assert again.json["error"]["message"] == "该申请已撤回，无需重复操作"


def test_a_withdrawal_before_the_review_tells_of_the_submission_first(client, family):
    """The 受理 notices wait for the review job; withdrawn before it ran, they go out with the withdrawal's, first."""
    app_id = apply(client, family.husband, family.wife, "spouse").json["id"]
    client.post(f"{URL}/{app_id}/withdraw", headers=person_headers(family.husband))
    run_worker()
    sent = db.session.execute(select(Notification.kind, Notification.delivery_status).join(
        Delivery, Delivery.notification_id == Notification.id).where(Notification.person_id == family.husband.id)
        .order_by(Delivery.id)).all()
    assert sent == [("application_submitted", "sent"), ("application_withdrawn", "sent")]


def test_a_withdrawal_is_told_even_when_the_sweeper_has_queued_the_submission_notice(client, family):
    """The withdrawal's job carries the waiting 受理 notices too; a job the sweeper queued for one of them must not
    be mistaken for it (the two used to share a name, and the withdrawal's was dropped)."""
    from api.jobs import NOTIFICATIONS, enqueue
    app_id = apply(client, family.husband, family.wife, "spouse").json["id"]
    oldest = db.session.scalar(select(Notification.id).where(Notification.application_id == app_id)
                               .order_by(Notification.created_at, Notification.id))
    assert enqueue(NOTIFICATIONS, "workers.jobs.deliver_notification", f"notify-{oldest}", oldest)  # the sweeper
    client.post(f"{URL}/{app_id}/withdraw", headers=person_headers(family.husband))
    run_worker()
    statuses = db.session.execute(select(Notification.kind, Notification.delivery_status)
                                  .where(Notification.application_id == app_id)).all()
    assert sorted(statuses) == sorted([("application_submitted", "sent")] * 2 + [("application_withdrawn", "sent")] * 2)


def test_the_beneficiary_sees_the_relation_from_his_side(client, family):
    child = factories.person("王小明", insurance_type="resident", balance_fen=None, region_code="440106")
    factories.kinship(family.husband, child, "child")
    app_id = apply(client, family.husband, child, "child").json["id"]
    mine = client.get(f"{URL}/{app_id}", headers=person_headers(family.husband)).json
    his = client.get(f"{URL}/{app_id}", headers=person_headers(child)).json
    assert (mine["relation"], mine["relation_label"], mine["counterpart"]["relation"]) == ("child", "子女", "child")
    assert (his["relation"], his["relation_label"], his["counterpart"]["relation"]) == ("parent", "父母", "parent")


def test_names_are_compared_as_people_type_them(client, family):
    uncle = factories.person("买买提·艾力", insurance_type="resident", balance_fen=None, region_code="440106")
    factories.kinship(family.husband, uncle, "sibling")
    for typed in ("买买提•艾力", " 买买提．艾力 "):  # another middle dot, full-width forms, stray spaces
        r = apply(client, family.husband, uncle, "sibling", beneficiary_name=typed)
        assert r.status_code == 202, r.json
        client.post(f"{URL}/{r.json['id']}/withdraw", headers=person_headers(family.husband))


def test_only_an_eligible_authorizer_learns_that_a_name_does_not_match(client, family):
    r = apply(client, family.husband, family.wife, "spouse", beneficiary_name="李秀芳")
    assert r.status_code == 422 and r.json["error"]["code"] == "BENEFICIARY_NAME_MISMATCH"
    # a resident (no personal account) probing name / number pairs is told only that he cannot authorize
    r = apply(client, family.wife, family.stranger, "sibling", beneficiary_name="赵大明")
    assert r.status_code == 422 and r.json["error"]["code"] == "AUTHORIZER_NOT_EMPLOYEE"


def test_applications_are_limited_per_person(client, family, monkeypatch):
    monkeypatch.setitem(client.application.config, "RATELIMIT_APPLY_PER_PERSON", "3/hour")
    answers = [apply(client, family.husband, family.wife, "spouse", beneficiary_name=f"试{i}").status_code
               for i in range(4)]
    assert answers == [422, 422, 422, 429]
    r = apply(client, family.husband, family.wife, "spouse")
    assert r.status_code == 429 and r.json["error"]["code"] == "RATE_LIMITED" and int(r.headers["Retry-After"]) > 0
    assert apply(client, family.stranger, family.wife, "spouse").status_code == 422  # another person: his own count
    redis_client().flushdb()
    first = apply(client, family.husband, family.wife, "spouse", headers={"Idempotency-Key": "k"})
    assert first.status_code == 202
    for _ in range(5):  # a client retrying after a lost answer gets the first answer, and is not counted
        again = apply(client, family.husband, family.wife, "spouse", headers={"Idempotency-Key": "k"})
        assert (again.status_code, again.json) == (202, first.json)


@pytest.mark.parametrize("valid_until", ["2001-01-01", "yesterday"])
def test_a_validity_window_that_has_already_ended_is_refused(client, family, valid_until):
    from api.timefmt import local_today
    day = (local_today() - dt.timedelta(days=1)).isoformat() if valid_until == "yesterday" else valid_until
    r = apply(client, family.husband, family.wife, "spouse", valid_until=day)
    assert r.status_code == 400 and r.json["error"] == {
        "code": "VALID_UNTIL_IN_PAST", "message": "授权有效期不能早于今天", "field": "valid_until"}
    assert apply(client, family.husband, family.wife, "spouse",
                 valid_until=local_today().isoformat()).status_code == 202
    run_worker()
    binding_id = db.session.scalar(select(Binding.id))
    r = client.patch(f"/api/v1/bindings/{binding_id}", json={"valid_until": day},
                     headers=person_headers(family.husband))
    assert r.status_code == 400 and r.json["error"]["code"] == "VALID_UNTIL_IN_PAST"


def test_a_body_that_is_not_an_object_is_a_plain_400(client, family):
    for body in ([], "text", 5):
        r = client.post(URL, json=body, headers=person_headers(family.husband))
        assert r.status_code == 400 and r.json["error"]["code"] == "INVALID_INPUT"
        assert r.json["error"]["field"] is None and "_schema" not in r.json["error"]["message"]


@pytest.mark.parametrize("who, relation, code, status", [
    ("self", "spouse", "SELF_BINDING", 422),
    ("wife", "father_in_law", "RELATION_UNKNOWN", 422),
])
def test_rule_refusals_answer_at_once(client, family, who, relation, code, status):
    target = family.husband if who == "self" else family.wife
    r = apply(client, family.husband, target, relation)
    assert r.status_code == status and r.json["error"]["code"] == code
    assert r.json["error"]["message"] and db.session.query(Application).count() == 0


def test_refusals_from_the_policy_engine(client, family):
    wife = family.wife
    # a resident cannot authorize
    r = apply(client, wife, family.husband, "spouse")
    assert r.status_code == 422 and r.json["error"]["code"] == "AUTHORIZER_NOT_EMPLOYEE"
    # the named person is not in the registry
    r = client.post(URL, json={"beneficiary_name": "无名", "beneficiary_id_number": factories.id_number("440106"),
                               "relation": "child"}, headers=person_headers(family.husband))
    assert r.status_code == 422 and r.json["error"]["code"] == "BENEFICIARY_NOT_INSURED"
    # a wrong checksum is bad input
    bad = wife.id_number[:-1] + ("0" if wife.id_number[-1] != "0" else "1")
    r = client.post(URL, json={"beneficiary_name": wife.name, "beneficiary_id_number": bad, "relation": "spouse"},
                    headers=person_headers(family.husband))
    assert r.status_code == 400 and r.json["error"]["code"] == "INVALID_ID_NUMBER"
    # the name does not match the number
    r = client.post(URL, json={"beneficiary_name": "张冒名", "beneficiary_id_number": wife.id_number,
                               "relation": "spouse"}, headers=person_headers(family.husband))
    assert r.status_code == 422 and r.json["error"]["code"] == "BENEFICIARY_NAME_MISMATCH"
    # a region that admits only 配偶/父母/子女 (上海 did until 2025; no province since 2024-12, N4)
    factories.set_policy("31", relations=factories.RELATIONS_2021)
    sh = factories.person("陈上海", region_code="310104", balance_fen=100000, prior_year_fen=50000)
    sh_brother = factories.person("陈浦东", insurance_type="resident", balance_fen=None, region_code="310115")
    r = apply(client, sh, sh_brother, "sibling")
    assert r.status_code == 422 and r.json["error"]["code"] == "RELATION_NOT_ALLOWED"


def test_duplicates_conflict(client, family):
    assert apply(client, family.husband, family.wife, "spouse").status_code == 202
    r = apply(client, family.husband, family.wife, "spouse")
    assert r.status_code == 409 and r.json["error"]["code"] == "DUPLICATE_APPLICATION"
    run_worker()
    r = apply(client, family.husband, family.wife, "spouse")
    assert r.status_code == 409 and r.json["error"]["code"] == "DUPLICATE_BINDING"


def test_idempotency_key_replays_the_first_answer(client, family):
    body = {"beneficiary_name": family.wife.name, "beneficiary_id_number": family.wife.id_number,
            "relation": "spouse"}
    headers = person_headers(family.husband) | {"Idempotency-Key": "k-1"}
    first = client.post(URL, json=body, headers=headers)
    second = client.post(URL, json=body, headers=headers)
    assert first.status_code == second.status_code == 202 and first.json == second.json
    assert db.session.query(Application).count() == 1
    other = client.post(URL, json=body | {"monthly_limit_fen": 1}, headers=headers)
    assert other.status_code == 409 and other.json["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"


def test_other_peoples_objects_are_404_and_no_token_is_401(client, family):
    r = apply(client, family.husband, family.wife, "spouse")
    run_worker()
    app_id = r.json["id"]
    binding_id = client.get("/api/v1/bindings", headers=person_headers(family.husband)).json["granted"][0]["id"]
    stranger = person_headers(family.stranger)
    for method, path in [("get", f"{URL}/{app_id}"), ("post", f"{URL}/{app_id}/withdraw"),
                         ("post", f"/api/v1/bindings/{binding_id}/revoke"),
                         ("patch", f"/api/v1/bindings/{binding_id}")]:
        resp = getattr(client, method)(path, json={"priority": 1} if method == "patch" else {}, headers=stranger)
        assert resp.status_code == 404 and resp.json["error"]["code"] == "NOT_FOUND", path
        missing = getattr(client, method)(path.replace(app_id, "0" * 32).replace(binding_id, "0" * 32),
                                          json={"priority": 1} if method == "patch" else {}, headers=stranger)
        assert missing.status_code == 404 and missing.json == resp.json
    note = db.session.scalar(select(Notification).where(Notification.person_id == family.husband.id))
    assert client.post(f"/api/v1/notifications/{note.id}/read", headers=stranger).status_code == 404
    assert client.get(URL).status_code == 401
    assert client.get(URL, headers={"Authorization": "Bearer forged"}).json["error"]["code"] == "UNAUTHORIZED"


def test_limits_are_the_authorizers_and_priority_the_beneficiarys(client, family):
    apply(client, family.husband, family.wife, "spouse")
    run_worker()
    bid = client.get("/api/v1/bindings", headers=person_headers(family.husband)).json["granted"][0]["id"]
    r = client.patch(f"/api/v1/bindings/{bid}", json={"monthly_limit_fen": 20000, "valid_until": "2027-12-31"},
                     headers=person_headers(family.husband))
    assert r.status_code == 200 and r.json["monthly_limit_fen"] == 20000 and r.json["valid_until"] == "2027-12-31"
    assert client.patch(f"/api/v1/bindings/{bid}", json={"monthly_limit_fen": 1},
                        headers=person_headers(family.wife)).status_code == 403
    r = client.patch(f"/api/v1/bindings/{bid}", json={"priority": 1}, headers=person_headers(family.wife))
    assert r.status_code == 200 and r.json["priority"] == 1
    r = client.patch(f"/api/v1/bindings/{bid}", json={"monthly_limit_fen": -5}, headers=person_headers(family.husband))
    assert r.status_code == 400 and r.json["error"]["field"] == "monthly_limit_fen"
    r = client.patch(f"/api/v1/bindings/{bid}", json={"monthly_limit_fen": None},
                     headers=person_headers(family.husband))
    assert r.status_code == 200 and r.json["monthly_limit_fen"] is None


def test_bad_input_is_a_chinese_400(client, family):
    r = client.post(URL, json={"relation": "spouse"}, headers=person_headers(family.husband))
    assert r.status_code == 400 and r.json["error"]["field"] == "beneficiary_name"
    assert "必填" in r.json["error"]["message"]
    r = client.post(URL, data="not json", content_type="application/json", headers=person_headers(family.husband))
    assert r.status_code == 400 and r.json["error"]["code"] in ("MALFORMED_JSON", "INVALID_INPUT")


def test_manual_review_not_decided_in_time_expires(client, family):
    from api.services import applications, sweeper
    sibling = factories.person("王建军", insurance_type="resident", balance_fen=None, region_code="440106")
    app = submit_with_proof(family.husband, sibling, "sibling")
    before = dt.datetime.now(dt.timezone.utc)
    run_worker()
    waiting = db.session.get(Application, app.id)
    assert waiting.status == "manual_review"
    assert before + dt.timedelta(days=5) <= waiting.review_due_at <= dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=5)
    detail = client.get(f"{URL}/{app.id}", headers=person_headers(family.husband)).json
    assert detail["review_due_at"] == waiting.review_due_at.astimezone(SHANGHAI).isoformat(timespec="seconds")
    told = db.session.scalars(select(Notification.body).where(Notification.application_id == app.id,
                                                              Notification.kind == "application_manual_review")).all()
    due_day = f"{waiting.review_due_at.astimezone(SHANGHAI):%Y年%m月%d日}"
    assert len(told) == 2 and all(f"预计{due_day}前完成" in body for body in told)
    assert sweeper.expire_overdue(dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=4)) == 0  # 44: 5 days
    assert sweeper.expire_overdue(dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=6)) == 1
    db.session.rollback()
    expired = db.session.get(Application, app.id)
    assert expired.status == "expired" and expired.reason_code == "REVIEW_EXPIRED"
    kinds = db.session.scalars(select(Notification.kind).where(Notification.application_id == app.id)).all()
    assert kinds.count("application_expired") == 2
    assert sweeper.expire_overdue(dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30)) == 0


def test_a_manual_review_left_without_a_deadline_gets_one_and_expires(client, family):
    """Moved to manual review by a process still running the code of before review_due_at (a rolling deploy)."""
    from api.services import applications, sweeper
    app = submit_with_proof(family.husband, family.stranger, "child")
    run_worker()
    db.session.execute(update(Application).where(Application.id == app.id).values(review_due_at=None))
    db.session.commit()
    entered = db.session.scalar(select(ApplicationEvent.at).where(ApplicationEvent.application_id == app.id,
                                                                  ApplicationEvent.status == "manual_review"))
    assert sweeper.expire_overdue(dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=4)) == 0
    db.session.rollback()
    assert db.session.get(Application, app.id).review_due_at == entered + dt.timedelta(days=5)  # 44: 5 days
    assert sweeper.expire_overdue(dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=6)) == 1


def test_a_reviewers_reason_is_masked_before_the_people_read_it(client, family):
    app = submit_with_proof(family.husband, family.stranger, "child")
    run_worker()
    reason = f"户口簿上的身份证号 {family.stranger.id_number} 与电话 13912345678 不符"
    r = client.post(f"/api/v1/staff/reviews/{app.id}/decision", json={"decision": "reject", "reason": reason},
                    headers=staff_headers())
    assert r.status_code == 200 and r.json["status"] == "rejected" and r.json["reason_code"] == "REJECTED_BY_REVIEWER"
    shown = client.get(f"{URL}/{app.id}", headers=person_headers(family.husband)).json["timeline"][-1]["reason"]
    bodies = db.session.scalars(select(Notification.body).where(Notification.kind == "application_rejected")).all()
    payloads = [str(d.payload) for d in db.session.scalars(select(Delivery))]
    for text in [shown, *bodies, *payloads]:
        assert family.stranger.id_number not in text and "13912345678" not in text
    assert "139****5678" in shown and family.stranger.id_number[:6] + "********" in shown
