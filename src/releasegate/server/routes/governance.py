"""Governance changes over the API, each the CLI verb's ``--json`` document byte for byte
and audited by its service as the token's identity: ``monitor`` with alerts (operator),
``review --fix`` (operator), ``stage set`` (operator), ``policy propose`` (builder) and
``policy approve`` (approver: the token's name signs, nobody approves their own proposal;
a body naming someone else is refused with 422).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from releasegate.domain.access import Identity, Role
from releasegate.server.access import requires
from releasegate.server.errors import ERROR_RESPONSES
from releasegate.server.routes import CliDocument
from releasegate.server.routes.actions import Signed
from releasegate.server.routes.documents import ENV, MonitorBody, monitored

router = APIRouter(responses={**ERROR_RESPONSES, 409: {"description": "Refused: the answer is no"}})
Builder = Annotated[Identity, Depends(requires(Role.BUILDER))]
Operator = Annotated[Identity, Depends(requires(Role.OPERATOR))]
Approver = Annotated[Identity, Depends(requires(Role.APPROVER))]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


@router.post(
    f"{ENV}/monitor",
    tags=["production"],
    summary="Signals of production runs; alerts that fire are recorded and routed "
    "(`releasegate monitor --json`; operator)",
    responses={200: {"content": {"application/json": {}, "text/plain": {}}}},
)
def monitor_alerting(
    request: Request,
    workflow: str,
    env: str,
    body: MonitorBody,
    _: Operator,
    format: Annotated[Literal["json", "prometheus"], Query()] = "json",
) -> Response:
    return monitored(request, workflow, env, body, format)


class ReviewBody(_Body):
    workflow: str | None = Field(None, max_length=200, description="One workflow (default: all)")
    period: str | None = Field(None, max_length=20, description="e.g. 90d (`--period`)")
    fix: bool = Field(True, description="Apply the fixes review can make itself (`--fix`)")


@router.post(
    "/v1/review",
    tags=["governance"],
    summary="The governance review, fixing what it can (`releasegate review --fix --json`; "
    "operator)",
)
def review_fix(request: Request, body: ReviewBody, who: Operator) -> CliDocument:
    from releasegate.domain.review import parse_period
    from releasegate.release.review import review

    found = review(
        request.app.state.store,
        body.workflow,
        period=parse_period(body.period),
        fix=body.fix,
        who=who.name,
    )
    return CliDocument(found.as_dict())


class StageBody(_Body):
    stage: str = Field(min_length=1, max_length=20, description="experiment, pilot or routine")
    date: str | None = Field(None, max_length=20, description="Handover date (default: today)")
    force: bool = Field(False, description="Set routine although the checklist fails")
    reason: str = Field("", max_length=2000, description="Why (needed with force)")


@router.post(
    "/v1/workflows/{workflow}/stage",
    tags=["governance"],
    summary="Set a workflow's stage (`releasegate stage set --json`; operator)",
)
def stage_set(request: Request, workflow: str, body: StageBody, who: Operator) -> CliDocument:
    from releasegate.domain.handover import parse_day
    from releasegate.release.stage import set_stage

    done = set_stage(
        request.app.state.store,
        workflow,
        body.stage,
        handover_date=parse_day(body.date) if body.date is not None else None,
        force=body.force,
        reason=body.reason,
        who=who.name,
    )
    return CliDocument(done.as_dict())


class ProposeBody(_Body):
    floor: list[str] = Field(
        min_length=1, description="Floors to set, METRIC=VALUE each (`--floor`)"
    )
    reason: str = Field(min_length=1, max_length=2000, description="Why: the approver reads it")


@router.post(
    f"{ENV}/policy/proposals",
    tags=["governance"],
    summary="Propose a policy change (`releasegate policy propose --json`; builder)",
)
def policy_propose(
    request: Request, workflow: str, env: str, body: ProposeBody, who: Builder
) -> CliDocument:
    from releasegate.domain.ratchet import parse_floors
    from releasegate.release.policy_changes import propose

    floors = parse_floors(body.floor)
    done = propose(request.app.state.store, workflow, env, floors, reason=body.reason, who=who.name)
    return CliDocument(done.as_dict())


class ProposalApproveBody(Signed):
    note: str = Field("", max_length=2000, description="A note kept with the approval")


@router.post(
    "/v1/policy/proposals/{proposal}/approve",
    tags=["governance"],
    summary="Approve a policy proposal as the token's identity "
    "(`releasegate policy approve --json`; approver)",
)
def policy_approve(
    request: Request, proposal: str, body: ProposalApproveBody, who: Approver
) -> CliDocument:
    from releasegate.release.policy_changes import approve

    done = approve(request.app.state.store, proposal, who=who.name, note=body.note)
    return CliDocument(done.as_dict())
