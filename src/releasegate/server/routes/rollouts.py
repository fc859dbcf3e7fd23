"""Rollouts and gate reports: ``rollout status|advance|abort|check`` as endpoints (the
``--json`` of each), and a stored gate report (``report gate --format json``). A rollout
starts through ``POST /v1/versions/{version}/promote`` with ``canary`` or ``shadow``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from releasegate.domain.access import Identity, Role
from releasegate.release import rollout as rollouts
from releasegate.release.inspect import gate_report
from releasegate.server.access import requires
from releasegate.server.errors import ERROR_RESPONSES
from releasegate.server.routes import CliDocument, Json, Text

router = APIRouter(responses={**ERROR_RESPONSES, 409: {"description": "Refused: the answer is no"}})
Viewer = Annotated[Identity, Depends(requires(Role.VIEWER))]
Operator = Annotated[Identity, Depends(requires(Role.OPERATOR))]
ROLLOUT = "/v1/workflows/{workflow}/environments/{env}/rollout"


class AbortBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field("", max_length=2000)


def _json(
    checked: rollouts.Checked, sent: list[Any] | None = None, where: tuple[str, str] = ("", "")
) -> dict[str, Any]:
    data = rollouts.rollout_dict(checked, *where)
    if sent is not None:
        data["alerts_sent"] = [{"message": a.message, "routed": a.routed} for a in sent]
    return data


@router.get(ROLLOUT, tags=["rollouts"], summary="The newest rollout and its evidence (viewer)")
def status(request: Request, workflow: str, env: str, _: Viewer) -> Json:
    from releasegate.release.pause import paused

    store = request.app.state.store
    data = _json(rollouts.status(store, workflow, env))
    held = paused(store, workflow, env)  # the weights apply only once it is resumed
    return Json({**data, "paused": None if held is None else held.as_dict()})


@router.post(f"{ROLLOUT}/advance", tags=["rollouts"], summary="The next step (operator)")
def advance(request: Request, workflow: str, env: str, who: Operator) -> Json:
    moved = rollouts.advance(request.app.state.store, workflow, env, who=who.name)
    return Json(_json(rollouts.Checked(moved, None, 0)))


@router.post(f"{ROLLOUT}/abort", tags=["rollouts"], summary="Weight 0 now (operator)")
def abort(request: Request, workflow: str, env: str, body: AbortBody, who: Operator) -> Json:
    stopped = rollouts.abort(
        request.app.state.store, workflow, env, who=who.name, reason=body.reason
    )
    return Json(_json(rollouts.Checked(stopped, None, 0)))


@router.post(
    f"{ROLLOUT}/check",
    tags=["rollouts"],
    summary="Compare the arms on the new runs; abort, hold or advance (operator)",
)
def check(request: Request, workflow: str, env: str, who: Operator) -> Json:
    from releasegate.monitor.alerts import resend_due
    from releasegate.monitor.quality import arm_quality

    store = request.app.state.store  # the sampler `rollout check` passes: the same verdict
    checked = rollouts.check(store, workflow, env, who=who.name, quality=arm_quality)
    return Json(_json(checked, resend_due(store, workflow, env), (workflow, env)))


FORMATS = {
    "json": "application/json",
    "markdown": "text/markdown; charset=utf-8",
    "junit": "application/xml",
}
Format = Annotated[
    Literal["json", "markdown", "junit"],
    Query(description="json (`report gate --format json`), markdown or junit"),
]


def _report(report: Any, fmt: str) -> Response:
    """``report gate --format FMT``: the body is what the CLI prints, byte for byte."""
    from releasegate.reports.gate_report import render_junit, render_markdown

    if fmt == "json":
        return CliDocument(report.to_json())
    text = render_markdown(report) if fmt == "markdown" else render_junit(report)
    return Text(text if text.endswith("\n") else text + "\n", FORMATS[fmt])


@router.get(
    "/v1/versions/{version}/gate",
    tags=["read"],
    summary="A version's latest gate report for an environment (viewer)",
    responses={200: {"content": {m: {} for m in FORMATS.values()}}},
)
def version_gate(
    request: Request,
    version: str,
    _: Viewer,
    env: Annotated[str, Query(min_length=1, description="The environment gated for")],
    format: Format = "json",
) -> Response:
    return _report(gate_report(request.app.state.store, version, env), format)


@router.get(
    "/v1/decisions/{decision}",
    tags=["read"],
    summary="A stored gate report by decision id or prefix (`report gate`; viewer)",
    responses={200: {"content": {m: {} for m in FORMATS.values()}}},
)
def decision(request: Request, decision: str, _: Viewer, format: Format = "json") -> Response:
    return _report(gate_report(request.app.state.store, decision), format)
