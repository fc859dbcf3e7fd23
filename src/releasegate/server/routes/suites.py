"""Suites over the API: ``suite add-case`` (builder) and ``suite plan`` (viewer: a read,
sent by POST for its body).

The suite is sent as its text with its cases file in ``files`` (as ``eval`` takes it):
the suite file stays the builder's, on the builder's disk. ``add-case`` checks the case
as the CLI does, registers the grown suite as the workflow's current one (audited as the
token's name) and answers ``suite add-case --json`` plus ``appended``, the line the
caller appends to its cases file so that file and the registered suite stay one.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from releasegate.domain.access import Identity, Role
from releasegate.release.suites import add_case_text, case_input
from releasegate.server.access import requires, sent_policy
from releasegate.server.errors import ERROR_RESPONSES
from releasegate.server.routes import CliDocument
from releasegate.server.routes.loop import MAX_TEXT, Files

router = APIRouter(responses=ERROR_RESPONSES)
Viewer = Annotated[Identity, Depends(requires(Role.VIEWER))]
Builder = Annotated[Identity, Depends(requires(Role.BUILDER))]


class _Suite(BaseModel):
    model_config = ConfigDict(extra="forbid")
    suite: str = Field(min_length=1, max_length=MAX_TEXT, description="The suite file's text")
    source: str = Field("suite.yaml", min_length=1, max_length=500)
    files: dict[str, str] = Files


class AddCaseBody(_Suite):
    reason: str = Field(min_length=1, max_length=2000, description="The incident or bug")
    input: Any = Field(None, description="The case's input (`--input`)")
    from_run: str | None = Field(
        None, max_length=200, description="Take the input from this run (`--from-run`)"
    )
    expected: str | None = Field(None, max_length=100_000, description="The expected output")
    id: str | None = Field(None, max_length=200, description="Case id (default: next)")
    tag: list[str] = Field(default_factory=list, description="Tags (`--tag`, repeated)")
    must_pass: bool = Field(False, description="The gate needs it (`--must-pass`)")


@router.post(
    "/v1/suites/cases",
    tags=["suites"],
    summary="Add a case to a suite: a new suite version, used by the next gate "
    "(`releasegate suite add-case --json`, plus `appended`; builder)",
)
def add_case(request: Request, body: AddCaseBody, who: Builder) -> CliDocument:
    store = request.app.state.store
    value, metadata = case_input(store, body.input, body.from_run)
    with sent_policy(request, who) as policy:
        added, line = add_case_text(
            store,
            body.suite,
            body.source,
            body.files,
            input=value,
            metadata=metadata,
            expected=body.expected,
            case_id=body.id,
            tags=body.tag,
            must_pass=body.must_pass,
            reason=body.reason,
            who=who.name,
            policy=policy,
        )
    return CliDocument({**dataclasses.asdict(added), "appended": line})


class PlanBody(_Suite):
    env: str | None = Field(None, max_length=100, description="Read margin and baseline here")
    baseline: str | None = Field(None, max_length=200, description="Pair against this version")
    margin: float | None = Field(None, description="Override the policy's margin")
    power: float = Field(0.9, description="Chance an equal-quality candidate passes the gate")


@router.post(
    "/v1/versions/{version}/plan",
    tags=["suites"],
    summary="How many cases the policy's margin needs, from a pilot eval already stored "
    "(`releasegate suite plan --json`; viewer: nothing is written)",
)
def plan(request: Request, version: str, body: PlanBody, who: Viewer) -> CliDocument:
    from releasegate.release.evaluate import read_suite_text
    from releasegate.release.plan import plan as run_plan

    with sent_policy(request, who) as policy:
        suite = read_suite_text(body.suite, body.source, body.files, policy=policy)
    outcome = run_plan(
        request.app.state.store,
        version,
        Path(body.source),
        env=body.env,
        baseline_ref=body.baseline,
        margin=body.margin,
        power=body.power,
        suite=suite,
    )
    return CliDocument(outcome.to_dict())
