"""Production safety of uploads: a per-person daily quota (count and bytes), orphans swept after a day, and every
served material a download that the browser may not re-sniff."""
import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select, update

from api.extensions import db
from api.models import Material
from api.services import materials
from api.timefmt import SHANGHAI
from tests import factories
from tests.lifecycle_helpers import person_headers, run_worker, staff_headers
from tests.test_materials import JPEG, PDF, PNG, assert_error, stored_files, upload


@pytest.fixture
def owner(clean_app):
    factories.load_policies()
    return factories.person("王建国")


@pytest.fixture
def quota(clean_app, monkeypatch):
    def set_quota(count=30, size=50 * 1024 * 1024):
        monkeypatch.setitem(clean_app.config, "UPLOAD_DAILY_COUNT", count)
        monkeypatch.setitem(clean_app.config, "UPLOAD_DAILY_BYTES", size)
    return set_quota


def _age(material_ids, created_at: dt.datetime) -> None:
    db.session.execute(update(Material).where(Material.id.in_(material_ids)).values(created_at=created_at))
    db.session.commit()


def _shanghai_midnight_utc() -> dt.datetime:
    local = dt.datetime.now(SHANGHAI).replace(hour=0, minute=0, second=0, microsecond=0)
    return local.astimezone(dt.timezone.utc)


def test_the_defaults_are_thirty_files_and_fifty_megabytes_a_day(clean_app):
    assert materials.daily_quota() == (30, 50 * 1024 * 1024)


def test_a_persons_daily_upload_count_is_limited_with_429_and_the_file_is_not_kept(client, owner, quota):
    quota(count=3)
    for content in (JPEG, PNG, PDF):
        assert upload(client, owner, content).status_code == 201
    before = stored_files(client.application)
    r = upload(client, owner, JPEG)
    assert_error(r, 429, "UPLOAD_QUOTA_EXCEEDED")
    assert "今日" in r.json["error"]["message"]
    assert 0 < int(r.headers["Retry-After"]) <= 86400
    assert stored_files(client.application) == before  # neither the file nor a partial is left
    assert db.session.scalar(select(db.func.count()).select_from(Material)) == 3
    # the quota is the person's own: somebody else still uploads
    assert upload(client, factories.person("赵小明"), JPEG).status_code == 201


def test_a_persons_daily_upload_bytes_are_limited(client, owner, quota):
    quota(size=len(JPEG) + len(PNG) + 10)
    assert upload(client, owner, JPEG).status_code == 201
    assert upload(client, owner, PNG).status_code == 201
    before = stored_files(client.application)
    assert_error(upload(client, owner, PDF + b"x" * 20), 429, "UPLOAD_QUOTA_EXCEEDED")  # 10 bytes left
    assert stored_files(client.application) == before
    assert upload(client, owner, b"%PDF-" + b"1" * 5).status_code == 201  # what fits still passes


def test_the_quota_is_per_shanghai_day(client, owner, quota):
    quota(count=2)
    ids = [upload(client, owner, c).json["id"] for c in (JPEG, PNG)]
    assert_error(upload(client, owner, PDF), 429, "UPLOAD_QUOTA_EXCEEDED")
    # one second before Shanghai's midnight was yesterday (even though it is "today" in UTC for most hours)
    _age(ids, _shanghai_midnight_utc() - dt.timedelta(seconds=1))
    assert upload(client, owner, PDF).status_code == 201
    _age(ids, _shanghai_midnight_utc())  # midnight itself is today again
    assert_error(upload(client, owner, JPEG), 429, "UPLOAD_QUOTA_EXCEEDED")


def test_sweep_deletes_day_old_materials_no_application_took_row_and_file(client, owner):
    from workers import jobs
    child = factories.person("王小军", insurance_type="resident", balance_fen=None, region_code=owner.region_code)
    attached, orphan, fresh = (upload(client, owner, c).json["id"] for c in (PNG, JPEG, PDF))
    r = client.post("/api/v1/bindings/applications", headers=person_headers(owner), json={
        "beneficiary_name": child.name, "beneficiary_id_number": child.id_number, "relation": "child",
        "material_ids": [attached]})
    assert r.status_code == 202, r.json
    run_worker()
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1, minutes=1)
    _age([attached, orphan], old)
    _age([fresh], dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=23))
    paths = {m.id: materials.path_of(m) for m in db.session.scalars(select(Material))}
    assert all(p.is_file() for p in paths.values())

    headers = person_headers(owner)
    result = jobs.sweep()  # the job ends its session: `owner` is detached after it
    assert result["orphan_materials_deleted"] == 1
    assert db.session.get(Material, orphan) is None and not paths[orphan].exists()
    assert db.session.get(Material, attached) is not None and paths[attached].is_file()
    assert db.session.get(Material, fresh) is not None and paths[fresh].is_file()
    assert jobs.sweep()["orphan_materials_deleted"] == 0  # nothing twice
    # the application's proof still reads
    assert client.get(f"/api/v1/materials/{attached}", headers=headers).data == PNG


def test_materials_are_served_as_attachments_that_are_not_sniffed(client, owner):
    child = factories.person("王小军", insurance_type="resident", balance_fen=None, region_code=owner.region_code)
    material_id = upload(client, owner, PDF).json["id"]
    r = client.post("/api/v1/bindings/applications", headers=person_headers(owner), json={
        "beneficiary_name": child.name, "beneficiary_id_number": child.id_number, "relation": "child",
        "material_ids": [material_id]})
    assert r.status_code == 202, r.json
    run_worker()  # to a reviewer, who may then read the proof
    for url, headers in ((f"/api/v1/materials/{material_id}", person_headers(owner)),
                         (f"/api/v1/staff/materials/{material_id}", staff_headers())):
        got = client.get(url, headers=headers)
        assert got.status_code == 200 and got.data == PDF, url
        assert got.headers["Content-Disposition"].startswith("attachment;"), url
        assert f"{material_id}.pdf" in got.headers["Content-Disposition"]
        assert got.headers["X-Content-Type-Options"] == "nosniff"
        assert got.mimetype == "application/pdf"
