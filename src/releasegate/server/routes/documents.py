"""What an operator and an approver read: a run, the monitor's signals, the weekly memo,
the runbook, the handover checklist, the governance review, a diff, a stage, the
policies. Each is the CLI verb's ``--json`` document byte for byte (``CliDocument``), or
with ``format`` the text it prints (Markdown, HTML, Prometheus). Reading sends no alert:
``monitor`` over GET is ``--no-alert``; an operator asks for alerts with POST
(``server/routes/governance.py``), as for ``review --fix``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from releasegate.domain.access import Identity, Role
from releasegate.server.access import requires
from releasegate.server.errors import ERROR_RESPONSES
from releasegate.server.routes import CliDocument, Text

router = APIRouter(responses=ERROR_RESPONSES)
Viewer = Annotated[Identity, Depends(requires(Role.VIEWER))]
Operator = Annotated[Identity, Depends(requires(Role.OPERATOR))]
ENV = "/v1/workflows/{workflow}/environments/{env}"
MARKDOWN = "text/markdown; charset=utf-8"
HTML = "text/html; charset=utf-8"


def _texts(*types: str) -> dict[int | str, dict[str, Any]]:
    return {200: {"content": {"application/json": {}, **{t: {} for t in types}}}}


@router.get(
    "/v1/runs/{run_id}",
    tags=["production"],
    summary="One production run by id or unique prefix (`releasegate runs show --json`)",
)
def run(request: Request, run_id: str, _: Viewer) -> CliDocument:
    from releasegate.monitor.runs import find_run

    return CliDocument(find_run(request.app.state.store, run_id))


class MonitorBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    window: str | None = Field(None, max_length=50, description="e.g. 24h or 7d (`--window`)")
    reference: str | None = Field(
        None, max_length=100, description="START..END, ISO dates (`--reference`)"
    )
    embeddings: bool = Field(True, description="Input and output drift (`--no-embeddings`)")
    quality: bool = Field(True, description="Score a sample of runs (`--no-quality`)")
    alert: bool = Field(True, description="Record and route alerts that fire (`--no-alert`)")


def monitored(request: Request, workflow: str, env: str, body: MonitorBody, fmt: str) -> Response:
    """``monitor --json`` (or ``--prometheus``) with the CLI's options (shared with POST)."""
    from releasegate.monitor.runs import parse_reference, parse_window
    from releasegate.monitor.service import monitor, signal_dict
    from releasegate.reports.prometheus import exposition

    result = monitor(
        request.app.state.store,
        workflow,
        env,
        window=parse_window(body.window),
        reference=parse_reference(body.reference),
        embeddings=body.embeddings,
        alert=body.alert,
        quality=body.quality,
    )
    if fmt == "prometheus":
        text = exposition(workflow, env, [signal_dict(s) for s in result.signals])
        return Text(text, "text/plain; version=0.0.4; charset=utf-8")
    return CliDocument(result.as_dict())


MonitorFormat = Annotated[
    Literal["json", "prometheus"],
    Query(description="json (`monitor --json`) or prometheus (`monitor --prometheus`)"),
]


@router.get(
    f"{ENV}/monitor",
    tags=["production"],
    summary="Signals of production runs against a reference, no alert sent "
    "(`releasegate monitor --no-alert --json`; `status` alert is the CLI's exit 1)",
    responses=_texts("text/plain"),
)
def monitor_read(
    request: Request,
    workflow: str,
    env: str,
    _: Viewer,
    window: Annotated[str | None, Query(max_length=50)] = None,
    reference: Annotated[str | None, Query(max_length=100)] = None,
    embeddings: bool = True,
    quality: bool = True,
    format: MonitorFormat = "json",
) -> Response:
    body = MonitorBody(
        window=window, reference=reference, embeddings=embeddings, quality=quality, alert=False
    )
    return monitored(request, workflow, env, body, format)


@router.get(
    "/v1/workflows/{workflow}/memo",
    tags=["reports"],
    summary="The weekly stability memo (`releasegate report memo --json`; markdown or html)",
    responses=_texts(MARKDOWN, HTML),
)
def memo(
    request: Request,
    workflow: str,
    _: Viewer,
    week: Annotated[
        str | None, Query(max_length=20, description="2026-W47 or a date in it; default: last")
    ] = None,
    format: Literal["json", "markdown", "html"] = "json",
    charts: Annotated[
        bool,
        Query(
            description="With json: each environment's `charts` as name -> SVG, the memo "
            "`report memo --out DIR` writes (memo.md, memo.html, charts/)"
        ),
    ] = False,
) -> Response:
    from releasegate.monitor.memo import build_memo
    from releasegate.reports.memo import render_html, render_markdown

    built = build_memo(request.app.state.store, workflow, week)
    if format == "markdown":
        return Text(render_markdown(built, chart_dir=None), MARKDOWN)
    if format == "html":
        return Text(render_html(built), HTML)
    if charts:
        return CliDocument({**built, "written": None})
    envs = [{**e, "charts": sorted(e["charts"])} for e in built["environments"]]
    return CliDocument({**built, "environments": envs, "written": None})


@router.get(
    "/v1/workflows/{workflow}/runbook",
    tags=["reports"],
    summary="The runbook (`releasegate report runbook --json`; md or html)",
    responses=_texts(MARKDOWN, HTML),
)
def runbook(
    request: Request, workflow: str, _: Viewer, format: Literal["json", "md", "html"] = "json"
) -> Response:
    from releasegate.monitor.runbook import build_runbook
    from releasegate.reports.runbook import render_html, render_markdown

    built = build_runbook(request.app.state.store, workflow)
    if format == "md":
        return Text(render_markdown(built), MARKDOWN)
    if format == "html":
        return Text(render_html(built), HTML)
    return CliDocument({**built.as_dict(), "written": None})


@router.get(
    "/v1/workflows/{workflow}/handover",
    tags=["reports"],
    summary="The readiness checklist for routine operation "
    "(`releasegate report handover --json`; `ready` false is the CLI's exit 1)",
)
def handover(request: Request, workflow: str, _: Viewer) -> CliDocument:
    from releasegate.release.handover import check

    return CliDocument(check(request.app.state.store, workflow).as_dict())


@router.get(
    "/v1/review",
    tags=["governance"],
    summary="The governance review, nothing fixed (`releasegate review --json`; "
    "`needs_action` is the CLI's exit 1)",
)
def review(
    request: Request,
    _: Viewer,
    workflow: Annotated[str | None, Query(max_length=200)] = None,
    period: Annotated[str | None, Query(max_length=20, description="e.g. 90d")] = None,
) -> CliDocument:
    from releasegate.domain.review import parse_period
    from releasegate.release.review import review as run_review

    found = run_review(request.app.state.store, workflow, period=parse_period(period))
    return CliDocument(found.as_dict())


@router.get(
    "/v1/versions/{a}/diff/{b}",
    tags=["read"],
    summary="What changed from version A to B, and the change class (`releasegate diff --json`)",
)
def diff(request: Request, a: str, b: str, _: Viewer) -> CliDocument:
    from releasegate.release.inspect import diff_versions

    return CliDocument(diff_versions(request.app.state.store, a, b))


@router.get(
    "/v1/workflows/{workflow}/stage",
    tags=["governance"],
    summary="A workflow's stage and a scheduled change (`releasegate stage show --json`)",
)
def stage(request: Request, workflow: str, _: Viewer) -> CliDocument:
    from releasegate.release.stage import show_stage

    return CliDocument(show_stage(request.app.state.store, workflow).as_dict())


@router.get(
    "/v1/workflows/{workflow}/policy",
    tags=["governance"],
    summary="Each environment's policy, its history and proposals "
    "(`releasegate policy show --json`)",
)
def policy(
    request: Request,
    workflow: str,
    _: Viewer,
    env: Annotated[str | None, Query(max_length=100)] = None,
) -> CliDocument:
    from releasegate.release.policy_changes import show

    return CliDocument([s.as_dict() for s in show(request.app.state.store, workflow, env)])
