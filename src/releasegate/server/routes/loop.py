"""The builder's verbs: ``register`` (and ``register --check``), ``eval`` and ``gate``.

Each answers with the CLI verb's ``--json`` document, byte for byte (``CliDocument``).
A workflow or suite document is sent as its text, with the files it names in ``files``
(relative path -> text): the server reads nothing from its own disk for a caller, and
parses with the CLI's loader and limits, so a bad document is 422 naming the field, with
nothing written. An eval can take minutes: ``POST .../evals`` answers 202 with the eval
id and its ``Location`` once the eval is checked and recorded as running, and runs it in
a thread of this process (``server/jobs.py``); ``GET /v1/evals/{eval_id}`` answers from
the eval's row on any replica, with the result once completed. A gate decides at once
from stored evals (200, the decision); when it must evaluate the baseline on the current
suite first, it answers 202 with a job instead (``routes/jobs.py``), polled like an eval.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from releasegate.domain.access import Identity, Role
from releasegate.release.evaluate import (
    check_options,
    eval_status,
    find_suite_version,
    read_suite_text,
    start_evaluation,
    suite_for,
)
from releasegate.release.gate import evaluates_first
from releasegate.release.gate import gate as run_gate
from releasegate.release.register import check_spec, read_workflow_text, register_spec
from releasegate.release.store_access import Store
from releasegate.server.access import requires, sent_policy
from releasegate.server.errors import ERROR_RESPONSES
from releasegate.server.routes import CliDocument
from releasegate.server.routes.jobs import accepted

router = APIRouter(responses={**ERROR_RESPONSES, 409: {"description": "Refused: the answer is no"}})
Viewer = Annotated[Identity, Depends(requires(Role.VIEWER))]
Builder = Annotated[Identity, Depends(requires(Role.BUILDER))]
MAX_TEXT = 16 * 1024 * 1024  # the request body's own limit (--max-body) comes first


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


Files: Any = Field(
    default_factory=dict,
    description="The files the document names (prompts, cases, a blessed-models list), "
    "by the relative path it names them with -> their text",
)


class RegisterBody(_Body):
    document: str = Field(
        min_length=1,
        max_length=MAX_TEXT,
        description="The workflow file's text (YAML or JSON), as `register FILE` reads it",
    )
    source: str = Field(
        "workflow.yaml",
        min_length=1,
        max_length=500,
        description="The file's name, for messages and `register --check --json`'s `file`",
    )
    files: dict[str, str] = Files
    reason: str = Field("", max_length=2000, description="Why this change (`--reason`)")
    owner: str | None = Field(None, max_length=200, description="Owner of the change")
    parent: str | None = Field(None, max_length=200, description="Parent version")
    experiment: bool = Field(False, description="Track as an experiment (`--experiment`)")
    source_commit: str | None = Field(
        None, max_length=100, description="The commit the file comes from (read from git locally)"
    )
    model_digest: str | None = Field(
        None,
        pattern=r"^sha256:[0-9a-f]{64}$",
        description="The sha256 of the GGUF file `model.file` names, hashed by the sender "
        "(the file is never read here): the version is pinned by it, as a local register would",
    )
    model_file: str | None = Field(
        None,
        max_length=1000,
        description="Where that GGUF file is on the sender's machine: recorded, never read",
    )


class EvalBody(_Body):
    suite: str | None = Field(
        None,
        max_length=MAX_TEXT,
        description="The suite file's text (`--suite FILE`); without it (and `suite_id`), "
        "the workflow's current suite",
    )
    suite_id: str | None = Field(None, max_length=64, description="A stored suite, by its id")
    source: str = Field("suite.yaml", min_length=1, max_length=500)
    files: dict[str, str] = Files
    epochs: int = Field(1, description="Samples per case (`--epochs`)")
    concurrency: int = Field(8, description="Cases in flight at once (`--concurrency`)")
    no_cache: bool = Field(False, description="Call the model again (`--no-cache`)")


class GateBody(_Body):
    env: str = Field(min_length=1, max_length=100, description="The environment gated for")


@router.post(
    "/v1/versions",
    tags=["loop"],
    summary="Register a workflow document (`releasegate register --json`; builder)",
    responses={200: {"description": "`register --json`, or `register --check --json`"}},
)
def register(
    request: Request,
    body: RegisterBody,
    who: Builder,
    check: Annotated[
        bool, Query(description="Only validate and answer the id; write nothing (`--check`)")
    ] = False,
) -> CliDocument:
    with sent_policy(request, who) as policy:
        spec = read_workflow_text(
            body.document, body.source, body.files, policy=policy, model_digest=body.model_digest
        )
    if check:
        return CliDocument(check_spec(spec, body.source))
    done = register_spec(
        request.app.state.store,
        spec,
        reason=body.reason,
        owner=body.owner,
        parent=body.parent,
        experiment=body.experiment,
        who=who.name,
        source_commit=body.source_commit,
        sent_model_file=(body.model_file or spec.model_file) if body.model_digest else None,
    )
    return CliDocument(done)


@router.post(
    "/v1/versions/{version}/evals",
    tags=["loop"],
    status_code=202,
    summary="Start evaluating a version on a suite (`releasegate eval`; builder)",
    responses={202: {"description": "Started: `eval_id`, `status`, `location` to poll"}},
)
def start_eval(request: Request, version: str, body: EvalBody, who: Builder) -> CliDocument:
    store: Store = request.app.state.store
    check_options(body.epochs, body.concurrency)
    if body.suite is not None:
        with sent_policy(request, who) as policy:
            suite = read_suite_text(body.suite, body.source, body.files, policy=policy)
    else:
        suite = suite_for(store, version, body.suite_id)
    with store.read() as conn:
        target = find_suite_version(conn, version, suite, Path(body.source))
    started = start_evaluation(
        store,
        target,
        suite,
        epochs=body.epochs,
        concurrency=body.concurrency,
        use_cache=not body.no_cache,
        who=who.name,
    )
    request.app.state.evals.submit(started)
    location = f"/v1/evals/{started.eval_id}"
    doc = {
        "eval_id": started.eval_id,
        "version_id": target.version_id,
        "suite_id": suite.suite_id,
        "suite_changed": started.suite_changed,
        "status": "running",
        "location": location,
    }
    return CliDocument(doc, status_code=202, headers={"Location": location})


@router.get(
    "/v1/evals/{eval_id}",
    tags=["loop"],
    summary="An eval's status, progress and, once completed, its `eval --json` (viewer)",
)
def eval_state(request: Request, eval_id: str, _: Viewer) -> CliDocument:
    doc = eval_status(request.app.state.store, eval_id)
    seen = request.app.state.evals.progress(eval_id) if doc["status"] == "running" else None
    doc["progress"] = None if seen is None else {"done": seen.done, "total": seen.total}
    return CliDocument(doc)


@router.post(
    "/v1/versions/{version}/gate",
    tags=["loop"],
    summary="Decide pass / fail / hold / needs-approval (`releasegate gate --json`; builder)",
    responses={
        200: {"description": "The decision, whatever it is: `passed` false is the CLI's exit 1"},
        202: {
            "description": "The baseline must be evaluated first: a job (`job_id`, "
            "`location`); `GET /v1/jobs/{job_id}` has the decision once it is made"
        },
    },
)
def gate(request: Request, version: str, body: GateBody, who: Builder) -> CliDocument:
    store: Store = request.app.state.store
    if evaluates_first(store, version, body.env):  # minutes: a job, polled

        def work(tick: Any) -> Any:
            outcome = run_gate(store, version, body.env, who=who.name, progress=tick)
            return {**outcome.report.to_json(), "report_path": None}

        return accepted(request, "gate", version, who, work)
    outcome = run_gate(store, version, body.env, who=who.name)
    return CliDocument({**outcome.report.to_json(), "report_path": None})
