"""The OpenAPI document clients are generated from, driven whole by schemathesis against the app: every operation,
with a person's and a reviewer's token, data that fits the document and data that does not (fixed seed). No
answer may be a 5xx, and every answer must be what the document says (status, content type, headers, body)."""
import datetime as dt
import io
import json
import re
import time

import pytest
from hypothesis import HealthCheck, Phase, given, settings

import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (content_type_conformance, response_headers_conformance,
                                               response_schema_conformance, status_code_conformance)

from api.extensions import db
from api.models import Application, Material, Notification, ResidentContribution, utcnow
from tests import factories
from tests.conftest import _empty_everything
from tests.lifecycle_helpers import person_headers, run_worker, staff_headers

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance]
EXAMPLES = {GenerationMode.POSITIVE: 10, GenerationMode.NEGATIVE: 4}  # per operation; ~20 operations
KNOWN_IDS_EXAMPLES = 6
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x22" * 300


@pytest.fixture
def world(app):
    """A family with an approved binding, an application awaiting a reviewer with a proof attached, an inbox; the
    people's and a staff member's tokens (reviewer, clerk and admin); the ids a path may name."""
    _empty_everything(app)
    with app.app_context():
        factories.load_policies()
        husband = factories.person("王建国", region_code="440106", balance_fen=300000)
        wife = factories.person("李秀英", insurance_type="resident", balance_fen=None, region_code="440104",
                                male=False, birth=dt.date(1972, 3, 8))
        brother = factories.person("王建军", insurance_type="resident", balance_fen=None, region_code="440106")
        factories.kinship(husband, wife, "spouse")
        client = app.test_client()
        person = person_headers(husband)
        accepted = client.post("/api/v1/bindings/applications", headers=person, json={
            "beneficiary_name": wife.name, "beneficiary_id_number": wife.id_number, "relation": "spouse"})
        assert accepted.status_code == 202, accepted.json
        proof = client.post("/api/v1/materials", headers=person, content_type="multipart/form-data", data={
            "kind": "household_register", "file": (io.BytesIO(PNG), "hukou.png")})
        assert proof.status_code == 201, proof.json
        pending = client.post("/api/v1/bindings/applications", headers=person, json={
            "beneficiary_name": brother.name, "beneficiary_id_number": brother.id_number, "relation": "sibling",
            "material_ids": [proof.json["id"]]})
        assert pending.status_code == 202, pending.json
        login = client.post("/api/v1/auth/login", json={"channel": "wechat", "code": "wx-husband",
                                                        "name": husband.name, "id_number": husband.id_number})
        assert login.status_code == 200, login.json
        run_worker()
        daughter = factories.person("王小红", insurance_type="resident", balance_fen=None, region_code="440106",
                                    male=False, birth=dt.date(2000, 5, 1))
        son = factories.person("王小明", insurance_type="resident", balance_fen=None, region_code="440106",
                               birth=dt.date(2002, 7, 1))
        factories.kinship(husband, daughter, "child")
        factories.kinship(husband, son, "child")
        submitted = client.post("/api/v1/bindings/applications", headers=person, json={  # left for withdraw
            "beneficiary_name": daughter.name, "beneficiary_id_number": daughter.id_number, "relation": "child"})
        assert submitted.status_code == 202, submitted.json
        detail = client.get(f"/api/v1/bindings/applications/{accepted.json['id']}", headers=person).json
        factories.institution("H4401001", "广州市第一人民医院", "440104", api_key="key-contract")
        institution = {"X-Institution-Key": "key-contract"}
        bill = {"patient_id_number": wife.id_number, "credential": wife.card_number, "pooled_fen": 0,
                "items": [{"code": "D1", "name": "阿莫西林", "category": "drug", "amount_fen": 1200}]}
        settled = client.post("/api/v1/institution/settlements", json=bill,
                              headers={**institution, "Idempotency-Key": "contract-1"})
        assert settled.status_code == 201 and settled.json["family"], settled.json
        # R15: the wife owes her 居民医保 for three years; one is paid (a certificate exists), one is left to pay in
        # the app and one at the window
        for year in (2026, 2027, 2028):
            db.session.add(ResidentContribution(person_id=wife.id, year=year, amount_fen=38000, status="due"))
        db.session.commit()
        paid = client.post(f"/api/v1/bindings/{detail['binding_id']}/contributions", headers=person,
                           json={"year": 2026, "commitment": True})
        assert paid.status_code == 201, paid.json
        # R13: an application of a 甘肃 sibling waiting for the husband's own consent (made as submit would leave it)
        gansu = factories.person("王建民", region_code="620102", balance_fen=100000)
        waiting = Application(authorizer_id=gansu.id, beneficiary_id=husband.id, relation="sibling", channel="web",
                              status="awaiting_consent", consent_due_at=utcnow() + dt.timedelta(days=7))
        db.session.add(waiting)
        db.session.commit()
        ids = {"application_id": [accepted.json["id"], pending.json["id"], submitted.json["id"], waiting.id],
               "binding_id": [detail["binding_id"]],
               "notification_id": [n.id for n in db.session.query(Notification).filter_by(person_id=husband.id)],
               "material_id": [m.id for m in db.session.query(Material)],
               "settlement_id": [settled.json["id"]], "id_number": [wife.id_number],
               "contribution_id": [paid.json["id"]]}
        nephew = factories.person("王小虎", insurance_type="resident", balance_fen=None, region_code="440106",
                                  birth=dt.date(2003, 9, 1))
        reviewer = staff_headers(roles=("reviewer", "clerk", "admin"))  # reviewer1, password "x"
        bodies = {"POST /api/v1/auth/login": {"channel": "wechat", "code": "wx-husband"},
                  "POST /api/v1/staff/login": {"username": "reviewer1", "password": "x"},
                  "POST /api/v1/bindings/applications": {"beneficiary_name": son.name, "relation": "child",
                                                         "beneficiary_id_number": son.id_number},
                  "PATCH /api/v1/bindings/{binding_id}": {"monthly_limit_fen": 50000},
                  "POST /api/v1/institution/settlements": bill, "POST /api/v1/institution/settlements/quote": bill,
                  "POST /api/v1/staff/applications": {  # 《医保家庭共济申请表》 at the window
                      "authorizer_name": husband.name, "authorizer_id_number": husband.id_number,
                      "beneficiary_name": nephew.name, "beneficiary_id_number": nephew.id_number,
                      "relation": "sibling", "materials_seen": ["id_card", "insurance_card"]},
                  "POST /api/v1/terminal/usage-query": {"id_number": wife.id_number,
                                                        "card_number": wife.card_number},
                  "POST /api/v1/bindings/{binding_id}/contributions": {"year": 2027, "commitment": True},
                  "POST /api/v1/staff/contributions": {
                      "authorizer_name": husband.name, "authorizer_id_number": husband.id_number,
                      "binding_id": detail["binding_id"], "year": 2028, "commitment": True}}
        # a body that needs an id in its path gets a known one ({binding_id} above)
        db.session.remove()
    return {"person": person, "staff": reviewer, "institution": institution, "ids": ids, "bodies": bodies,
            "body_paths": {"POST /api/v1/bindings/{binding_id}/contributions": {"binding_id": detail["binding_id"]}}}


@pytest.fixture
def api_schema(app):
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


def _operations(schema):
    for result in schema.get_all_operations():
        yield result.ok()


def _exercise(operation, strategy, examples: int, headers: dict, failures: list, seen: dict) -> None:
    @settings(max_examples=examples, derandomize=True, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case):
        response = case.call(headers=headers)
        seen.setdefault(operation.label, set()).add(response.status_code)
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (FailureGroup, Failure) as exc:  # keep going: one report with every operation's findings
            failures.append(f"{operation.label} → {response.status_code} {response.text[:300]}\n"
                            f"  request: {case.path_parameters} {case.query} {json.dumps(case.body, default=str)[:300]}"
                            f"\n  {type(exc).__name__}: {str(exc)[:800]}")

    run()


def test_every_operation_answers_what_the_document_says(app, world, api_schema):
    started = time.monotonic()
    failures: list[str] = []
    seen: dict[str, set[int]] = {}
    # what ends an application or a binding comes last, so that the operations before it find them alive
    last = ("/decision", "/withdraw", "/revoke", "/refund", "/settlement-suspension")
    operations = sorted(_operations(api_schema),
                        key=lambda op: [op.path.endswith(tail) for tail in last].index(True) + 1
                        if op.path.endswith(last) else 0)
    assert len(operations) >= 20
    for operation in operations:
        headers = world["staff"] if operation.path.startswith("/api/v1/staff/") else \
            world["institution"] if operation.path.startswith("/api/v1/institution/") else \
            {} if operation.path.startswith("/api/v1/terminal/") else world["person"]
        for mode, examples in EXAMPLES.items():
            _exercise(operation, operation.as_strategy(generation_mode=mode), examples, headers, failures, seen)
        if operation.label in world["bodies"]:  # a login that exists, an application the rules admit
            strategy = operation.as_strategy(body=world["bodies"][operation.label],
                                             **({"path_parameters": world["body_paths"][operation.label]}
                                                if operation.label in world["body_paths"] else {}))
            _exercise(operation, strategy, 2, headers, failures, seen)
        names = [p.name for p in operation.path_parameters]
        for name in names:  # ids that exist: the success answers are checked too
            for known in world["ids"][name]:
                strategy = operation.as_strategy(path_parameters={name: known})
                _exercise(operation, strategy, KNOWN_IDS_EXAMPLES, headers, failures, seen)
                if operation.label in world["bodies"]:  # an id that exists and a body the rules admit
                    strategy = operation.as_strategy(path_parameters={name: known},
                                                     body=world["bodies"][operation.label])
                    _exercise(operation, strategy, 1, headers, failures, seen)
    assert not failures, f"{len(failures)} answers differ from the document:\n" + "\n".join(failures[:25])
    # the run reached the success answers, not only refusals
    succeeded = {label for label, statuses in seen.items() if any(200 <= s < 300 for s in statuses)}
    assert succeeded == set(seen) and len(seen) == len(operations), (sorted(set(seen) - succeeded), seen)
    assert time.monotonic() - started < 60


# --- the document itself ----------------------------------------------------------------------------------------

@pytest.fixture
def document(app):
    with app.app_context():  # the suite's client (conftest) commits around each request
        return app.test_client().get("/api/v1/openapi.json").json


def _resolve(document, node):
    while "$ref" in node:
        node = document["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _operations_of(document):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "patch", "put", "delete"):
                yield f"{method.upper()} {path}", operation


def test_every_success_answer_has_a_schema_and_every_refusal_its_codes(document):
    for label, operation in _operations_of(document):
        successes = {s: r for s, r in operation["responses"].items() if s.startswith("2")}
        assert len(successes) == 1, label
        (answer,) = successes.values()
        content = answer.get("content") or {}
        assert content, f"{label}: a success answer with no content"
        for media_type, body in content.items():
            assert "schema" in body or media_type == "application/octet-stream", (label, media_type)
        errors = {s: r for s, r in operation["responses"].items() if s[0] in "45"}
        assert errors, label
        for status, error in errors.items():
            assert error["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
            assert re.search(r"[A-Z][A-Z_]{3,}", error["description"]), (label, status, error["description"])
        if operation.get("security") == [{"institutionKey": []}]:  # one kind of key: no wrong kind of token
            assert "401" in errors, label
        elif operation.get("security"):
            assert {"401", "403"} <= set(errors), label
        if "requestBody" in operation and "application/json" in operation["requestBody"]["content"]:
            assert {"400", "415"} <= set(errors), label


def test_required_bodies_are_required(document):
    required = {label: op["requestBody"]["required"] for label, op in _operations_of(document) if "requestBody" in op}
    assert required["POST /api/v1/bindings/applications"] is True
    assert required["PATCH /api/v1/bindings/{binding_id}"] is True
    assert required["POST /api/v1/staff/reviews/{application_id}/decision"] is True
    assert required["POST /api/v1/auth/login"] is True
    assert required["POST /api/v1/bindings/{binding_id}/revoke"] is False  # a reason is optional


def test_closed_value_sets_are_enums_and_list_items_typed(document):
    from api import policy
    from api.services.applications import STATUS_LABELS
    schemas = document["components"]["schemas"]

    def enum(schema, field):
        return set(schemas[schema]["properties"][field]["enum"]) - {None}

    assert enum("ApplicationOut", "relation") == enum("BindingOut", "relation") == set(policy.RELATIONS)
    assert set(schemas["ApplicationIn"]["properties"]["relation"]["enum"]) == set(policy.RELATIONS)
    assert enum("ApplicationOut", "status") == enum("ReviewOut", "status") == set(STATUS_LABELS)
    assert {"KINSHIP_NOT_CONFIRMED", "REJECTED_BY_REVIEWER", "REVIEW_EXPIRED"} <= enum("ApplicationOut", "reason_code")
    assert schemas["ApplicationOut"]["properties"]["reason_code"]["nullable"] is True
    assert enum("BindingOut", "status") == {"active", "revoked", "ended"}
    assert set(policy.END_CODES) <= enum("ApplicationOut", "reason_code")
    assert {"binding_ended", "contribution_paid"} <= enum("NotificationOut", "kind")
    assert "binding_revoked" in enum("NotificationOut", "kind")
    assert enum("MaterialOut", "kind") == enum("MaterialRef", "kind") == set(policy.MATERIAL_KINDS)
    assert set(schemas["MaterialUpload"]["properties"]["kind"]["enum"]) == set(policy.MATERIAL_KINDS)
    assert "unread_count" in schemas["InboxAnswer"]["required"]
    text = json.dumps(document)
    assert '"additionalProperties": {}' not in text
    for name, schema in schemas.items():
        for field, prop in schema.get("properties", {}).items():
            if prop.get("type") == "array":
                assert prop["items"], (name, field)
                assert _resolve(document, prop["items"]).get("type") != "object" or \
                    _resolve(document, prop["items"]).get("properties"), (name, field)
    assert "PaginationMetadata" not in schemas and "PAGINATION" not in document["components"].get("headers", {})


def test_a_replay_header_is_documented(document):
    answer = document["paths"]["/api/v1/bindings/applications"]["post"]["responses"]["202"]
    assert "Idempotency-Replayed" in answer["headers"]
