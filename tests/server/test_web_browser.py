"""The web dashboard end to end in Debian's headless Chromium, driven by Playwright for
Python, against a real uvicorn on loopback (SQLite: the pages are the same on both
databases, test_web.py checks them on PostgreSQL too). A screenshot of each page is kept
under the test's tmp dir (``screenshots/``). Skipped, saying why, only where Chromium is
not installed (``apt-get install chromium``; ``.ci/run`` installs it)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from releasegate.release.promote import approve
from releasegate.release.register import register
from releasegate.release.rollout import start
from tests.helpers import Project
from tests.server.conftest import Live, loopback_socket, run_server

CHROMIUM = "/usr/bin/chromium"
HOSTILE = "<img src=x onerror=\"document.title='owned'\"><script>document.title='owned'</script>"

pytestmark = [
    pytest.mark.skipif(
        shutil.which("chromium") is None and not Path(CHROMIUM).exists(),
        reason="Chromium is not installed: `apt-get install -y chromium` (.ci/run does it)",
    ),
    pytest.mark.parametrize("dialect", ["sqlite"]),
]

if TYPE_CHECKING:
    from playwright.sync_api import Page


@pytest.fixture
def tab(live: Live) -> Iterator[Page]:
    """A fresh Chromium page; started after ``live`` (whose set-up runs an event loop of its
    own, which Playwright's sync API may not be running beside)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        page.set_default_timeout(30_000)
        yield page
        browser.close()


def shot(page: Page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / "screenshots" / f"{name}.png"
    path.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000
    return path


def log_in(page: Page, live: Live, who: str) -> None:
    page.fill("#token", live.tokens[who])
    page.click("button[type=submit]")
    page.wait_for_load_state()


def test_log_in_and_open_every_page(live: Live, tab: Page, tmp_path: Path) -> None:
    tab.goto(f"{live.url}/web/workflows/router")
    assert tab.url.startswith(f"{live.url}/web/login")  # no cookie: the login form
    shot(tab, tmp_path, "login")
    log_in(tab, live, "viewer")
    assert tab.url == f"{live.url}/web/workflows/router"  # and back where we were going
    assert tab.locator(".who .role").inner_text() == "viewer"
    assert "never rehearsed" in tab.inner_text("main")
    shot(tab, tmp_path, "workflow")
    # the session cookie is not readable from scripts
    assert tab.evaluate("document.cookie") == ""

    tab.click("a.brand")
    assert tab.locator("h1").inner_text() == "Workflows"
    assert tab.locator(f'a[href="/web/versions/{live.v1}"]').count() >= 1
    shot(tab, tmp_path, "home")

    tab.goto(f"{live.url}/web/versions/{live.v2}")
    assert "generation.temperature" in tab.inner_text("table.diff")
    shot(tab, tmp_path, "version")
    tab.click("a[href^='/web/decisions/']")
    assert "NEEDS-APPROVAL" in tab.inner_text("article.report")
    assert "accuracy" in tab.inner_text("article.report table")
    shot(tab, tmp_path, "gate-report")

    tab.click("header nav >> text=Audit log")
    assert "Verified" in tab.inner_text("p.ok")
    shot(tab, tmp_path, "audit")

    tab.goto(f"{live.url}/web/workflows/router")
    tab.click("a[href$='/environments/staging/signals']")
    assert "Signals of router@staging" in tab.inner_text("h1")
    shot(tab, tmp_path, "signals")

    tab.goto(f"{live.url}/web/workflows/router/runbook")
    assert "runbook" in tab.title()
    shot(tab, tmp_path, "runbook")
    assert sorted(p.name for p in (tmp_path / "screenshots").iterdir()) == [
        "audit.png", "gate-report.png", "home.png", "login.png", "runbook.png",
        "signals.png", "version.png", "workflow.png",
    ]  # fmt: skip


def test_sign_in_with_the_identity_provider(
    live: Live, tab: Page, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The provider (tests/server/test_oidc.py) is another site than the server (localhost
    and 127.0.0.1), and the person submits its sign-in form: its redirect back is a
    navigation another site began, as in production."""
    from releasegate.server.app import Settings, create_app
    from tests.server.test_oidc import AUDIENCE, CLIENT_ID, CLIENT_SECRET, Provider

    provider = Provider(host="localhost")
    provider.ask = True
    sock = loopback_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    for name, value in {
        "ISSUER": provider.issuer,
        "AUDIENCE": AUDIENCE,
        "ROLES": "rg-ops=operator",
        "CLIENT_ID": CLIENT_ID,
        "CLIENT_SECRET": CLIENT_SECRET,
        "REDIRECT_BASE": url,
        "PROVIDER_NAME": "Keycloak",
    }.items():
        monkeypatch.setenv(f"RELEASEGATE_OIDC_{name}", value)
    try:
        for url in run_server(create_app(live.store, Settings(token_ttl=0)), sock):
            tab.goto(f"{url}/web/workflows/router")
            shot(tab, tmp_path, "sign-in")
            tab.click("text=Sign in with Keycloak")
            assert tab.url.startswith(f"{provider.issuer}/authorize?")
            tab.click("text=Sign in")  # at the provider
            tab.wait_for_url(f"{url}/web/workflows/router")
            assert tab.locator(".who span").first.inner_text() == "olga"
            assert tab.locator(".who .role").inner_text() == "operator"
            assert "never rehearsed" in tab.inner_text("main")
            assert tab.evaluate("document.cookie") == ""  # the session is HttpOnly
            shot(tab, tmp_path, "signed-in")
            tab.click("header .who button")  # sign out
            assert "/web/login" in tab.url
            tab.click("text=sign out there too")  # at the provider, and back
            tab.wait_for_url(f"{url}/web/login")
            assert provider.signed_out == [CLIENT_ID]
            tab.goto(f"{url}/web/")
            assert "/web/login" in tab.url
    finally:
        provider.stop()


def test_a_wrong_or_absent_token_stays_on_the_login_form(live: Live, tab: Page) -> None:
    tab.goto(f"{live.url}/web/")
    assert "/web/login" in tab.url
    tab.fill("#token", "rg_0123456789abcdef_" + "x" * 43)
    tab.click("button[type=submit]")
    assert "is not valid" in tab.inner_text("p.error")
    tab.goto(f"{live.url}/web/audit")
    assert "/web/login" in tab.url


def test_a_hostile_description_is_shown_as_text(live: Live, tab: Page, tmp_path: Path) -> None:
    project = Project(root=tmp_path / "evil", meta={"description": HOSTILE})
    project.root.mkdir()
    register(live.store, project.workflow("v3", temperature=0.3), who="alice")
    tab.goto(f"{live.url}/web/login")
    log_in(tab, live, "viewer")
    assert tab.title() != "owned"
    assert tab.locator("div.desc").first.inner_text() == HOSTILE  # shown, not run
    assert tab.locator("main img").count() == 0
    shot(tab, tmp_path, "hostile")


def test_approve_then_promote_with_confirmation(live: Live, tab: Page, tmp_path: Path) -> None:
    tab.goto(f"{live.url}/web/versions/{live.v2}")
    log_in(tab, live, "bob")
    tab.click("a.button.approve")
    shot(tab, tmp_path, "confirm-approve")
    tab.click("button.confirm")
    assert "bob approved" in tab.inner_text("p.ok")
    tab.click("header .who button")  # log out
    assert "/web/login" in tab.url
    log_in(tab, live, "operator")
    tab.goto(f"{live.url}/web/versions/{live.v2}")
    tab.click("a.button.promote")
    tab.click("button.confirm")
    assert f"now runs {live.v2[:12]}" in tab.inner_text("p.ok")
    shot(tab, tmp_path, "promoted")
    tab.click("a.brand")
    staging = tab.locator("table.workflows tr", has_text="staging")
    assert live.v2[:12] in staging.inner_text()


def test_abort_a_rollout_with_confirmation(live: Live, tab: Page, tmp_path: Path) -> None:
    approve(live.store, live.v2, "staging", approver="bob")
    start(live.store, live.v2, "staging", canary_pct=5, who="alice")
    tab.goto(f"{live.url}/web/workflows/router")
    log_in(tab, live, "operator")
    assert "hold" in tab.inner_text("div.analysis")
    shot(tab, tmp_path, "rollout")
    tab.click("a.button.abort")
    tab.fill("#note", "latency looks off")
    tab.click("button.confirm")
    assert "was aborted" in tab.inner_text("p.ok")
    tab.goto(f"{live.url}/web/workflows/router")
    assert "latency looks off" in tab.inner_text("main")
    assert tab.locator("a.button.abort").count() == 0


def test_review_an_escalated_run_and_make_it_a_case(live: Live, tab: Page, tmp_path: Path) -> None:
    from releasegate.monitor.ingest import ingest_dicts
    from tests.release.test_review_queue import runs

    rows = [{**r, "env": "staging", "version_id": live.v1} for r in runs(live.v1)]
    assert ingest_dicts(live.store, rows, source="http").landed == 60
    tab.goto(f"{live.url}/web/workflows/router")
    log_in(tab, live, "operator")
    tab.click("p.queue-link a")
    tab.click("text=staging")  # the queue of staging (production has no runs)
    first = tab.locator("section.review").first
    assert first.locator("code.run-id").inner_text() == "run-000"
    assert "escalated" in first.locator("h3").inner_text()
    assert "message 0 #fraud" in first.locator(".texts").inner_text()
    shot(tab, tmp_path, "queue")
    first.locator("textarea[name=expected]").fill("fraud")
    first.locator("input[name=note]").fill("a fraud report sent to complaints")
    first.locator("input[name=case]").check()
    first.locator("button.bad").click()
    said = tab.inner_text("p.ok")
    assert "operator marked run run-000 bad with a corrected output." in said
    assert "Added case case-81 to the current suite" in said
    shot(tab, tmp_path, "reviewed")
    tab.click("text=Back to the review queue")
    assert tab.locator("code.run-id", has_text="run-000").count() == 0  # it left the queue
    log = tab.inner_text("table.log")
    assert "run-000" in log and "case-81" in log and "a fraud report" in log
    case = said.split("its line there is: ", 1)[1]  # for the cases file; none was written
    assert '"expected": "fraud"' in case and '"reviewer": "operator"' in case
