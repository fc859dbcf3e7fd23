"""The review queue page: the runs of a workflow to read, and the forms to review them.

``GET /workflows/NAME/queue`` shows the queue of one environment over a period (the
``queue list`` service) with each run's input and output (credentials masked) and, for
operators, a form per run: Good, Bad, a corrected expected output, a note, and "make it
a suite case". Below it the period's review log with its numbers, and a "Make it a
case" button on your reviews not yet made one. The forms POST with the session's CSRF
token and act as the session's identity, calling the same services as ``queue mark``
and ``queue case``; the result is a page saying what was done, or the refusal.
"""

from __future__ import annotations

from typing import NamedTuple

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse

from releasegate.domain.access import Identity, Role
from releasegate.domain.review_queue import MAX_TEXT
from releasegate.errors import InputError
from releasegate.release.inspect import show_workflow
from releasegate.release.review_queue import (
    mark_run,
    review_log,
    review_queue,
    review_to_case,
    run_texts,
)
from releasegate.server.web import checked, form, page, session

router = APIRouter()
PAGE = 25


class Done(NamedTuple):
    title: str


@router.get("/workflows/{workflow}/queue")
def queue_page(
    request: Request,
    workflow: str,
    env: str | None = None,
    period: str = "7d",
    after: str | None = None,
) -> HTMLResponse:
    s = session(request)
    store = request.app.state.store
    envs = [e["env"] for e in show_workflow(store, workflow)["environments"]]
    if env is None:
        env = "production" if "production" in envs or not envs else envs[-1]
    q = review_queue(store, workflow, env, period=period, limit=PAGE, after=after or None)
    log = review_log(store, workflow, env, limit=50, queue=q)
    return page(
        request,
        "queue.html",
        s=s,
        q=q,
        log=log,
        envs=envs,
        period=period,
        texts=run_texts(store, [i.run_id for i in q.items]),
        may_review=s.may(Role.OPERATOR.label),
    )


def _run(fields: dict[str, str]) -> str:
    run = fields.get("run", "").strip()
    if not run or len(run) > 256:
        raise InputError("the form needs a run", field="run")
    return run


def _back(fields: dict[str, str]) -> str | None:
    workflow, env = fields.get("workflow", ""), fields.get("env", "")
    if workflow and env and "/" not in workflow and len(workflow) + len(env) < 400:
        from urllib.parse import quote

        return f"/web/workflows/{quote(workflow)}/queue?env={quote(env)}"
    return None


@router.post("/queue/mark")
async def mark(request: Request) -> HTMLResponse:
    fields = await form(request)
    s = await run_in_threadpool(checked, request, fields, Role.OPERATOR)
    run, verdict = _run(fields), fields.get("verdict", "")
    expected = fields.get("expected", "").strip() or None
    note = fields.get("note", "").strip()[:MAX_TEXT]
    to_case = fields.get("case") == "1"
    says = await run_in_threadpool(
        _mark, request, run, verdict, expected, note, to_case, s.identity
    )
    return page(request, "done.html", s=s, action=Done("Review"), says=says, back=_back(fields))


def _mark(
    request: Request,
    run: str,
    verdict: str,
    expected: str | None,
    note: str,
    to_case: bool,
    who: Identity,
) -> str:
    store = request.app.state.store
    marked = mark_run(
        store, run, verdict, expected=expected, note=note, who=who.name, token_id=who.token_id
    )
    r = marked.review
    said = f"{r.reviewer} marked run {r.run_id} {r.verdict}" + (
        f" (was {marked.previous.verdict})" if marked.previous else ""
    )
    said += " with a corrected output." if r.expected is not None else "."
    if to_case:
        said += " " + _case(request, r.run_id, who)
    return said


def _case(request: Request, run: str, who: Identity) -> str:
    made = review_to_case(request.app.state.store, run, reviewer=who.name, who=who.name)
    return (
        f"Added case {made.case_id} to the current suite (suite {made.suite_id[:12]}, "
        f"{made.cases} cases); the next gate needs an eval on it. The suite's cases file "
        f"does not have it yet; its line there is: {(made.appended or '').strip()}"
    )


@router.post("/queue/case")
async def case(request: Request) -> HTMLResponse:
    fields = await form(request)
    s = await run_in_threadpool(checked, request, fields, Role.OPERATOR)
    says = await run_in_threadpool(_case, request, _run(fields), s.identity)
    return page(request, "done.html", s=s, action=Done("Suite case"), says=says, back=_back(fields))
