"""The human review queue over HTTP: the queue and the review log (viewer), a review and
a review made a suite case (operator). Each calls ``release.review_queue`` as the CLI's
``queue`` commands do. A review carries the token's identity: a body naming another
reviewer (``as``, ``reviewer``, ``who``) is refused with 422, and nothing is written. A
case is added to the suite sent with it (``queue case --suite FILE`` through a server) or,
without one, to the workflow's current suite as the store keeps it; either way the
answer's ``appended`` is the case's line for the cases file, which only the suite's
owner appends: the server never reads or writes a file a caller names."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field

from releasegate.domain.access import Identity, Role
from releasegate.domain.review_queue import MAX_PAGE, MAX_TEXT, QueueRules
from releasegate.release.review_queue import (
    SentSuite,
    mark_run,
    review_log,
    review_queue,
    review_to_case,
)
from releasegate.server.access import requires, sent_policy
from releasegate.server.errors import ERROR_RESPONSES
from releasegate.server.routes import Json
from releasegate.server.routes.actions import Signed
from releasegate.server.routes.loop import MAX_TEXT as MAX_SUITE
from releasegate.server.routes.loop import Files

router = APIRouter(responses={**ERROR_RESPONSES, 409: {"description": "Refused: the answer is no"}})
Viewer = Annotated[Identity, Depends(requires(Role.VIEWER))]
Operator = Annotated[Identity, Depends(requires(Role.OPERATOR))]
PERIOD = Query(
    "7d", max_length=40, description="7d (the last 7 days), 2026-W49 (an ISO week) or a date"
)


class ReviewBody(Signed):
    run: str = Field(min_length=1, max_length=256, description="A run id or unique prefix")
    verdict: str = Field(description="good or bad")
    expected: str | None = Field(
        None, max_length=MAX_TEXT, description="The output the run should have given"
    )
    note: str = Field("", max_length=MAX_TEXT, description="A note for the record")


class CaseBody(Signed):
    run: str = Field(min_length=1, max_length=256, description="A run id or unique prefix")
    reason: str = Field("", max_length=2000, description="Why (default: the review)")
    must_pass: bool = Field(False, description="The gate fails if this case fails")
    suite: str | None = Field(
        None,
        max_length=MAX_SUITE,
        description="The suite file's text (`queue case --suite FILE`); without it, the "
        "workflow's current suite file, where the server reads it",
    )
    source: str = Field("suite.yaml", min_length=1, max_length=500)
    files: dict[str, str] = Files


@router.get(
    "/v1/workflows/{workflow}/environments/{env}/queue",
    tags=["review queue"],
    summary="The runs to review over a period, each with why (`releasegate queue list --json`)",
)
def queue(
    request: Request,
    workflow: str,
    env: str,
    _: Viewer,
    period: str = PERIOD,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    after: Annotated[str | None, Query(max_length=400)] = None,
    feedback_below: Annotated[float, Query(gt=-1, le=1)] = 0.0,
    sample: Annotated[float, Query(ge=0, le=1)] = 0.02,
    sample_max: Annotated[int, Query(ge=0, le=100_000)] = 50,
    seed: Annotated[str, Query(max_length=100)] = "releasegate",
) -> Json:
    rules = QueueRules(
        feedback_below=feedback_below, sample_share=sample, sample_max=sample_max, seed=seed
    )
    found = review_queue(
        request.app.state.store,
        workflow,
        env,
        period=period,
        rules=rules,
        limit=limit,
        after=after,
    )
    return Json(found.as_dict())


@router.get(
    "/v1/workflows/{workflow}/environments/{env}/reviews",
    tags=["review queue"],
    summary="The period's reviews with coverage, edit rate, share bad (`queue log --json`)",
)
def reviews(
    request: Request,
    workflow: str,
    env: str,
    _: Viewer,
    period: str = PERIOD,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 50,
) -> Json:
    log = review_log(request.app.state.store, workflow, env, period=period, limit=limit)
    return Json(log.as_dict())


@router.post(
    "/v1/reviews",
    tags=["review queue"],
    summary="Mark a run good or bad as the token's identity (operator; again: an update)",
)
def review(request: Request, body: ReviewBody, who: Operator) -> Json:
    marked = mark_run(
        request.app.state.store,
        body.run,
        body.verdict,
        expected=body.expected,
        note=body.note,
        who=who.name,
        token_id=who.token_id,
    )
    return Json(marked.as_dict())


@router.post(
    "/v1/reviews/case",
    tags=["review queue"],
    summary="Turn your review of a run into a suite case: of the suite sent (`queue case "
    "--suite FILE --json`, plus `appended`) or of the workflow's current suite (operator)",
)
def review_case(request: Request, body: CaseBody, who: Operator) -> Json:
    with sent_policy(request, who) as policy:
        sent = None
        if body.suite is not None:
            sent = SentSuite(body.suite, body.source, body.files, policy)
        made = review_to_case(
            request.app.state.store,
            body.run,
            reviewer=who.name,
            reason=body.reason,
            must_pass=body.must_pass,
            who=who.name,
            sent=sent,
        )
    return Json(made.as_dict())
