"""Test data made through the real models and ledger: valid GB 11643 numbers, policies from fixtures/demo."""
from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path

from stdnum.cn import ric

from api import ledger
from api.extensions import db
from api.models import Institution, Kinship, Person, RegionPolicy
from api.policy import load_policy_file

POLICY_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "demo" / "policies"
_seq = itertools.count(1)


def id_number(region_code: str = "440106", birth: dt.date = dt.date(1970, 1, 1), male: bool = True,
              seq: int | None = None) -> str:
    """A valid 18-digit number: region, birth date, a sequence whose last digit carries the sex, checksum."""
    n = (seq if seq is not None else next(_seq)) % 50
    order = f"{n * 2 + (1 if male else 0):03d}"
    body = f"{region_code}{birth:%Y%m%d}{order}"
    return body + ric.calc_check_digit(body + "0")  # stdnum expects the check position present


def load_policies() -> None:
    for path in sorted(POLICY_DIR.glob("*.toml")):
        policy = load_policy_file(path)
        import tomllib
        data = tomllib.loads(path.read_text())
        row = db.session.get(RegionPolicy, policy.province_code)
        if row is None:
            db.session.add(RegionPolicy(province_code=policy.province_code, name=policy.name, data=data))
        else:
            row.data = data
    db.session.commit()


def set_policy(province_code: str, **changes) -> None:
    """Changes fields of a loaded region policy, as a registry import of an edited file would (a new version)."""
    from api.models import utcnow
    row = db.session.get(RegionPolicy, province_code)
    row.data = {**row.data, **changes}
    row.updated_at = utcnow()
    db.session.commit()


RELATIONS_2021 = ["spouse", "parent", "child"]  # 国办发〔2021〕14号; no province keeps it since 2024-12 (N4)


def person(name: str = "张三", insurance_type: str = "employee", status: str = "normal",
           region_code: str = "440106", balance_fen: int | None = 500000, prior_year_fen: int | None = None,
           birth: dt.date = dt.date(1970, 1, 1), male: bool = True, phone: str = "13800138000",
           number: str | None = None) -> Person:
    """An insured person; employees get a personal account funded through a registry_load transaction."""
    number = number or id_number(region_code, birth, male)
    p = Person(id_number=number, name=name, insurance_type=insurance_type, status=status,
               region_code=region_code, card_number="C" + number[-10:], phone=phone)
    db.session.add(p)
    db.session.flush()
    if insurance_type == "employee" and balance_fen is not None:
        prior = balance_fen if prior_year_fen is None else prior_year_fen
        current_acc, prior_acc = ledger.personal_accounts(p)
        if balance_fen == 0:  # an empty account: nothing to move
            db.session.commit()
            return p
        funding = ledger.system_account(ledger.REGISTRY_ACCOUNT)
        ledger.post("registry_load", [
            ledger.Entry(current_acc.id, balance_fen - prior), ledger.Entry(prior_acc.id, prior),
            ledger.Entry(funding.id, -balance_fen)], memo="test data")
    db.session.commit()
    return p


def kinship(a: Person, b: Person, relation: str) -> None:
    """Records in the registry that b is a's `relation`."""
    db.session.add(Kinship(id_number_a=a.id_number, id_number_b=b.id_number, relation=relation))
    db.session.commit()


def institution(code: str = "H4401001", name: str = "广州市第一人民医院", region_code: str = "440104",
                designated: bool = True, api_key: str = "key-h1") -> Institution:
    from api.auth import hash_key
    inst = Institution(code=code, name=name, region_code=region_code, designated=designated,
                       api_key_hash=hash_key(api_key))
    db.session.add(inst)
    db.session.commit()
    return inst
