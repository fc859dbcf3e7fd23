"""The verbs that run for minutes, as jobs: ``compare``, ``rehearse`` and ``rollout
shadow-replay`` (and ``gate`` when it evaluates first, ``loop.py``).

Each checks its request and plans the work with the service (an unknown version, a bad
document, a refusal: answered at once, with nothing written), then answers 202 with the
job's id and its ``Location`` and runs the work in a thread of this process
(``server/jobs.py``). ``GET /v1/jobs/{job_id}`` answers from the job's row on any replica:
``running`` (with the progress this process sees), then ``completed`` with ``result``, the
CLI verb's ``--json`` document, or ``failed`` with ``error``, the server's error shape with
the status the error would have been answered with (``interrupted`` when its process died).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from releasegate.domain.access import Identity, Role
from releasegate.release.compare import judge_plan, plan_compare, read_judge_text
from releasegate.release.evaluate import read_suite_text
from releasegate.release.jobs import job_state
from releasegate.release.rehearse import check_rehearsal, rehearse
from releasegate.release.replay import DEFAULT_LIMIT, plan_replay, run_replay
from releasegate.release.store_access import Store
from releasegate.server.access import requires, sent_policy
from releasegate.server.errors import ERROR_RESPONSES
from releasegate.server.jobs import Jobs, Work
from releasegate.server.routes import CliDocument

router = APIRouter(responses={**ERROR_RESPONSES, 409: {"description": "Refused: the answer is no"}})
Viewer = Annotated[Identity, Depends(requires(Role.VIEWER))]
Builder = Annotated[Identity, Depends(requires(Role.BUILDER))]
Operator = Annotated[Identity, Depends(requires(Role.OPERATOR))]
MAX_TEXT = 16 * 1024 * 1024  # the request body's own limit (--max-body) comes first
ENV = "/v1/workflows/{workflow}/environments/{env}"
ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "Started: `job_id`, `status` running, `location` to poll "
        "(`GET /v1/jobs/{job_id}`)"
    }
}


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CompareBody(_Body):
    baseline: str = Field(min_length=1, max_length=200, description="The version to beat")
    suite: str = Field(
        min_length=1, max_length=MAX_TEXT, description="The suite file's text (`--suite FILE`)"
    )
    source: str = Field("suite.yaml", min_length=1, max_length=500)
    files: dict[str, str] = Field(
        default_factory=dict,
        description="The suite's cases file, by the relative path it names it with -> its text",
    )
    judge: str = Field(
        min_length=1, max_length=MAX_TEXT, description="The judge file's text (`--judge FILE`)"
    )
    judge_source: str = Field("judge.yaml", min_length=1, max_length=500)
    concurrency: int = Field(8, description="Judge calls in flight at once (`--concurrency`)")


class RehearseBody(_Body):
    allow_production: bool = Field(False, description="Rehearse on production too")
    suite_file: str = Field(
        "SUITE_FILE",
        min_length=1,
        max_length=500,
        description="The suite file the proposed `suite add-case` lines name (`--suite`)",
    )


class ReplayBody(_Body):
    candidate: str | None = Field(
        None, max_length=200, description="Replay this version (default: the rollout's)"
    )
    limit: int = Field(DEFAULT_LIMIT, description="The newest N served runs (`--limit`)")
    concurrency: int = Field(8, description="Calls at once (`--concurrency`)")


def accepted(request: Request, kind: str, subject: str, who: Identity, work: Work) -> CliDocument:
    """Start ``work`` as a job and answer 202 with where to poll it."""
    jobs: Jobs = request.app.state.jobs
    job_id = jobs.submit(kind, subject, who.name, work)
    location = f"/v1/jobs/{job_id}"
    doc = {"job_id": job_id, "kind": kind, "status": "running", "location": location}
    return CliDocument(doc, status_code=202, headers={"Location": location})


@router.post(
    "/v1/versions/{candidate}/compare",
    tags=["jobs"],
    status_code=202,
    summary="Judge a candidate against a baseline, both orders (`releasegate compare`; builder)",
    responses=ACCEPTED,
)
def compare(request: Request, candidate: str, body: CompareBody, who: Builder) -> CliDocument:
    store: Store = request.app.state.store
    with sent_policy(request, who) as policy:
        suite = read_suite_text(body.suite, body.source, body.files, policy=policy)
        judge = read_judge_text(body.judge, body.judge_source, policy=policy)
    planned = plan_compare(
        store,
        candidate,
        body.baseline,
        suite,
        judge,
        Path(body.source),
        concurrency=body.concurrency,
    )

    def work(tick: Any) -> Any:
        return judge_plan(store, planned, progress=tick).to_dict()

    return accepted(request, "compare", planned.candidate.version_id, who, work)


@router.post(
    f"{ENV}/rehearse",
    tags=["jobs"],
    status_code=202,
    summary="Rehearse a rollback: gate degraded variants, deploy the worst, roll back "
    "(`releasegate rehearse`; operator)",
    responses=ACCEPTED,
)
def rehearse_env(
    request: Request, workflow: str, env: str, body: RehearseBody, who: Operator
) -> CliDocument:
    store: Store = request.app.state.store
    check_rehearsal(store, workflow, env, allow_production=body.allow_production)

    def work(tick: Any) -> Any:
        done = rehearse(
            store,
            workflow,
            env,
            allow_production=body.allow_production,
            suite_file=body.suite_file,
            who=who.name,
            progress=tick,
        )
        return done.to_dict()

    return accepted(request, "rehearse", f"{workflow}@{env}", who, work)


@router.post(
    f"{ENV}/rollout/shadow-replay",
    tags=["jobs"],
    status_code=202,
    summary="Replay recent production inputs on the candidate, compared paired "
    "(`releasegate rollout shadow-replay`; operator)",
    responses=ACCEPTED,
)
def shadow_replay(
    request: Request, workflow: str, env: str, body: ReplayBody, who: Operator
) -> CliDocument:
    store: Store = request.app.state.store
    planned = plan_replay(
        store,
        workflow,
        env,
        candidate=body.candidate,
        limit=body.limit,
        concurrency=body.concurrency,
    )

    def work(tick: Any) -> Any:
        return run_replay(store, planned, who=who.name, progress=tick).to_dict()

    return accepted(request, "shadow-replay", f"{workflow}@{env}", who, work)


@router.get(
    "/v1/jobs/{job_id}",
    tags=["jobs"],
    summary="A job's status, progress and, once ended, its `--json` document or error (viewer)",
)
def job(request: Request, job_id: str, _: Viewer) -> CliDocument:
    doc = job_state(request.app.state.store, job_id)
    jobs: Jobs = request.app.state.jobs
    seen = jobs.progress(job_id) if doc["status"] == "running" else None
    doc["progress"] = None if seen is None else {"done": seen.done, "total": seen.total}
    return CliDocument(doc)
