"""The web dashboard over a real uvicorn on loopback, with plain HTTP (httpx), on SQLite
and PostgreSQL: login and its cookie, every page's key content, redirects without a
valid token, escaping, CSRF and roles on the buttons, and the services' refusals shown
as pages. The browser tests (test_web_browser.py) drive the same pages in Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from releasegate.monitor.ingest import ingest_dicts
from releasegate.release.audit import audit_log
from releasegate.release.promote import approve
from releasegate.release.register import register
from releasegate.release.resolve import resolve
from releasegate.release.rollout import start
from releasegate.store.alerts import AlertRepo, NewAlert
from tests.helpers import Project
from tests.server.conftest import Live

HOSTILE = '<script>alert("owned")</script><img src=x onerror=alert(1)>'


@contextmanager
def logged_in(live: Live, who: str) -> Iterator[httpx.Client]:
    """A client whose cookie jar holds ``who``'s session (logged in through the form)."""
    with httpx.Client(base_url=live.url, timeout=60) as c:
        r = c.post("/web/login", data={"token": live.tokens[who], "next": "/web/"})
        assert r.status_code == 303 and r.headers["location"] == "/web/", r.text
        yield c


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert found, html
    return found.group(1)


def kinds(live: Live) -> list[str]:
    return [e.kind for e in audit_log(live.store)]


def test_every_page_sends_a_visitor_without_a_valid_token_to_login(live: Live) -> None:
    pages = ["/web/", "/web/workflows/router", f"/web/versions/{live.v2}", "/web/audit"]
    with httpx.Client(base_url=live.url, timeout=60) as c:
        for path in pages:
            r = c.get(path)
            assert r.status_code == 303, path
            assert r.headers["location"].startswith("/web/login?next=%2Fweb%2F"), path
        r = c.post("/web/actions/promote", data={"version": live.v2, "env": "staging"})
        assert r.status_code == 303 and r.headers["location"] == "/web/login?next=%2Fweb%2F"
        form = c.get("/web/login")
        assert form.status_code == 200 and 'name="token"' in form.text
        c.cookies.set("releasegate_session", live.tokens["revoked"], path="/web")
        r = c.get("/web/")
        assert r.status_code == 303 and "expired=1" in r.headers["location"]
        assert "no longer valid" in c.get(r.headers["location"]).text


def test_a_wrong_token_is_refused_on_the_form_and_audited(live: Live) -> None:
    before = kinds(live).count("access.refused")
    with httpx.Client(base_url=live.url, timeout=60) as c:
        r = c.post("/web/login", data={"token": "rg_0123456789abcdef_" + "x" * 43})
        assert r.status_code == 401
        assert "is not valid" in r.text and "releasegate_session" not in r.headers.get(
            "set-cookie", ""
        )
        r = c.post("/web/login", data={"token": live.tokens["revoked"]})
        assert r.status_code == 401 and "was revoked" in r.text
        assert live.tokens["revoked"] not in r.text  # the secret is never echoed
    assert kinds(live).count("access.refused") == before + 2


def test_login_sets_an_httponly_strict_cookie_and_shows_who(live: Live) -> None:
    with httpx.Client(base_url=live.url, timeout=60) as c:
        r = c.post("/web/login", data={"token": live.tokens["viewer"], "next": "/web/audit"})
        assert r.status_code == 303 and r.headers["location"] == "/web/audit"
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/web" in cookie
        home = c.get("/web/")
        assert home.status_code == 200
        assert '<span class="role">viewer</span>' in home.text
        assert home.headers["x-frame-options"] == "DENY"
        assert "default-src 'none'" in home.headers["content-security-policy"]
        assert live.tokens["viewer"] not in home.text
        # an outside target after login is not followed
        r = c.post("/web/login", data={"token": live.tokens["viewer"], "next": "//evil.test/"})
        assert r.headers["location"] == "/web/"


def test_home_workflow_version_report_and_audit_pages(live: Live) -> None:
    with logged_in(live, "viewer") as c:
        home = c.get("/web/").text
        assert 'href="/web/workflows/router"' in home
        assert f'href="/web/versions/{live.v1}"' in home  # what runs in staging
        assert "<b>0</b> rollouts in progress" in home and "<b>0</b> alerts firing" in home
        assert '<span class="stage experiment">experiment</span>' in home  # the stage
        assert "1 experiment" in home  # workflows by stage

        wf = c.get("/web/workflows/router").text
        assert "never rehearsed" in wf
        assert "promote" in wf and "alice" in wf  # the history: v1 promoted by alice
        assert f'href="/web/versions/{live.v2}"' in wf  # the versions
        assert 'href="/web/workflows/router/runbook"' in wf
        assert "/web/confirm/" not in wf  # a viewer sees no button

        book = c.get("/web/workflows/router/runbook")
        assert book.status_code == 200 and "router: runbook" in book.text

        v2 = c.get(f"/web/versions/{live.v2[:12]}").text
        assert "needs-approval" in v2
        assert 'change class <span class="class">config</span>' in v2
        assert "<code>generation.temperature</code>" in v2  # the diff against staging
        assert "Generation settings changed (such as the temperature" in v2  # what config means
        assert '<td class="before"><span class="muted">not set</span></td>' in v2  # not "null"
        when = r'<span class="when">\d{4}-\d\d-\d\d \d\d:\d\d UTC</span>'
        assert re.search(f"<th>registered</th><td>{when} by alice", v2)  # not an ISO string
        decision = re.search(r'href="/web/decisions/([0-9a-f]+)"', v2)
        assert decision is not None

        report = c.get(f"/web/decisions/{decision.group(1)}")
        assert report.status_code == 200
        assert "<table>" in report.text and "accuracy" in report.text  # the metric table
        assert "Approvals" in report.text and "&lt;sub&gt;" not in report.text

        audit = c.get("/web/audit").text
        assert "Verified: the chain of" in audit
        assert "environment.promoted" in audit or "promote" in audit
        assert "token.created" in audit


def test_unknown_things_are_404_pages_without_a_traceback(live: Live) -> None:
    with logged_in(live, "viewer") as c:
        for path in ("/web/workflows/nope", "/web/versions/ffffffffffffffff", "/web/nowhere"):
            r = c.get(path)
            assert r.status_code == 404, path
            assert r.headers["content-type"].startswith("text/html")
            assert "Traceback" not in r.text and "Not found" in r.text


def test_a_hostile_description_is_escaped(live: Live, tmp_path: Path) -> None:
    project = Project(root=tmp_path / "evil", meta={"description": HOSTILE})
    project.root.mkdir()
    register(live.store, project.workflow("v3", temperature=0.3), who="alice")
    with logged_in(live, "viewer") as c:
        for path in ("/web/", "/web/workflows/router"):
            text = c.get(path).text
            assert HOSTILE not in text and "<script>alert" not in text
            assert "&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt;" in text


def test_buttons_need_the_role_and_the_csrf_token(live: Live) -> None:
    target = {"version": live.v2, "env": "staging"}
    with logged_in(live, "viewer") as viewer:
        page = viewer.get("/web/confirm/approve", params=target)
        assert "cannot do this: it needs approver" in page.text
        token = csrf(viewer.get("/web/").text)
        r = viewer.post("/web/actions/approve", data={**target, "csrf": token})
        assert r.status_code == 403 and "needs approver" in r.text
    with logged_in(live, "bob") as bob:
        v2 = bob.get(f"/web/versions/{live.v2}").text
        assert f"/web/confirm/approve?version={live.v2}&amp;env=staging" in v2
        before = kinds(live)
        r = bob.post("/web/actions/approve", data={**target, "csrf": "0" * 64})
        assert r.status_code == 403 and "CSRF" in r.text
        r = bob.post("/web/actions/approve", data=target)
        assert r.status_code == 403
        assert kinds(live) == before  # nothing written


def test_an_oversized_form_is_413_and_does_nothing(live: Live) -> None:
    target = {"version": live.v2, "env": "staging"}
    with logged_in(live, "bob") as bob:
        token = csrf(bob.get("/web/confirm/approve", params=target).text)
        before = kinds(live)
        r = bob.post("/web/actions/approve", data={**target, "csrf": token, "note": "x" * 70_000})
        assert r.status_code == 413 and "nothing was done" in r.text
        assert "Traceback" not in r.text
        assert kinds(live) == before  # nothing written, not even a refusal


def test_a_token_revoked_mid_session_stops_the_next_button(live: Live) -> None:
    target = {"version": live.v2, "env": "staging"}
    with logged_in(live, "bob") as bob:
        token = csrf(bob.get("/web/confirm/approve", params=target).text)
        with live.client("admin") as admin:
            assert admin.delete("/v1/tokens/bob").status_code == 200
        before = kinds(live)
        r = bob.post("/web/actions/approve", data={**target, "csrf": token})
        assert r.status_code == 303 and "expired=1" in r.headers["location"]
        assert kinds(live) == before  # no approval signed by the revoked session
        assert bob.get("/web/").status_code == 303


def test_approve_promote_and_roll_back_through_the_buttons(live: Live) -> None:
    target = {"version": live.v2, "env": "staging"}
    with logged_in(live, "alice") as alice:
        token = csrf(alice.get("/web/confirm/approve", params=target).text)
        own = alice.post("/web/actions/approve", data={**target, "csrf": token})
        assert own.status_code == 409 and "Refused" in own.text  # alice owns v2
        assert "Traceback" not in own.text
    with logged_in(live, "bob") as bob:
        confirm = bob.get("/web/confirm/approve", params=target)
        assert "Sign the approval of version" in confirm.text
        done = bob.post("/web/actions/approve", data={**target, "csrf": csrf(confirm.text)})
        assert done.status_code == 200, done.text
        assert "bob approved" in done.text
    with logged_in(live, "operator") as op:
        confirm = op.get("/web/confirm/promote", params=target)
        done = op.post("/web/actions/promote", data={**target, "csrf": csrf(confirm.text)})
        assert done.status_code == 200, done.text
        assert f"router@staging now runs {live.v2[:12]}" in done.text
        assert resolve(live.store, "router", "staging").version_id == live.v2
        home = op.get("/web/").text
        assert f'href="/web/versions/{live.v2}"' in home
        back = {"workflow": "router", "env": "staging", "note": "INCIDENT: <b>bad</b>"}
        confirm = op.get("/web/confirm/rollback", params=back)
        done = op.post("/web/actions/rollback", data={**back, "csrf": csrf(confirm.text)})
        assert done.status_code == 200 and "rollback" in done.text
        assert resolve(live.store, "router", "staging").version_id == live.v1
        history = op.get("/web/workflows/router").text
        assert "INCIDENT: &lt;b&gt;bad&lt;/b&gt;" in history
        # no rollout runs: abort is refused, shown as a page
        abort = {"workflow": "router", "env": "staging"}
        r = op.post("/web/actions/abort", data={**abort, "csrf": csrf(confirm.text)})
        assert r.status_code == 409 and "Refused" in r.text
        # log out: the cookie goes, the pages ask for a login again
        out = op.post("/web/logout", data={"csrf": csrf(history)})
        assert out.status_code == 303
        assert op.get("/web/").status_code == 303


def test_a_rollout_shows_everywhere_and_is_advanced_then_aborted(live: Live) -> None:
    approve(live.store, live.v2, "staging", approver="bob")
    start(live.store, live.v2, "staging", canary_pct=5, steps=(5, 25, 100), who="alice")
    with logged_in(live, "viewer") as viewer:
        home = viewer.get("/web/").text
        assert "<b>1</b> rollouts in progress" in home and "rollout 5%" in home
        wf = viewer.get("/web/workflows/router").text
        assert '<span class="state running">running</span>' in wf
        assert 'the evidence now says <span class="action hold">hold</span>' in wf
        assert "0 candidate runs and 0 stable runs read" in wf
        assert "/web/confirm/advance" not in wf  # a viewer sees no button
    where = {"workflow": "router", "env": "staging"}
    with logged_in(live, "operator") as op:
        wf = op.get("/web/workflows/router").text
        assert "/web/confirm/advance?workflow=router&amp;env=staging" in wf
        assert "/web/confirm/abort?workflow=router&amp;env=staging" in wf
        token = csrf(wf)
        # the evidence holds the step (no runs yet): the button is refused, nothing moves
        held = op.post("/web/actions/advance", data={**where, "csrf": token})
        assert held.status_code == 409 and "not eligible to advance" in held.text
        done = op.post("/web/actions/abort", data={**where, "note": "looks off", "csrf": token})
        assert done.status_code == 200 and "was aborted" in done.text
        wf = op.get("/web/workflows/router").text
        assert '<span class="state aborted">aborted</span>' in wf and "looks off" in wf
        assert "<b>0</b> rollouts in progress" in op.get("/web/").text
    assert resolve(live.store, "router", "staging").version_id == live.v1


def test_the_signals_page_reads_the_monitor_and_charts_it(live: Live) -> None:
    now = datetime.now(UTC)
    runs = [
        {
            "run_id": f"r-{when}-{i:03d}",
            "workflow": "router",
            "env": "staging",
            "version_id": live.v1,
            "started_at": (now - timedelta(days=when, minutes=i)).isoformat(),
            "latency_ms": 100 + i,
            **(
                {"status": "error", "failure_reason": "timeout"}
                if when == 1 and i % 3 == 0
                else {"status": "ok"}
            ),
            "output": "<b>fraud</b>",
        }
        for when in (10, 1)
        for i in range(40)
    ]
    landed = ingest_dicts(live.store, runs, source="http", atomic=True)
    assert landed.landed == 80
    before = [(e.seq, e.kind) for e in audit_log(live.store)]
    with logged_in(live, "viewer") as c:
        wf = c.get("/web/workflows/router").text
        assert 'href="/web/workflows/router/environments/staging/signals"' in wf
        r = c.get("/web/workflows/router/environments/staging/signals")
        assert r.status_code == 200, r.text
        assert "Signals of router@staging" in r.text and "(40 runs)" in r.text
        assert "<td>error_rate</td>" in r.text
        assert r.text.count("<svg") >= 1 and "<b>fraud</b>" not in r.text
    assert [(e.seq, e.kind) for e in audit_log(live.store)] == before  # read only


def test_pause_and_resume_through_the_buttons(live: Live) -> None:
    where = {"workflow": "router", "env": "staging"}
    with logged_in(live, "operator") as op:
        wf = op.get("/web/workflows/router").text
        assert "/web/confirm/pause?workflow=router&amp;env=staging" in wf
        assert "/web/confirm/resume" not in wf
        token = csrf(wf)
        before = kinds(live)
        empty = op.post("/web/actions/pause", data={**where, "csrf": token})
        assert empty.status_code == 400 and "a pause needs a reason" in empty.text
        assert kinds(live) == before  # nothing written
        done = op.post("/web/actions/pause", data={**where, "note": "INCIDENT", "csrf": token})
        assert done.status_code == 200 and "router@staging is paused" in done.text
        assert resolve(live.store, "router", "staging").paused == "INCIDENT"
        home = op.get("/web/").text
        assert "<b>1</b> paused environments" in home and "<td>INCIDENT</td>" in home
        wf = op.get("/web/workflows/router").text
        assert "/web/confirm/resume?workflow=router&amp;env=staging" in wf
        again = op.post("/web/actions/pause", data={**where, "note": "again", "csrf": token})
        assert again.status_code == 409 and "already paused" in again.text
        done = op.post("/web/actions/resume", data={**where, "csrf": token})
        assert done.status_code == 200 and "router@staging is resumed" in done.text
        assert resolve(live.store, "router", "staging").paused is None


def test_the_program_numbers_and_the_trends_count_the_runs_sent(live: Live) -> None:
    today = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)

    def day(ago: int, n: int, escalated: int, edited: int) -> list[dict[str, object]]:
        return [
            {
                "run_id": f"r-{ago}-{i}",
                "workflow": "router",
                "env": "staging",
                "version_id": live.v1,
                "started_at": (today - timedelta(days=ago, minutes=i)).isoformat(),
                "latency_ms": 100,
                "status": "ok",
                "escalated": i < escalated,
                "edited": i < edited,
                "cost_usd": 0.01,
            }
            for i in range(n)
        ]

    runs = day(3, 30, 6, 3) + day(10, 20, 0, 0)
    assert ingest_dicts(live.store, runs, source="http", atomic=True).landed == 50
    alerted = today - timedelta(days=3)
    with live.store.write() as conn:
        AlertRepo(conn).add(
            NewAlert("router", "staging", "escalation_rate", "warning", "escalations up", {}),
            at=alerted,
        )
    with logged_in(live, "viewer") as c:
        home = c.get("/web/").text
        assert '<span class="label">Runs, last 7 days</span><b>30</b>' in home
        assert '+50%</span> <span class="muted">vs the 7 days before' in home  # 30 vs 20
        assert '<span class="label">Escalated to a person</span><b>20.0%</b>' in home
        assert '<span class="label">Outputs edited</span><b>10.0%</b>' in home
        assert '<span class="label">Cost, last 7 days</span><b>$0.30</b>' in home
        row = home[home.index('<table class="numbers">') :]
        assert 'href="/web/workflows/router">router</a>' in row
        assert '<td class="num">20.0%</td><td class="num">10.0%</td>' in row  # escalated, edited
        for chart in ("runs per day", "cost per day", "escalated", "edited"):
            assert f'aria-label="{chart}"' in home, chart
        assert 'aria-label="router: runs per day' in home  # the row's line

        wf = c.get("/web/workflows/router").text
        assert "staging: 50 runs" in wf and "1 day with an alert" in wf
        charts = {
            m.group(1): m.group(0)
            for m in re.finditer(r'<svg[^>]*aria-label="([^"]+)".*?</svg>', wf, re.S)
        }
        assert set(charts) >= {"runs per day", "failed", "escalated", "edited", "cost per run"}
        mark = f"<title>{alerted:%m-%d}: alert</title>"
        assert mark in charts["escalated"] and mark not in charts["failed"]
        assert 'href="/web/workflows/router/environments/staging/signals">signals of staging' in wf
