"""Registry import (F1) through the real `flask registry import` command and the database."""
import csv
import datetime as dt
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select
from stdnum import exceptions as stdnum_exceptions
from stdnum.cn import ric

from api import ledger
from api.auth import hash_key
from api.extensions import db
from api.models import (Institution, Kinship, LedgerAccount, LedgerTransaction, Person, Posting, RegionPolicy)
from api.timefmt import local_today
from tests import factories

DEMO = Path(__file__).resolve().parent.parent / "fixtures" / "demo"
PERSON_HEADER = ["id_number", "name", "insurance_type", "status", "region_code", "card_number", "phone",
                 "account_balance_fen", "account_prior_year_fen"]


def run_import(runner, directory):
    result = runner.invoke(args=["registry", "import", str(directory)])
    db.session.rollback()  # see what the command committed
    db.session.expire_all()
    return result


def demo_copy(tmp_path) -> Path:
    target = tmp_path / "registry"
    shutil.copytree(DEMO, target)
    return target


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(header)
        out.writerows(rows)


def registry_with_policies(tmp_path) -> Path:
    target = tmp_path / "registry"
    shutil.copytree(DEMO / "policies", target / "policies")
    return target


def person_row(number=None, name="测试员", kind="employee", status="normal", region="440106", card=None,
               phone="13900000001", balance="100000", prior=""):
    number = number or factories.id_number(region)
    return [number, name, kind, status, region, card or "T" + number[-10:], phone, balance, prior]


def person(id_number: str) -> Person:
    return db.session.scalar(select(Person).where(Person.id_number == id_number))


def demo_number(name: str) -> str:
    with open(DEMO / "persons.csv", encoding="utf-8") as fh:
        return next(row["id_number"] for row in csv.DictReader(fh) if row["name"] == name)


def snapshot() -> dict:
    return {
        "transactions": db.session.scalar(select(func.count()).select_from(LedgerTransaction)),
        "postings": db.session.scalar(select(func.count()).select_from(Posting)),
        "accounts": dict(db.session.execute(select(LedgerAccount.code, LedgerAccount.balance_fen)).all()),
        "persons": dict(db.session.execute(select(Person.id_number, Person.updated_at)).all()),
        "kinship": db.session.execute(select(Kinship.id_number_a, Kinship.id_number_b, Kinship.relation)
                                      .order_by(Kinship.id)).all(),
        "institutions": db.session.execute(select(Institution.code, Institution.name, Institution.api_key_hash)
                                           .order_by(Institution.id)).all(),
        "policies": dict(db.session.execute(select(RegionPolicy.province_code, RegionPolicy.updated_at)).all()),
    }


# --- the demo registry ----------------------------------------------------------------------------------------

def test_demo_registry_imports(runner):
    result = run_import(runner, DEMO)
    assert result.exit_code == 0, result.output
    assert db.session.scalar(select(func.count()).select_from(Person)) == 34
    assert db.session.scalar(select(func.count()).select_from(Institution)) == 9
    assert db.session.scalar(select(func.count()).select_from(Kinship)) == 25
    assert len({p.province_code for p in db.session.scalars(select(RegionPolicy))}) == 32  # 31 provinces, 兵团
    assert ledger.check() == []

    assert ledger.balance_of(person(demo_number("李建国"))) == (680000, 680000)   # no prior column: all of it
    assert ledger.balance_of(person(demo_number("张伟"))) == (900000, 300000)     # 31: 历年 part given
    zero = person(demo_number("黄美玲"))
    assert ledger.has_account(zero) and ledger.balance_of(zero) == (0, 0)        # an account of 0 is an account
    assert not ledger.has_account(person(demo_number("王秀英")))                  # residents have none
    kinds = [t.kind for t in db.session.scalars(select(LedgerTransaction))]
    assert kinds.count("registry_load") == 16                                    # 17 employees, one at 0
    assert kinds.count("account_credit") == 5 and len(kinds) == 21               # account_credits.csv
    # 2025-12 is 历年; 2026-01/02 are 当年 in 2026 and 历年 from 2027 on
    prior_credits = 18000 + (38000 if local_today().year > 2026 else 0)
    assert ledger.balance_of(person(demo_number("孙强"))) == (420000 + 56000, 420000 + prior_credits)
    assert "account_credits.csv: 新增 5" in result.output
    assert ledger.balance(db.session.scalar(select(LedgerAccount.id)
                                            .where(LedgerAccount.code == ledger.REGISTRY_ACCOUNT))) == \
        -sum(ledger.balance_of(p)[0] for p in db.session.scalars(select(Person)))
    assert "persons.csv: 新增 34" in result.output
    assert "persons.csv: 校验 34/34" in result.stderr  # the progress line


def test_second_import_changes_nothing(runner):
    assert run_import(runner, DEMO).exit_code == 0
    before = snapshot()
    result = run_import(runner, DEMO)
    assert result.exit_code == 0, result.output
    assert snapshot() == before
    assert "persons.csv: 新增 0，更新 0，未变 34" in result.output
    assert "kinship.csv: 新增 0，更新 0，未变 25" in result.output
    assert "account_credits.csv: 新增 0，更新 0，未变 5" in result.output
    # persons.csv holds the balances before the credits: the three credited people are reconciliation lines
    assert "对账：persons.csv 中 3 人的登记余额与账本不符，未调整" in result.output


def test_changed_rows_update_but_a_changed_balance_is_only_reported(runner, tmp_path):
    """After the first load the balance is the ledger's: a changed balance in the export is a reconciliation line,
    and the rest of the row (name, status) is applied."""
    registry = demo_copy(tmp_path)
    assert run_import(runner, registry).exit_code == 0
    number = demo_number("李建国")
    old = person(number)
    created, updated_at = old.created_at, old.updated_at
    before = snapshot()

    rows = list(csv.reader(open(registry / "persons.csv", encoding="utf-8")))
    for row in rows:
        if row[0] == number:
            row[1], row[3], row[7], row[8] = "李建国新", "suspended", "700000", "600000"
    write_csv(registry / "persons.csv", rows[0], rows[1:])
    result = run_import(runner, registry)
    assert result.exit_code == 0, result.output
    assert "persons.csv: 新增 0，更新 1，未变 33" in result.output
    assert ("persons.csv:2: 对账 440106********0035 余额 登记 700000 分 / 账本 680000 分 / 差额 +20000 分；"
            "其中历年 登记 600000 分 / 账本 680000 分 / 差额 -80000 分") in result.output
    assert number not in result.output

    changed = person(number)
    assert (changed.name, changed.status, changed.created_at) == ("李建国新", "suspended", created)
    assert changed.updated_at > updated_at
    assert ledger.balance_of(changed) == (680000, 680000)            # not applied
    after = snapshot()
    assert (after["transactions"], after["postings"], after["accounts"]) == \
        (before["transactions"], before["postings"], before["accounts"])
    assert ledger.check() == []


def test_reimport_after_spending_keeps_the_spending(runner):
    """The registry's word is what it loaded, not today's balance: an old export does not refund settlements."""
    assert run_import(runner, DEMO).exit_code == 0
    authorizer = person(demo_number("李建国"))
    current, prior = ledger.personal_accounts(authorizer)
    shop = ledger.system_account("test:institution", kind="institution")
    ledger.post("settlement", [ledger.Entry(prior.id, -30000), ledger.Entry(shop.id, 30000)])
    db.session.commit()
    before = snapshot()
    result = run_import(runner, DEMO)
    assert result.exit_code == 0, result.output
    assert snapshot() == before
    assert ledger.balance_of(person(authorizer.id_number)) == (650000, 650000)
    assert "对账 440106********0035 余额 登记 680000 分 / 账本 650000 分 / 差额 +30000 分" in result.output


def test_a_reduction_below_what_was_spent_is_reported_not_refused(runner, tmp_path):
    """Before issue 8 such a file was refused; now no registry balance is applied after the first load, so the
    file loads (its other changes apply) and the person is a reconciliation line."""
    registry = registry_with_policies(tmp_path)
    row = person_row(balance="10000")
    write_csv(registry / "persons.csv", PERSON_HEADER, [row])
    assert run_import(runner, registry).exit_code == 0
    p = person(row[0])
    current, prior = ledger.personal_accounts(p)
    shop = ledger.system_account("test:institution", kind="institution")
    ledger.post("settlement", [ledger.Entry(prior.id, -8000), ledger.Entry(shop.id, 8000)])
    db.session.commit()
    row[7], row[6] = "1000", "13900000002"  # the registry now says 10 元, but 80 元 are already spent of 100 元
    write_csv(registry / "persons.csv", PERSON_HEADER, [row])
    result = run_import(runner, registry)
    assert result.exit_code == 0, result.output
    assert "persons.csv:2: 对账" in result.output and "差额 -1000 分" in result.output
    assert ledger.balance_of(person(row[0])) == (2000, 2000)
    assert person(row[0]).phone == "13900000002"
    assert ledger.check() == []


# --- bad rows -----------------------------------------------------------------------------------------------

def test_bad_checksum_refuses_the_whole_file_and_names_the_line(runner, tmp_path):
    registry = registry_with_policies(tmp_path)
    good = person_row()
    bad = person_row(card="BAD0000001")
    bad[0] = bad[0][:17] + ("0" if bad[0][17] != "0" else "1")
    write_csv(registry / "persons.csv", PERSON_HEADER, [good, bad, person_row()])
    write_csv(registry / "institutions.csv", ["code", "name", "region_code", "designated", "api_key"],
              [["H1", "测试医院", "440106", "true", "secret-key-1"]])
    result = run_import(runner, registry)
    assert result.exit_code != 0
    assert "persons.csv:3:" in result.output and "校验位" in result.output
    assert bad[0] not in result.output  # the number is not echoed in full
    assert db.session.scalar(select(func.count()).select_from(Person)) == 0
    assert db.session.scalar(select(func.count()).select_from(LedgerTransaction)) == 0
    # the other files still load, and the summary says which
    assert db.session.scalar(select(func.count()).select_from(Institution)) == 1
    assert "institutions.csv: 新增 1" in result.output
    assert "未导入：persons.csv" in result.output


@pytest.mark.parametrize("change, reason", [
    ({7: "12.5"}, "非负整数"),
    ({7: "1e5"}, "非负整数"),
    ({7: "-100"}, "非负整数"),
    ({7: ""}, "account_balance_fen"),
    ({7: "1000", 8: "2000"}, "历年"),
    ({7: "1000", 8: "0.5"}, "非负整数"),
    ({2: "resident", 7: "100000"}, "居民"),
    ({2: "resident", 7: "", 8: "100"}, "居民"),
    ({2: "retired"}, "insurance_type"),
    ({3: "active"}, "status"),
    ({1: ""}, "姓名"),
    ({6: "1380013800"}, "phone"),
    ({6: "138-0013-800"}, "phone"),
    ({4: "4401"}, "region_code"),
    ({4: "430102"}, "43"),      # the test copies policies without 43.toml
    ({5: ""}, "card_number"),
])
def test_bad_person_rows_are_refused(runner, tmp_path, change, reason):
    registry = registry_with_policies(tmp_path)
    (registry / "policies" / "43.toml").unlink()
    bad = person_row()
    for column, value in change.items():
        bad[column] = value
    write_csv(registry / "persons.csv", PERSON_HEADER, [person_row(), bad])
    result = run_import(runner, registry)
    assert result.exit_code != 0
    line = next(line for line in result.output.splitlines() if line.startswith("persons.csv:3:"))
    assert reason in line
    assert db.session.scalar(select(func.count()).select_from(Person)) == 0


def test_duplicate_numbers_and_cards_are_refused(runner, tmp_path):
    registry = registry_with_policies(tmp_path)
    a = person_row()
    b = person_row(card=a[5])
    write_csv(registry / "persons.csv", PERSON_HEADER, [a, b, a])
    result = run_import(runner, registry)
    assert result.exit_code != 0
    assert "persons.csv:3: card_number" in result.output
    assert "persons.csv:4: 身份证号码与第 2 行重复" in result.output


def test_bad_header_is_refused(runner, tmp_path):
    registry = registry_with_policies(tmp_path)
    write_csv(registry / "persons.csv", PERSON_HEADER[:-2] + ["balance"], [person_row()[:-1]])
    result = run_import(runner, registry)
    assert result.exit_code != 0
    assert "persons.csv:1:" in result.output and "account_balance_fen" in result.output


def test_old_guangzhou_number_is_genuine(runner, tmp_path):
    """A 1945-born person registered in 越秀区 (440104): the county code postdates her birth, the number is real."""
    number = factories.id_number("440104", dt.date(1945, 3, 12), male=False)
    with pytest.raises(stdnum_exceptions.ValidationError):
        ric.validate(number)  # the county-history check we deliberately do not apply
    registry = registry_with_policies(tmp_path)
    write_csv(registry / "persons.csv", PERSON_HEADER, [person_row(number, name="陈桂兰", kind="resident",
                                                                   region="440104", balance="")])
    result = run_import(runner, registry)
    assert result.exit_code == 0, result.output
    assert person(number).name == "陈桂兰"


def test_lowercase_check_letter_is_stored_canonical(runner, tmp_path):
    number = next(n for n in (factories.id_number(seq=s) for s in range(200)) if n.endswith("X"))
    registry = registry_with_policies(tmp_path)
    write_csv(registry / "persons.csv", PERSON_HEADER, [person_row(number[:17] + "x")])
    assert run_import(runner, registry).exit_code == 0
    assert person(number) is not None


# --- kinship ------------------------------------------------------------------------------------------------

def test_bad_relation_is_refused(runner, tmp_path):
    registry = demo_copy(tmp_path)
    a, b = demo_number("李建国"), demo_number("王秀英")
    c = demo_number("李晓明")
    write_csv(registry / "kinship.csv", ["id_number_a", "id_number_b", "relation"],
              [[a, c, "child"], [a, b, "wife"]])
    result = run_import(runner, registry)
    assert result.exit_code != 0
    assert any(line.startswith("kinship.csv:3:") and "relation" in line for line in result.output.splitlines())
    assert db.session.scalar(select(func.count()).select_from(Kinship)) == 0
    assert db.session.scalar(select(func.count()).select_from(Person)) == 34  # persons.csv loaded


def test_kinship_rows_are_checked(runner, tmp_path):
    registry = demo_copy(tmp_path)
    a, b = demo_number("李建国"), demo_number("王秀英")
    stranger = factories.id_number("440106", dt.date(1990, 1, 1))
    write_csv(registry / "kinship.csv", ["id_number_a", "id_number_b", "relation"], [
        [a, b, "spouse"],
        [b, a, "child"],            # contradicts line 2
        [a, a, "sibling"],          # oneself
        [a, stranger, "child"],     # not in the registry
        [a, b, "spouse"],           # the same pair again
    ])
    result = run_import(runner, registry)
    assert result.exit_code != 0
    for line in (3, 4, 5, 6):
        assert f"kinship.csv:{line}:" in result.output
    assert "kinship.csv:2:" not in result.output


def test_changed_relation_updates(runner, tmp_path):
    registry = demo_copy(tmp_path)
    assert run_import(runner, registry).exit_code == 0
    a, b = demo_number("黄志伟"), demo_number("黄美玲")
    rows = list(csv.reader(open(registry / "kinship.csv", encoding="utf-8")))
    for row in rows:
        if row[:2] == [a, b]:
            row[2] = "spouse"
    write_csv(registry / "kinship.csv", rows[0], rows[1:])
    result = run_import(runner, registry)
    assert result.exit_code == 0, result.output
    assert "kinship.csv: 新增 0，更新 1，未变 24" in result.output
    assert db.session.scalar(select(Kinship.relation).where(Kinship.id_number_a == a)) == "spouse"


# --- institutions and policies ----------------------------------------------------------------------------------

def test_institution_keys_are_stored_hashed(runner):
    assert run_import(runner, DEMO).exit_code == 0
    with open(DEMO / "institutions.csv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) >= 6
    for row in rows:
        inst = db.session.scalar(select(Institution).where(Institution.code == row["code"]))
        assert inst.api_key_hash == hash_key(row["api_key"]) != row["api_key"]
        assert inst.designated == (row["designated"] == "true")
    stored = " ".join(str(v) for r in db.session.execute(select(Institution.__table__)).all() for v in r)
    assert not any(row["api_key"] in stored for row in rows)


def test_institution_key_rotation_and_duplicates(runner, tmp_path):
    registry = registry_with_policies(tmp_path)
    header = ["code", "name", "region_code", "designated", "api_key"]
    write_csv(registry / "institutions.csv", header, [["H1", "甲医院", "440106", "true", "key-aaaaaaaa"],
                                                     ["H2", "乙医院", "440106", "true", "key-bbbbbbbb"]])
    assert run_import(runner, registry).exit_code == 0
    # two institutions swap keys: allowed, the unique index must not trip
    write_csv(registry / "institutions.csv", header, [["H1", "甲医院", "440106", "true", "key-bbbbbbbb"],
                                                     ["H2", "乙医院", "440106", "false", "key-aaaaaaaa"]])
    result = run_import(runner, registry)
    assert result.exit_code == 0, result.output
    assert db.session.scalar(select(Institution.api_key_hash).where(Institution.code == "H1")) == \
        hash_key("key-bbbbbbbb")
    write_csv(registry / "institutions.csv", header, [["H3", "丙医院", "440106", "true", "key-cccccccc"],
                                                     ["H4", "丁医院", "440106", "yes", "key-dddddddd"],
                                                     ["H5", "戊医院", "440106", "true", "key-cccccccc"]])
    result = run_import(runner, registry)
    assert result.exit_code != 0
    assert "institutions.csv:3: designated" in result.output
    assert "institutions.csv:4: api_key 与第 2 行重复" in result.output
    assert db.session.scalar(select(func.count()).select_from(Institution)) == 2


def test_bad_policy_file_is_skipped_alone(runner, tmp_path):
    registry = registry_with_policies(tmp_path)
    (registry / "policies" / "31.toml").write_text('province_code = "31"\nname = "上海市"\nrelations = ["cousin"]\n')
    (registry / "policies" / "32.toml").write_text('province_code = "32"\nname = [\n')
    write_csv(registry / "persons.csv", PERSON_HEADER, [person_row(region="310104")])
    result = run_import(runner, registry)
    assert result.exit_code != 0
    assert "policies/31.toml: " in result.output and "policies/32.toml:" in result.output
    assert set(db.session.scalars(select(RegionPolicy.province_code))) == \
        {p.stem for p in (registry / "policies").glob("*.toml")} - {"31", "32"}  # 30 of the 32
    assert "policies/31.toml: 政策无效：relations: must be a non-empty subset" in result.output  # file, field
    assert "persons.csv:2:" in result.output  # no policy for 31 now
    policy = db.session.get(RegionPolicy, "44")
    assert policy.name == "广东省" and policy.data["reserve_fen"] == 0


def test_empty_directory_is_an_error(runner, tmp_path):
    result = run_import(runner, tmp_path)
    assert result.exit_code != 0


# --- the bulk ledger function ---------------------------------------------------------------------------------

def test_post_many_keeps_the_ledger_invariants(clean_app):
    factories.load_policies()
    a = factories.person(balance_fen=1000)
    b = factories.person(balance_fen=0)
    a_cur, a_prior = ledger.personal_accounts(a)
    b_cur, _ = ledger.personal_accounts(b)
    fund = ledger.system_account(ledger.REGISTRY_ACCOUNT)
    with pytest.raises(ledger.UnbalancedTransaction):
        ledger.post_many([ledger.Movement("transfer", [ledger.Entry(a_cur.id, 5), ledger.Entry(fund.id, -4)])])
    before = db.session.scalar(select(func.count()).select_from(LedgerTransaction))
    with pytest.raises(ledger.InsufficientFunds):
        ledger.post_many([ledger.Movement("transfer", [ledger.Entry(a_prior.id, -1001),
                                                       ledger.Entry(b_cur.id, 1001)])])
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(LedgerTransaction)) == before
    ids = ledger.post_many([
        ledger.Movement("transfer", [ledger.Entry(a_prior.id, -600), ledger.Entry(b_cur.id, 600)]),
        ledger.Movement("transfer", [ledger.Entry(a_prior.id, -400), ledger.Entry(b_cur.id, 400)], reference=None),
    ])
    db.session.commit()
    assert len(ids) == 2 and ids[0] != ids[1]
    assert ledger.balance_of(a) == (0, 0) and ledger.balance_of(b) == (1000, 0)
    assert ledger.check() == []
