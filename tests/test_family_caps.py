"""R3's family caps count both people's links in both directions, at submit, at review and at a reviewer's approval.

Nobody gets a second spouse, or a second father or mother, whoever of the two applies and whichever way the
existing binding or application runs.
"""
import datetime as dt
import threading

import pytest
from sqlalchemy import func, select

from api.extensions import db
from api.models import Application, Binding, Material
from api.services import applications, manual_reviews
from tests import factories
from tests.lifecycle_helpers import person_headers, run_worker, staff_headers

URL = "/api/v1/bindings/applications"
HOME = {"44": "440106", "31": "310101", "33": "330102", "14": "140105", "37": "370902"}


def _apply(client, authorizer, beneficiary, relation):
    return client.post(URL, headers=person_headers(authorizer), json={
        "beneficiary_name": beneficiary.name, "beneficiary_id_number": beneficiary.id_number, "relation": relation})


def _bind(authorizer, beneficiary, relation):
    db.session.add(Binding(authorizer_id=authorizer.id, beneficiary_id=beneficiary.id, relation=relation))
    db.session.commit()


def _people(region, *specs):
    """Employees with money in `region` (names and sexes from specs), born years apart."""
    return [factories.person(name, region_code=HOME[region], male=male, balance_fen=300000,
                             birth=dt.date(1950 + 10 * i, 3, 1)) for i, (name, male) in enumerate(specs)]


@pytest.mark.parametrize("region", sorted(HOME))
def test_a_beneficiary_who_is_someones_spouse_cannot_become_another_ones(client, region):
    """B is A's spouse (A authorized B): C cannot name B his spouse, and B's own binding counts the same way."""
    factories.load_policies()
    a, b, c = _people(region, ("甲男", True), ("乙女", False), ("丙男", True))
    _bind(a, b, "spouse")
    r = _apply(client, c, b, "spouse")
    assert (r.status_code, r.json["error"]["code"]) == (422, "SPOUSE_LIMIT"), r.json
    assert r.json["error"]["message"].startswith("每人只能与一位配偶")


@pytest.mark.parametrize("region", sorted(HOME))
def test_a_spouse_who_authorized_you_counts_when_you_name_another(client, region):
    factories.load_policies()
    a, b, c = _people(region, ("甲男", True), ("乙女", False), ("丙女", False))
    _bind(b, a, "spouse")  # B authorized A
    r = _apply(client, a, c, "spouse")
    assert (r.status_code, r.json["error"]["code"]) == (422, "SPOUSE_LIMIT"), r.json
    # while the couple may share both ways: A may authorize B in turn
    assert _apply(client, a, b, "spouse").status_code == 202


@pytest.mark.parametrize("region", sorted(HOME))
def test_a_pending_application_counts_as_a_spouse_too(client, region):
    factories.load_policies()
    a, b, c = _people(region, ("甲男", True), ("乙女", False), ("丙男", True))
    assert _apply(client, a, b, "spouse").status_code == 202  # not decided yet
    r = _apply(client, c, b, "spouse")
    assert (r.status_code, r.json["error"]["code"]) == (422, "SPOUSE_LIMIT"), r.json


@pytest.mark.parametrize("region", sorted(HOME))
def test_a_child_who_has_a_father_cannot_get_a_second_one_from_either_side(client, region):
    """The child's father authorized him: another man can neither be named his father by the child, nor name the
    child his own child."""
    factories.load_policies()
    father, stranger, child = _people(region, ("父", True), ("外人", True), ("子", True))
    mother = _people(region, ("母", False))[0]
    _bind(father, child, "child")
    r = _apply(client, child, stranger, "parent")  # the child names a second father
    assert (r.status_code, r.json["error"]["code"]) == (422, "PARENT_LIMIT"), r.json
    r = _apply(client, stranger, child, "child")  # a second father names the child
    assert (r.status_code, r.json["error"]["code"]) == (422, "PARENT_LIMIT"), r.json
    # a mother is not a second father; the father the other way round is no second father either
    assert _apply(client, child, mother, "parent").status_code == 202
    assert _apply(client, child, father, "parent").status_code == 202


def test_a_reviewers_approval_checks_the_caps_again(client):
    """C's application with a 承诺书 waits for a reviewer; meanwhile B has become A's spouse: approval is refused."""
    factories.load_policies()
    a, b, c = _people("44", ("甲男", True), ("乙女", False), ("丙男", True))
    letter = Material(owner_person_id=c.id, kind="commitment_letter", content_type="application/pdf", size=10,
                      sha256="0" * 64, storage_name="letter.pdf")
    db.session.add(letter)
    db.session.commit()
    app = applications.submit(c, {"beneficiary_name": b.name, "beneficiary_id_number": b.id_number,
                                  "relation": "spouse"}, "wechat", materials=[letter])
    run_worker()
    assert db.session.get(Application, app.id).status == "manual_review"
    _bind(a, b, "spouse")  # e.g. entered at the window of another city before this check existed
    r = client.post(f"/api/v1/staff/reviews/{app.id}/decision", headers=staff_headers(),
                    json={"decision": "approve", "reason": "承诺书已核"})
    assert (r.status_code, r.json["error"]["code"]) == (422, "SPOUSE_LIMIT"), r.json
    db.session.rollback()
    assert db.session.get(Application, app.id).status == "manual_review"
    assert db.session.scalar(select(func.count()).select_from(Binding).where(Binding.beneficiary_id == b.id)) == 1


def test_two_men_naming_the_same_woman_their_spouse_at_once_get_one_application(clean_app):
    """Both confirmed by the registry, at the same moment, from two threads: one goes on, one is refused."""
    from tests.test_concurrency import race
    factories.load_policies()
    for i in range(6):
        a, c = _people("44", (f"甲{i}", True), (f"丙{i}", True))
        b = factories.person(f"乙{i}", region_code="440106", male=False, insurance_type="resident",
                             balance_fen=None, birth=dt.date(1985, 1, 1) + dt.timedelta(days=i))
        factories.kinship(a, b, "spouse")
        factories.kinship(c, b, "spouse")
        db.session.commit()
        body = {"beneficiary_name": b.name, "beneficiary_id_number": b.id_number, "relation": "spouse"}
        results = race(clean_app, [(person_headers(a), body), (person_headers(c), body)])
        assert sorted(results, key=lambda r: r[0]) == [(202, None), (422, "SPOUSE_LIMIT")], results
        db.session.rollback()
        assert db.session.scalar(select(func.count()).select_from(Application)
                                 .where(Application.beneficiary_id == b.id)) == 1


def test_two_approvals_at_once_for_the_same_spouse_approve_one(clean_app):
    """Two applications naming B spouse in manual review (the one-sided count let both in before): two reviewers
    approve at the same moment; under the people's row locks exactly one binding results."""
    factories.load_policies()
    a, c = _people("44", ("甲男", True), ("丙男", True))
    b = factories.person("乙女", region_code="440106", male=False, insurance_type="resident", balance_fen=None)
    ids = []
    for authorizer in (a, c):  # written directly: the submit would refuse the second one now
        app = Application(authorizer_id=authorizer.id, beneficiary_id=b.id, relation="spouse", channel="wechat",
                          status="manual_review")
        db.session.add(app)
        db.session.flush()
        ids.append(app.id)
    staff_headers("r1"), staff_headers("r2")
    db.session.commit()
    from api.models import StaffUser
    reviewers = [db.session.scalar(select(StaffUser.id).where(StaffUser.username == u)) for u in ("r1", "r2")]
    barrier, results = threading.Barrier(2), {}

    def approve(n):
        with clean_app.app_context():
            barrier.wait()
            try:
                manual_reviews.decide_manually(db.session.get(StaffUser, reviewers[n]), ids[n], "approve", "")
                results[n] = "approved"
            except Exception as exc:  # noqa: BLE001 - the outcome is what the test looks at
                results[n] = getattr(exc, "code", repr(exc))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=approve, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results.values()) == ["SPOUSE_LIMIT", "approved"], results
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Binding).where(Binding.beneficiary_id == b.id)) == 1
