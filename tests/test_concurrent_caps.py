"""The caps of R3/R5 under concurrency: two requests racing for the same beneficiary cannot both pass a cap.

On SQLite writers take turns anyway; on PostgreSQL two transactions would each read "no authorizer yet" and both
insert (the unique index covers a pair, not a beneficiary) were the people's rows not locked before the rules read
them (`api.services.applications.lock_people`). Real HTTP requests, one thread each, released together.
"""
import datetime as dt
import threading

from flask.testing import FlaskClient
from sqlalchemy import func, select

from api.extensions import db
from api.models import Application
from tests import factories
from tests.lifecycle_helpers import person_headers

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


def race(app, requests: list[tuple[dict, dict]]) -> list:
    """Sends the requests at the same moment from threads of their own; returns (status, code) of each."""
    barrier = threading.Barrier(len(requests))
    results = [None] * len(requests)

    def send(n, headers, body):
        client = FlaskClient(app, app.response_class)  # the plain client: each request has its own app context,
        # session and connection (the `client` fixture's commits the test's session around each request)
        barrier.wait()
        r = client.post(URL, json=body, headers=headers)
        results[n] = (r.status_code, (r.json.get("error") or {}).get("code"))

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
