"""The pages without a browser: they call only operations of the public OpenAPI document (no page-only endpoint),
load nothing from another host, and the simulator's list of demo people is the demo registry's."""
import re

import pytest

from api import settings
from clients import demo_people

STATIC = settings.ROOT / "api" / "static"
CALL = re.compile(r"""api\.(get|post|patch|blob)\(\s*[`"']([^`"']+)[`"']""")


def _called(script: str) -> set[tuple[str, str]]:
    calls = set()
    for method, path in CALL.findall(script):
        path = re.sub(r"\$\{[^}]+\}", "{x}", path.split("?")[0]).rstrip("?")
        calls.add(("post" if method == "post" else "patch" if method == "patch" else "get", path))
    return calls


@pytest.mark.parametrize("script", ["sim/sim.js", "staff/console.js"])
def test_the_pages_call_only_documented_operations(client, script):
    document = client.get("/api/v1/openapi.json").json
    operations = {(method, re.sub(r"\{[^}]+\}", "{x}", path.removeprefix("/api/v1")))
                  for path, item in document["paths"].items() for method in item if method in ("get", "post", "patch")}
    calls = _called((STATIC / script).read_text(encoding="utf-8"))
    assert calls, "no API calls found"
    assert calls <= operations, sorted(calls - operations)


def test_the_static_files_load_nothing_from_another_host():
    checked = 0
    for path in STATIC.rglob("*"):
        if path.suffix in (".html", ".js", ".css") and "vendor" not in path.parts:
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"""(?:src|href|url\(|fetch\()\s*=?\s*["']?(?:https?:)?//""", text), path
            checked += 1
    assert checked >= 6, checked  # the two pages' HTML, JS and CSS at least


def test_the_simulator_offers_the_demo_registry_people():
    assert (STATIC / "sim" / "demo-people.json").read_text(encoding="utf-8") == demo_people.render(), \
        "run `python -m clients.demo_people` after changing fixtures/demo/persons.csv"
