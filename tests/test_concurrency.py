"""Decisions racing each other: the caps of R3/R5 hold, one of two conflicting decisions wins, nothing deadlocks.

On SQLite writers take turns anyway; on PostgreSQL two transactions would each read "no authorizer yet" and both
insert (the unique index covers a pair, not a beneficiary) were the people's rows not locked before the rules read
them (`api.services.rule_facts.lock_people`), and that lock must not deadlock with a transaction that holds an
application's row and then writes rows pointing at those people.
"""
import datetime as dt
import threading

import pytest

from flask.testing import FlaskClient
from sqlalchemy import func, select

from api.extensions import db
from api.models import Application, Material, Person, StaffUser
from api.services import applications, manual_reviews, rule_facts, sweeper
from tests import factories
from tests.lifecycle_helpers import person_headers, run_worker, staff_headers

URL = "/api/v1/bindings/applications"
ROUNDS = 8


def family(i: int):
    """An employee father and mother in 杭州 (浙江: one authorizer per beneficiary) and their resident son."""
    father = factories.person(f"钱父{i}", region_code="330102", birth=dt.date(1960, 1, 1) + dt.timedelta(days=i))
    mother = factories.person(f"孙母{i}", region_code="330102", male=False,
                              birth=dt.date(1962, 1, 1) + dt.timedelta(days=i))
    son = factories.person(f"钱子{i}", insurance_type="resident", balance_fen=None, region_code="330106",
                           birth=dt.date(1990, 1, 1) + dt.timedelta(days=i))
    return father, mother, son


def _status_and_code(r):
    return r.status_code, (r.json.get("error") or {}).get("code")


def race(app, requests: list[tuple[dict, dict]], answer=_status_and_code) -> list:
    """Sends the requests at the same moment from threads of their own; returns answer(response) of each."""
    barrier = threading.Barrier(len(requests))
    results = [None] * len(requests)

    def send(n, headers, body):
        client = FlaskClient(app, app.response_class)  # the plain client: each request has its own app context,
        # session and connection (the `client` fixture's commits the test's session around each request)
        barrier.wait()
        r = client.post(URL, json=body, headers=headers)
        results[n] = answer(r)

    threads = [threading.Thread(target=send, args=(n, h, b)) for n, (h, b) in enumerate(requests)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_two_parents_applying_at_once_for_the_same_child_get_one_application(clean_app):
    factories.load_policies()
    families = [family(i) for i in range(ROUNDS)]
    db.session.commit()
    for father, mother, son in families:
        body = {"beneficiary_name": son.name, "beneficiary_id_number": son.id_number, "relation": "child"}
        results = race(clean_app, [(person_headers(father), body), (person_headers(mother), body)])
        assert sorted(results, key=lambda r: r[0]) == [(202, None), (422, "AUTHORIZER_LIMIT")], results
        db.session.rollback()
        assert db.session.scalar(select(func.count()).select_from(Application)
                                 .where(Application.beneficiary_id == son.id)) == 1


def test_the_same_idempotency_key_sent_four_times_at_once_gets_the_first_answer_four_times(clean_app):
    """The losers of the race are refused by the winner's work (a duplicate application): they replay its answer."""
    factories.load_policies()
    for i in range(ROUNDS // 2):
        father, _, son = family(i)
        db.session.commit()
        headers = person_headers(father) | {"Idempotency-Key": f"tap-{i}"}
        body = {"beneficiary_name": son.name, "beneficiary_id_number": son.id_number, "relation": "child"}
        results = race(clean_app, [(headers, body)] * 4, answer=lambda r: (r.status_code, r.json.get("id")))
        assert {status for status, _ in results} == {202}, results
        assert len({app_id for _, app_id in results}) == 1
        db.session.rollback()
        assert db.session.scalar(select(func.count()).select_from(Application)
                                 .where(Application.beneficiary_id == son.id)) == 1


@pytest.mark.parametrize("other", ["withdraw", "expire"])
def test_a_manual_approval_racing_a_withdrawal_or_an_expiry_loses_cleanly(clean_app, monkeypatch, other):
    """On PostgreSQL the two are held at the worst moment: the withdrawal (or expiry) holding the application's row,
    the approval holding the people's rows; then both go on. Exactly one wins; the approval answers 409."""
    factories.load_policies()
    brother = factories.person("王建国", region_code="440106", balance_fen=300000)
    sister = factories.person("王建红", insurance_type="resident", balance_fen=None, region_code="440106", male=False)
    proof = Material(owner_person_id=brother.id, kind="household_register", content_type="image/png", size=10,
                     sha256="0" * 64, storage_name="proof.png")
    db.session.add(proof)
    db.session.commit()
    app_id = applications.submit(brother, {"beneficiary_name": sister.name, "beneficiary_id_number": sister.id_number,
                                           "relation": "sibling"}, "wechat", materials=[proof]).id
    run_worker()  # not in the kinship registry, proof uploaded: manual review
    assert db.session.get(Application, app_id).status == "manual_review"
    staff_headers()  # creates the reviewer
    reviewer_id, brother_id = db.session.scalar(select(StaffUser.id)), brother.id
    db.session.commit()

    if db.engine.dialect.name == "postgresql":  # on SQLite the writers' lock lets only one of them in at a time
        both_hold = threading.Barrier(2, timeout=10)
        announce, lock = applications.announce, rule_facts.lock_people

        def announce_after_barrier(app, status, *args, **kwargs):
            if status in ("withdrawn", "expired"):
                both_hold.wait()  # the application's row is ours
            return announce(app, status, *args, **kwargs)

        def lock_then_barrier(ids):
            lock(ids)
            if threading.current_thread().name == "approval":
                both_hold.wait()  # the people's rows are ours

        monkeypatch.setattr(applications, "announce", announce_after_barrier)
        monkeypatch.setattr(rule_facts, "lock_people", lock_then_barrier)

    results = {}

    def run(name, action):
        with clean_app.app_context():
            try:
                action()
                results[name] = "ok"
            except Exception as exc:  # noqa: BLE001 - the outcome is what the test looks at
                results[name] = getattr(exc, "code", repr(exc))
            finally:
                db.session.remove()

    def withdraw_or_expire():
        if other == "withdraw":
            applications.withdraw(db.session.get(Person, brother_id), app_id)
        else:
            sweeper.expire_overdue(dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30))

    def approve():
        manual_reviews.decide_manually(db.session.get(StaffUser, reviewer_id), app_id, "approve", "户口本已核")

    threads = [threading.Thread(target=run, args=("other", withdraw_or_expire), name="other"),
               threading.Thread(target=run, args=("approval", approve), name="approval")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    db.session.rollback()
    final = db.session.get(Application, app_id).status
    if final == "approved":  # on SQLite the approval may simply come first
        assert results == {"approval": "ok", "other": "APPLICATION_DECIDED" if other == "withdraw" else "ok"}
    else:
        assert final == ("withdrawn" if other == "withdraw" else "expired")
        assert results == {"other": "ok", "approval": "APPLICATION_NOT_PENDING"}, results
