"""GET endpoints: health, readiness, metrics, and the views the CLI prints with ``--json``
(workflows, versions, a version, environments, history, resolve, the audit log and its
verification). Each names the lowest role it needs (viewer for all of the views)."""

from __future__ import annotations

import dataclasses
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response, StreamingResponse

from releasegate.domain.access import Identity, Role
from releasegate.release import audit, inspect
from releasegate.release.resolve import Resolver
from releasegate.release.resolve import history as env_history
from releasegate.release.store_access import store_status
from releasegate.server.access import requires
from releasegate.server.errors import ERROR_RESPONSES
from releasegate.server.metrics import CONTENT_TYPE
from releasegate.server.routes import Json

router = APIRouter(responses=ERROR_RESPONSES)
Viewer = Annotated[Identity, Depends(requires(Role.VIEWER))]
STREAM_BLOBS_OVER = 4 << 20
"""``GET /v1/blobs``: a blob up to this size is read and checked whole, a larger one streams."""


# resolve first: routes are matched in order, and it is the hot path
@router.get(
    "/v1/resolve/{workflow}/{env}",
    tags=["read"],
    summary="The version that runs in an environment (`releasegate resolve --json`)",
)
async def resolve(request: Request, workflow: str, env: str, _: Viewer) -> Json:
    resolver: Resolver = request.app.state.resolver
    found = resolver.peek(workflow, env)
    if found is None:
        found = await run_in_threadpool(resolver, workflow, env)
    return Json(found.to_dict())


@router.get("/healthz", tags=["service"], summary="The process answers")
async def healthz() -> Json:
    return Json({"ok": True})


@router.get("/readyz", tags=["service"], summary="The store answers and its schema is current")
def readyz(request: Request) -> Json:
    status = store_status(request.app.state.store)
    body = {"ok": status.ready, **dataclasses.asdict(status)}
    return Json(body, status_code=200 if status.ready else 503)


@router.get("/metrics", tags=["service"], summary="Prometheus text format")
async def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE)


@router.get("/v1/workflows", tags=["read"], summary="Every workflow and what runs where")
def workflows(request: Request, _: Viewer) -> Json:
    return Json(inspect.list_workflows(request.app.state.store))


@router.get("/v1/workflows/{workflow}", tags=["read"], summary="One workflow")
def workflow(request: Request, workflow: str, _: Viewer) -> Json:
    return Json(inspect.show_workflow(request.app.state.store, workflow))


@router.get(
    "/v1/workflows/{workflow}/environments",
    tags=["read"],
    summary="What runs in each environment, paused or not, and rollouts in progress",
)
def environments(request: Request, workflow: str, _: Viewer) -> Json:
    return Json(inspect.show_workflow(request.app.state.store, workflow)["environments"])


@router.get(
    "/v1/workflows/{workflow}/versions",
    tags=["read"],
    summary="A workflow's versions, newest last (`releasegate versions --json`)",
)
def versions(
    request: Request,
    workflow: str,
    _: Viewer,
    track: Annotated[str | None, Query(description="release or experiment")] = None,
) -> Json:
    return Json(inspect.list_versions(request.app.state.store, workflow, track))


@router.get(
    "/v1/versions/{version}",
    tags=["read"],
    summary="One version by id, unique prefix or workflow@env (`releasegate show --json`)",
)
def version(request: Request, version: str, _: Viewer) -> Json:
    return Json(inspect.show_version(request.app.state.store, version))


@router.get(
    "/v1/workflows/{workflow}/environments/{env}/history",
    tags=["read"],
    summary="What ran in an environment (`releasegate history --json`)",
)
def history(request: Request, workflow: str, env: str, _: Viewer) -> Json:
    rows = env_history(request.app.state.store, workflow, env)
    return Json([{"seq": h.seq, **h.as_dict()} for h in rows])


@router.get(
    "/v1/blobs/{digest}",
    tags=["read"],
    summary="A stored blob (a version's prompt or index file) by sha256, checked (`db blob`)",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
def blob(request: Request, digest: str, _: Viewer) -> Response:
    store = request.app.state.store
    size = inspect.blob_size(store, digest)
    name = digest.removeprefix("sha256:").lower()
    headers = {"ETag": f'"sha256:{name}"', "Cache-Control": "private, max-age=31536000, immutable"}
    if size <= STREAM_BLOBS_OVER:  # checked whole: a corrupt one is the error shape
        data = inspect.blob(store, digest)
        return Response(data, media_type="application/octet-stream", headers=headers)
    # larger ones stream a chunk at a time; a corrupt one is cut short of its Content-Length
    # (checked before the last chunk goes out), which every HTTP client reports as an error
    headers["Content-Length"] = str(size)
    chunks = inspect.blob_chunks(store, digest)
    return StreamingResponse(chunks, media_type="application/octet-stream", headers=headers)


@router.get("/v1/audit", tags=["audit"], summary="The audit log (`releasegate audit log --json`)")
def audit_log(
    request: Request,
    _: Viewer,
    workflow: str | None = None,
    limit: Annotated[int | None, Query(ge=1, le=100_000)] = 1000,
) -> Json:
    events = audit.audit_log(request.app.state.store, workflow=workflow, limit=limit)
    return Json([e.to_dict() for e in events])


@router.get(
    "/v1/audit/verify",
    tags=["audit"],
    summary="Verify the chain (`releasegate audit verify --json`); `ok` false when broken",
)
def audit_verify(
    request: Request,
    _: Viewer,
    against: Annotated[
        str | None,
        Query(description="A head exported earlier (SEQ:DIGEST): prove nothing up to it changed"),
    ] = None,
) -> Json:
    from releasegate.domain.audit import parse_head

    exported = parse_head(against, field="against") if against is not None else None
    return Json(audit.audit_verify(request.app.state.store, against=exported).to_dict())
