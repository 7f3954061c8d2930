"""医保目录 (catalogue.csv): which item codes (`med_list_codg`) the insurance covers, and as what category.

An optional registry file, `code,name,category` with category drug | treatment | material | non_medical, loaded by
`flask --app api registry import DIR` like the others (validated whole, then written in one transaction; rows
absent from a file are kept). The HIS gateway reads it for each uploaded fee line: a code that is not in it is
全自费, paid in cash as 保健品 are.
"""
from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import bindparam, insert, select, update

from api.extensions import db
from api.models import CatalogueItem
from api.policy import ITEM_CATEGORIES

COLUMNS = ("code", "name", "category")
_CODE_RE = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,49}")


def import_catalogue(path: Path, report, progress) -> None:
    from api.services.registry import CHUNK, RowError, _read_csv
    rows = _read_csv(path, report, COLUMNS)
    existing = {r.code: r for r in db.session.execute(select(CatalogueItem.code, CatalogueItem.name,
                                                             CatalogueItem.category))}
    parsed, first_line = {}, {}
    for line, row in rows:
        try:
            code, name, category = row["code"], row["name"], row["category"]
            if not _CODE_RE.fullmatch(code):
                raise RowError("code 医保目录编码须为 1–50 位字母、数字、. - 或 _")
            if not name or len(name) > 200:
                raise RowError("name 项目名称为空或过长")
            if category not in ITEM_CATEGORIES:
                raise RowError(f"category 须为 {'|'.join(sorted(ITEM_CATEGORIES))}")
            if code in first_line:
                raise RowError(f"编码与第 {first_line[code]} 行重复")
        except RowError as exc:
            report.error(line, str(exc))
            continue
        first_line[code] = line
        parsed[code] = {"code": code, "name": name, "category": category}
    progress(report.name, "校验", len(rows), len(rows))
    if not report.ok:
        return
    inserts, updates = [], []
    for code, row in parsed.items():
        old = existing.get(code)
        if old is None:
            inserts.append(row)
        elif (old.name, old.category) != (row["name"], row["category"]):
            updates.append({"b_code": code, "b_name": row["name"], "b_category": row["category"]})
        else:
            report.unchanged += 1
    table = CatalogueItem.__table__
    if updates:
        db.session.execute(update(table).where(table.c.code == bindparam("b_code"))
                           .values(name=bindparam("b_name"), category=bindparam("b_category")), updates)
    for start in range(0, len(inserts), CHUNK):
        db.session.execute(insert(table), inserts[start:start + CHUNK])
    report.inserted, report.updated = len(inserts), len(updates)
    progress(report.name, "写入", len(rows), len(rows))


def lookup(codes) -> dict[str, CatalogueItem]:
    """The catalogue's items among `codes`, by code (one query)."""
    codes = set(codes)
    if not codes:
        return {}
    return {item.code: item for item in db.session.scalars(select(CatalogueItem).where(CatalogueItem.code.in_(codes)))}


def registry_steps():
    from api.his.signing import import_signing_keys
    return (("catalogue.csv", import_catalogue), ("institutions.csv", import_signing_keys))
