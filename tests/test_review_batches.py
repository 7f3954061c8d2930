"""Review batches: a review job takes the applications waiting behind its own, decides each once, and one
application's fault does not stop the others. Real Redis queue, real database, the job function as RQ runs it."""
from flask import current_app
from sqlalchemy import select, update

from api.models import Application, Notification, utcnow
from api.services import applications, reviews
from tests.fault_helpers import apply, assert_exactly_once, couples, fresh
from workers import jobs
from workers.queues import REVIEWS, queue


def submit(client, n: int) -> list[str]:
    ids = []
    for husband, wife in couples(n):
        r = apply(client, husband, wife)
        assert r.status_code == 202, r.json
        ids.append(r.json["id"])
    return ids


def run_job(application_id: str):
    """One review job, in an app context (and session) of its own, as a worker runs it."""
    fresh().commit()
    with current_app.app_context():
        return jobs.review_application(application_id)


def test_one_job_reviews_the_waiting_applications_and_drops_their_jobs(client):
    ids = submit(client, 3)
    assert sorted(queue(REVIEWS).job_ids) == sorted(f"review-{i}" for i in ids)

    assert run_job(ids[0]) == "approved"

    assert_exactly_once(ids)  # all three decided, each with its own events, binding and four notices sent once
    # the other two jobs had nothing left to do: dropped from the queue (the first is still there only because this
    # test ran its function by hand instead of a worker taking it from the queue)
    assert queue(REVIEWS).job_ids == [f"review-{ids[0]}"]
    # a job that ran anyway (taken by a worker before the drop) finds nothing to do and changes nothing
    assert run_job(ids[1]) is None and run_job(ids[2]) is None
    assert_exactly_once(ids)
    assert [fresh().get(Application, i).review_attempts for i in ids] == [1, 1, 1]


def test_a_fault_in_one_application_releases_it_and_spares_the_others(client, monkeypatch):
    ids = submit(client, 3)
    broken = ids[1]
    real = reviews._outcome

    def outcome(app, context, kinship):
        if app.id == broken:
            raise RuntimeError("unreadable registry record")
        return real(app, context, kinship)

    monkeypatch.setattr(reviews, "_outcome", outcome)
    assert run_job(ids[0]) == "approved"

    s = fresh()
    assert [s.get(Application, i).status for i in ids] == ["approved", "reviewing", "approved"]
    assert s.get(Application, broken).lease_until <= utcnow()  # released: claimable at once, by a retry or the sweeper
    # its 受理 notices went out with the batch; nothing about a decision was written for it
    assert {n.kind for n in s.scalars(select(Notification).where(Notification.application_id == broken))} \
        == {"application_submitted"}

    monkeypatch.setattr(reviews, "_outcome", real)
    assert run_job(broken) == "approved"  # the sweeper's (or RQ's) next run
    assert_exactly_once(ids)


def test_a_fault_that_aborts_the_batch_transaction_is_retried_one_by_one(client, monkeypatch):
    ids = submit(client, 3)
    broken = ids[1]
    real = applications.announce

    def announce(app, status, *args, **kwargs):
        if app.id == broken:
            raise RuntimeError("template service down")  # after the decision's update: the transaction is lost
        return real(app, status, *args, **kwargs)

    monkeypatch.setattr(applications, "announce", announce)
    assert run_job(ids[0]) == "approved"

    s = fresh()
    assert [s.get(Application, i).status for i in ids] == ["approved", "reviewing", "approved"]
    assert s.get(Application, broken).lease_until <= utcnow() and s.get(Application, broken).binding_id is None
    monkeypatch.setattr(applications, "announce", real)
    assert run_job(broken) == "approved"
    assert_exactly_once(ids)


def test_the_job_of_a_faulty_application_fails_so_that_rq_retries_it(client, monkeypatch):
    ids = submit(client, 2)
    real = reviews._outcome

    def outcome(app, context, kinship):
        if app.id == ids[0]:
            raise RuntimeError("unreadable registry record")
        return real(app, context, kinship)

    monkeypatch.setattr(reviews, "_outcome", outcome)
    try:
        run_job(ids[0])
    except RuntimeError as exc:
        assert "unreadable" in str(exc)
    else:
        raise AssertionError("the job of the faulty application must fail, for RQ to retry it")
    assert [fresh().get(Application, i).status for i in ids] == ["reviewing", "approved"]


def test_an_application_whose_region_left_the_scheme_is_rejected_not_retried_forever(client):
    from api.extensions import db
    from api.models import RegionPolicy
    ids = submit(client, 1)
    db.session.execute(RegionPolicy.__table__.delete().where(RegionPolicy.province_code == "44"))
    db.session.commit()

    assert run_job(ids[0]) == "rejected"
    app = fresh().get(Application, ids[0])
    assert app.reason_code == "REGION_NOT_COVERED" and app.binding_id is None


def test_an_application_whose_review_keeps_failing_goes_to_a_reviewer(client, monkeypatch):
    (app_id,) = submit(client, 1)

    def outcome(app, context, kinship):
        raise RuntimeError("unreadable registry record")

    monkeypatch.setattr(reviews, "_outcome", outcome)
    failures = 0
    for _ in range(reviews.MAX_REVIEW_ATTEMPTS + 3):  # RQ's retries and the sweeper's re-enqueues
        try:
            run_job(app_id)
        except RuntimeError:
            failures += 1
        if fresh().get(Application, app_id).status != "reviewing":
            break
    app = fresh().get(Application, app_id)
    assert failures == reviews.MAX_REVIEW_ATTEMPTS
    assert (app.status, app.reason_code, app.review_attempts) == ("manual_review", "AUTO_REVIEW_FAILED", 5)
    assert app.review_due_at is not None
    assert run_job(app_id) is None  # nothing left for a job: the reviewer decides
    kinds = fresh().scalars(select(Notification.kind).where(Notification.application_id == app_id)).all()
    assert sorted(kinds).count("application_manual_review") == 2


def test_what_rq_keeps_of_a_failed_review_is_masked(client, monkeypatch):
    from rq.job import Job
    from rq.serializers import JSONSerializer

    from api.extensions import redis_client
    from api.masking import mask_id
    from tests.fault_helpers import release_scheduled_retries
    from tests.lifecycle_helpers import run_worker
    (app_id,) = submit(client, 1)
    number = fresh().get(Application, app_id).beneficiary.id_number

    def outcome(app, context, kinship):  # as a database error quotes its parameters
        raise RuntimeError(f"no kinship row for ({number!r},)")

    monkeypatch.setattr(reviews, "_outcome", outcome)
    run_worker()  # the real RQ worker: the job fails; RQ's retries fail too, then it keeps what the job failed with
    while release_scheduled_retries():
        run_worker()
    job = Job.fetch(f"review-{app_id}", connection=redis_client(), serializer=JSONSerializer)
    assert job.get_status() == "failed" and job.id in queue(REVIEWS).failed_job_registry.get_job_ids()
    kept = job.latest_result()
    assert "JobFailed: RuntimeError: no kinship row" in kept.exc_string
    assert number not in kept.exc_string and mask_id(number) in kept.exc_string


def test_a_failing_application_whose_region_left_the_scheme_is_rejected_not_handed_over(client, monkeypatch):
    from api.extensions import db
    from api.models import RegionPolicy
    (app_id,) = submit(client, 1)
    db.session.execute(update(Application).where(Application.id == app_id)
                       .values(review_attempts=reviews.MAX_REVIEW_ATTEMPTS))
    db.session.execute(RegionPolicy.__table__.delete().where(RegionPolicy.province_code == "44"))
    db.session.commit()
    assert run_job(app_id) is None
    app = fresh().get(Application, app_id)
    assert (app.status, app.reason_code) == ("rejected", "REGION_NOT_COVERED")
