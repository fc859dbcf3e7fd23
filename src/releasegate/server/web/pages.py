"""The dashboard's pages (GET) and the login form: each calls a service and renders it.

Home (``monitor.dashboard.overview`` and the program numbers of ``monitor.program``); a
workflow (``workflow_view`` and its daily trends per environment), its runbook
(``reports.runbook``) and each environment's signals and charts (``monitor``, read only);
a version (``release.inspect.show_version`` and its diff against what each environment
runs, ``diff_versions``); a gate report (the stored report rendered by
``reports.gate_report`` as Markdown, then to HTML by markdown-it with raw HTML off); the
audit log with the whole chain's verification (``release.audit.AuditWatch``: run in the
background, so the page does not wait for a walk that grows with the chain). Routes are
sync: FastAPI runs them in its thread pool, as the services block on the store.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from markdown_it import MarkdownIt
from starlette.responses import HTMLResponse, RedirectResponse, Response

from releasegate.domain.diff import ChangeClass
from releasegate.domain.program import change
from releasegate.errors import UnauthorizedError
from releasegate.monitor.dashboard import overview, workflow_view
from releasegate.monitor.program import (
    TREND_DAYS,
    program_charts,
    program_numbers,
    runs_sparkline,
    workflow_trends,
)
from releasegate.monitor.runbook import build_runbook
from releasegate.monitor.runs import signals_view
from releasegate.monitor.service import signal_dict
from releasegate.release import audit, inspect
from releasegate.reports import gate_report, runbook
from releasegate.server.web import (
    SECURITY_HEADERS,
    form,
    keeper,
    page,
    safe_next,
    session,
    start_session,
)

router = APIRouter()
AUDIT_EVENTS = 200
_markdown = MarkdownIt("commonmark", {"html": False}).enable("table")


def _login_page(
    request: Request,
    next: str,
    code: int = 200,
    error: str | None = None,
    note: str | None = None,
    sign_out: str | None = None,
) -> HTMLResponse:
    """The login form, with the identity provider's sign-in button when it is configured."""
    from releasegate.server.web.signin import configured

    found = configured(request)
    provider = found[1].provider_name if found else None
    return page(
        request,
        "login.html",
        code,
        s=None,
        next=next,
        error=error,
        note=note,
        provider=provider,
        sign_out=sign_out,
    )


@router.get("/login")
def login_form(
    request: Request, next: str | None = None, expired: int = 0, signed_out: int = 0
) -> HTMLResponse:
    from releasegate.server.web.signin import sign_out_there

    if signed_out:
        note: str | None = "You are logged out of releasegate."
        return _login_page(request, safe_next(next), note=note, sign_out=sign_out_there(request))
    note = "Your session's token is no longer valid: log in again." if expired else None
    return _login_page(request, safe_next(next), note=note)


@router.post("/login")
async def login(request: Request) -> Response:
    from starlette.concurrency import run_in_threadpool

    fields = await form(request)
    token = fields.get("token", "").strip()
    target = safe_next(fields.get("next"))
    gate = keeper(request)
    header = f"Bearer {token}"
    try:
        await run_in_threadpool(gate.check, header if token else None)
    except UnauthorizedError as exc:
        request.app.state.metrics.refused(401)
        await run_in_threadpool(gate.refuse, request, None, header if token else None, exc)
        return _login_page(request, target, 401, error=exc.message)
    done = RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)
    start_session(done, request, token)
    return done


@router.get("/")
def home(request: Request) -> HTMLResponse:
    s = session(request)
    store = request.app.state.store
    numbers = program_numbers(store)
    return page(
        request,
        "home.html",
        s=s,
        view=overview(store),
        numbers=numbers,
        charts=program_charts(numbers),
        lines={t.name: runs_sparkline(t) for t in numbers.workflows},
        change=change,
    )


@router.get("/workflows/{workflow}")
def workflow(request: Request, workflow: str) -> HTMLResponse:
    s = session(request)
    store = request.app.state.store
    return page(
        request,
        "workflow.html",
        s=s,
        view=workflow_view(store, workflow),
        trends=workflow_trends(store, workflow),
        trend_days=TREND_DAYS,
    )


@router.get("/workflows/{workflow}/runbook")
def workflow_runbook(request: Request, workflow: str) -> HTMLResponse:
    session(request)
    built = build_runbook(request.app.state.store, workflow)
    return HTMLResponse(runbook.render_html(built), headers=SECURITY_HEADERS)


@router.get("/workflows/{workflow}/environments/{env}/signals")
def signals(request: Request, workflow: str, env: str) -> HTMLResponse:
    """``monitor`` read-only (no alert raised, no pause, no embeddings, no judge), and each
    signal's daily chart over two weeks with the days in alert marked."""
    s = session(request)
    result, drawn = signals_view(request.app.state.store, workflow, env)
    return page(
        request,
        "signals.html",
        s=s,
        result=result,
        rows=[signal_dict(x) for x in result.signals],
        charts=drawn,
    )


@router.get("/versions/{ref}")
def version(request: Request, ref: str) -> HTMLResponse:
    s = session(request)
    store = request.app.state.store
    shown = inspect.show_version(store, ref)
    vid = shown["version_id"]
    running = inspect.show_workflow(store, shown["workflow"])["environments"]
    diffs: list[dict[str, Any]] = []
    for env in running:
        other = env["version_id"]
        if other is not None and other != vid:
            diffs.append({"env": env["env"], **inspect.diff_versions(store, other, vid)})
    return page(
        request,
        "version.html",
        s=s,
        meaning={c.value: c.meaning for c in ChangeClass},
        v=shown,
        running=running,
        diffs=diffs,
        manifest=_pretty(shown["manifest"]),
    )


@router.get("/decisions/{decision}")
def decision(request: Request, decision: str) -> HTMLResponse:
    s = session(request)
    report = inspect.gate_report(request.app.state.store, decision)
    text = gate_report.render_markdown(report)
    # the footer's <sub> is the one HTML tag the Markdown carries; raw HTML is off here
    body = _markdown.render(text.replace("<sub>", "").replace("</sub>", ""))
    return page(request, "decision.html", s=s, report=report, body=body)


@router.get("/audit")
def audit_page(request: Request, workflow: str | None = None) -> HTMLResponse:
    s = session(request)
    store = request.app.state.store
    events = audit.audit_log(store, workflow=workflow or None, limit=AUDIT_EVENTS)
    watched = request.app.state.audit_watch.latest()
    return page(
        request,
        "audit.html",
        s=s,
        events=list(reversed(events)),
        watched=watched,
        verified=watched.verified,
        workflow=workflow,
        limit=AUDIT_EVENTS,
    )


def _pretty(manifest: Any) -> str:
    import json

    return json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False, default=str)
