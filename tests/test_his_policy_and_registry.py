"""The outpatient pooling rule (a table of cases), its policy-file form, and the HIS gateway's registry files:
catalogue.csv and the institutions' signing keys, through the real `flask registry import`."""
import csv
import json

import pytest
from sqlalchemy import select

from api import policy
from api.extensions import db
from api.his.signing import decrypt
from api.models import CatalogueItem, Institution, InstitutionSigningKey
from tests.his_helpers import His
from tests.test_registry import DEMO, demo_copy, run_import, write_csv

RULE = policy.OutpatientPooling(deductible_fen=20000, ratio_percent=60, annual_cap_fen=300000)


@pytest.mark.parametrize("rule, eligible, deducted, pooled, expected", [
    (policy.OutpatientPooling(), 50000, 0, 0, (0, 0)),                 # no rule: the fund pays nothing
    (RULE, 0, 0, 0, (0, 0)),
    (RULE, 15000, 0, 0, (15000, 0)),                                   # all below the 起付线
    (RULE, 25000, 0, 0, (20000, 3000)),                                # 200 起付线, 60 % of 50
    (RULE, 25000, 5000, 0, (15000, 6000)),                             # 50 of the 起付线 paid earlier this year
    (RULE, 25000, 20000, 0, (0, 15000)),                               # 起付线 met: 60 % of all
    (RULE, 25000, 20000, 295000, (0, 5000)),                           # the year's cap leaves 50
    (RULE, 25000, 20000, 300000, (0, 0)),                              # cap reached
    (RULE, 20001, 0, 0, (20000, 1)),                                   # 0.6 分 rounds half up to 1
    (policy.OutpatientPooling(0, 55, 10 ** 9), 101, 0, 0, (0, 56)),     # 55.55 → 56
    (policy.OutpatientPooling(0, 100, 10 ** 9), 12345, 0, 0, (0, 12345)),
])
def test_outpatient_pooled(rule, eligible, deducted, pooled, expected):
    part = policy.outpatient_pooled(rule, eligible, deducted, pooled)
    assert (part.deductible_fen, part.pooled_fen) == expected
    assert part.deductible_fen + part.pooled_fen <= eligible


@pytest.mark.parametrize("table, problem", [
    ({"deductible_fen": 200.0, "ratio_percent": 60, "annual_cap_fen": 1}, "deductible_fen"),
    ({"deductible_fen": 0, "ratio_percent": 101, "annual_cap_fen": 1}, "at most 100"),
    ({"deductible_fen": 0, "ratio_percent": -1, "annual_cap_fen": 1}, "ratio_percent"),
    ({"ratio": 60}, "must be a table of"),
    ("60%", "must be a table of"),
])
def test_a_bad_pooling_rule_is_a_policy_error(table, problem):
    data = {"province_code": "44", "name": "广东省", "relations": ["spouse"], "outpatient_pooling": table}
    with pytest.raises(policy.PolicyError, match=problem):
        policy.Policy.from_dict(data)


def test_the_demo_policies_set_the_rule_where_the_comments_say():
    rules = {p.stem: policy.load_policy_file(p).outpatient_pooling for p in (DEMO / "policies").glob("*.toml")}
    assert rules["44"] == RULE
    assert rules["14"] == policy.OutpatientPooling(10000, 50, 150000)
    assert rules["31"] == policy.OutpatientPooling()


def test_the_demo_registry_loads_the_catalogue_and_the_signing_keys(runner, client):
    result = run_import(runner, DEMO)
    assert result.exit_code == 0, result.output
    assert "catalogue.csv: 新增 13" in result.output
    assert "institutions.csv（接口签名密钥）: 新增 9" in result.output
    assert db.session.get(CatalogueItem, "250101015").category == "treatment"
    hospital = db.session.scalar(select(Institution).where(Institution.code == "H44010601"))
    stored = db.session.get(InstitutionSigningKey, hospital.id)
    assert stored.ciphertext != "demo-key-h44010601" and decrypt(stored.ciphertext) == "demo-key-h44010601"
    again = run_import(runner, DEMO)
    assert "catalogue.csv: 新增 0，更新 0，未变 13" in again.output
    assert "institutions.csv（接口签名密钥）: 新增 0，更新 0，未变 9" in again.output
    # the demo hospital signs with its demo key
    answer = json.loads(His(client, "H44010601", "demo-key-h44010601").post("9001", {"signIn": {}}).data)
    assert answer["infcode"] == 0


def test_a_rotated_key_signs_and_the_old_one_no_longer_does(runner, client, tmp_path):
    registry = demo_copy(tmp_path)
    assert run_import(runner, registry).exit_code == 0
    rows = list(csv.reader(open(registry / "institutions.csv", encoding="utf-8")))
    rows[1][4] = "rotated-key-h44010601"
    write_csv(registry / "institutions.csv", rows[0], rows[1:])
    result = run_import(runner, registry)
    assert "institutions.csv（接口签名密钥）: 新增 0，更新 1，未变 8" in result.output
    old = json.loads(His(client, "H44010601", "demo-key-h44010601").post("9001", {"signIn": {}}).data)
    new = json.loads(His(client, "H44010601", "rotated-key-h44010601").post("9001", {"signIn": {}}).data)
    assert (old["infcode"], new["infcode"]) == (-1, 0)


def test_a_bad_catalogue_row_is_reported_and_nothing_of_the_file_is_written(runner, tmp_path):
    registry = demo_copy(tmp_path)
    write_csv(registry / "catalogue.csv", ["code", "name", "category"],
              [["XJ01CAA040E001010100391", "阿莫西林胶囊", "drug"], ["250101015", "血常规", "food"]])
    result = run_import(runner, registry)
    assert result.exit_code != 0 and "catalogue.csv:3: category 须为" in result.output
    assert db.session.scalar(select(CatalogueItem)) is None
