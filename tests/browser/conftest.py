"""Browser tests: Playwright for Python driving Debian's Chromium (/usr/bin/chromium; no browser is downloaded) against
the app served on a local port in a thread, with the demo registry loaded. Every request to another host is
aborted, so a page that needs the internet fails here. Screenshots go to test-artifacts/screenshots/ (gitignored).

Without Chromium these tests FAIL with the reason (they never skip silently): install it with
`apt-get install chromium` (.ci/run does), or point CHROMIUM at another build."""
import os
import shutil
import subprocess
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from werkzeug.serving import make_server

from api import settings
from tests.conftest import _empty_everything

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = settings.ROOT / "test-artifacts" / "screenshots"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None. A Chinese font is needed too: without one every page is
    boxes (a person's phone has one; a bare server may not)."""
    if not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
        return (f"the browser tests need Chromium at {CHROMIUM}, which is not installed: run `apt-get install -y "
                f"chromium fonts-wqy-microhei` (.ci/run does it when they are missing) or set CHROMIUM")
    fonts = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True, check=False).stdout \
        if shutil.which("fc-list") else ""
    if not fonts.strip():
        return ("the browser tests need a Chinese font, or every page shows boxes: run `apt-get install -y "
                "fonts-wqy-microhei` (.ci/run does it when it is missing)")
    return None


@pytest.fixture(scope="session")
def browser():
    if reason := chromium_missing():
        pytest.fail(reason, pytrace=False)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def live(app):
    """The app on a free local port, the demo registry loaded, a reviewer, a clerk and an admin (password
    `password-1`); the database and Redis emptied first."""
    _empty_everything(app)
    with app.app_context():
        from api.services.logins import create_staff
        from api.services.registry import import_directory
        import_directory(settings.ROOT / "fixtures" / "demo", lambda *a: None)
        create_staff("reviewer1", "password-1", ["reviewer"])
        create_staff("clerk1", "password-1", ["clerk"], "44")
        create_staff("admin1", "password-1", ["admin"])
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.failed_call = report.failed
    return report


@pytest.fixture
def page(request, browser, live):
    """A phone-sized page with the network cut off: only the local server answers. `page.blocked` lists what was
    refused, `page.problems` every console error and failed request (tests assert they stay empty)."""
    context = browser.new_context(viewport={"width": 412, "height": 915}, device_scale_factor=1, locale="zh-CN",
                                  accept_downloads=True)
    blocked, problems = [], []

    def route(r):
        if urlsplit(r.request.url).hostname in LOCAL_HOSTS:
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort("internetdisconnected")

    context.route("**/*", route)

    def new_tab(viewport: dict | None = None):
        tab = context.new_page()
        tab.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        tab.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        tab.blocked, tab.problems, tab.base, tab.new_tab = blocked, problems, live, new_tab
        tab.set_default_timeout(10_000)
        if viewport:
            tab.set_viewport_size(viewport)
        return tab

    page = new_tab()
    yield page
    if getattr(request.node, "failed_call", False):  # what each page showed when the test failed
        for i, opened in enumerate(context.pages):
            shot(opened, f"FAILED-{request.node.name}-{i}")
            problems.append(f"page {i} at {opened.url}")
        print("browser problems:", problems, "blocked:", blocked)
    context.close()


def shot(page, name: str, full_page: bool = True) -> Path:
    """Saves a screenshot as a test artifact (look at them: a page a person would find broken is a failing page)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def clean_artifacts() -> None:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
