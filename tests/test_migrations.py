"""The migrations build exactly the schema the models describe (a model change without a migration fails here)."""
import datetime as dt
import tempfile
import uuid
from contextlib import contextmanager

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, make_url, select, text

from api.extensions import db
from api.models import UTCDateTime


def test_models_and_migrations_agree(clean_app):
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
    assert diff == []


@contextmanager
def scratch_database(configured_url):
    """A database of the configured kind that only this test uses: a temp SQLite file, or a throwaway database on
    the PostgreSQL server of DATABASE_URL (created and dropped here)."""
    url = make_url(configured_url)
    if url.get_backend_name() == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{tmp}/scratch.db"
        return
    name = f"gj_scratch_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_review_deadlines_are_backfilled_from_each_regions_policy(app):
    """Applications already in manual review when review_due_at arrives get the deadline their policy sets, from
    when they entered manual review; the others get none."""
    from flask_migrate import upgrade

    from api import create_app
    from api.models import Application
    entered = dt.datetime(2026, 11, 20, 2, 0, tzinfo=dt.timezone.utc)
    utc = UTCDateTime()
    with scratch_database(app.config["SQLALCHEMY_DATABASE_URI"]) as url:
        other = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url})
        with other.app_context():
            upgrade(revision="9b036efe1e65")
            with db.engine.begin() as conn:
                conn.execute(text("INSERT INTO region_policies (province_code, name, data, updated_at) VALUES "
                                  "('44', '广东', :a, :now), ('14', '山西', :b, :now)"),
                             {"a": '{"manual_review_days": 10}', "b": "{}", "now": utc.process_bind_param(entered, None)})
                for pid, region in ((1, "440106"), (2, "440106"), (3, "140105")):
                    conn.execute(text(
                        "INSERT INTO persons (id, id_number, name, insurance_type, status, region_code, card_number,"
                        " phone, settlement_suspended, created_at, updated_at) VALUES (:id, :num, '甲', 'employee',"
                        " 'normal', :region, :card, '13800000000', false, :now, :now)"),
                        {"id": pid, "num": f"{pid:018d}", "region": region, "card": f"C{pid}",
                         "now": utc.process_bind_param(entered, None)})
                for app_id, authorizer, status in (("waiting44", 1, "manual_review"), ("waiting14", 3, "manual_review"),
                                                   ("decided", 1, "approved")):
                    conn.execute(text(
                        "INSERT INTO applications (id, receipt_no, authorizer_id, beneficiary_id, relation, channel,"
                        " status, review_attempts, created_at, updated_at) VALUES (:id, :id, :a, 2, 'child',"
                        " 'wechat', :status, 1, :created, :updated)"),
                        {"id": app_id, "a": authorizer, "status": status,
                         "created": utc.process_bind_param(entered - dt.timedelta(hours=1), None),
                         "updated": utc.process_bind_param(entered + dt.timedelta(days=1), None)})
                conn.execute(text("INSERT INTO application_events (application_id, status, at, actor) VALUES "
                                  "('waiting44', 'manual_review', :at, 'system')"),
                             {"at": utc.process_bind_param(entered, None)})
            upgrade()
            due = dict(db.session.execute(select(Application.id, Application.review_due_at)).all())
            db.session.remove()
            db.engine.dispose()
    assert due == {"waiting44": entered + dt.timedelta(days=10),  # 44: 10 days from the event
                   # 14: no event and no figure in the policy: from updated_at, 5 days
                   "waiting14": entered + dt.timedelta(days=1) + dt.timedelta(days=5),
                   "decided": None}
