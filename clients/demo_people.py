"""Writes api/static/sim/demo-people.json, the demo people the simulator page offers to log in as, from
fixtures/demo/persons.csv (tests/test_pages.py checks the two agree). They are the synthetic people of the demo
registry (fixtures/demo/README.md): the page needs a full ID number for the first login's 实名认证, and shows it
masked. Run: python -m clients.demo_people"""
import csv
import json
import sys

from api import settings
from api.masking import mask_id, mask_name

FAMILIES = [  # (first persons.csv line, label) as in fixtures/demo/README.md
    (2, "A 广州李家"), (8, "B 深圳黄家"), (10, "C 广州吴/郑"), (13, "D 上海张家"), (17, "E 杭州陈家"),
    (20, "F 太原杨家"), (23, "G 泰安孙家"),
]
SOURCE = settings.ROOT / "fixtures" / "demo" / "persons.csv"
TARGET = settings.ROOT / "api" / "static" / "sim" / "demo-people.json"


def people() -> list[dict]:
    out = []
    with SOURCE.open(encoding="utf-8") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            family = [label for first, label in FAMILIES if first <= line][-1]
            out.append({"line": line, "family": family, "name": row["name"], "id_number": row["id_number"],
                        "masked_name": mask_name(row["name"]), "masked_id": mask_id(row["id_number"]),
                        "insurance_type": row["insurance_type"], "status": row["status"],
                        "region_code": row["region_code"]})
    return out


def render() -> str:
    return json.dumps(people(), ensure_ascii=False, indent=1) + "\n"


if __name__ == "__main__":
    TARGET.write_text(render(), encoding="utf-8")
    print(f"wrote {TARGET.relative_to(settings.ROOT)}", file=sys.stderr)
