"""``POST /v1/runs``: production runs as a JSON batch, through the same ingest path as
``releasegate runs import`` (``monitor.ingest.ingest_dicts``, atomic): the same record,
validated by the same parser, and one bad record lands none of the batch (422 naming each
record by its index and field). A re-sent batch lands nothing twice (runs are keyed by
id). Runs of a version that never passed the gate land and are reported in
``outside_gate`` with the alert raised, as the CLI does (it exits 1 there; here it is
still 200: the runs landed)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from releasegate.domain.access import Identity, Role
from releasegate.domain.untrusted import parse_json
from releasegate.monitor.ingest import IngestResult, ingest_dicts
from releasegate.release.store_access import Store
from releasegate.server.access import requires
from releasegate.server.errors import ERROR_RESPONSES, FieldError, ValidationFailed
from releasegate.server.routes import Json

router = APIRouter(responses=ERROR_RESPONSES)
SOURCE = "POST /v1/runs"

EXAMPLE = [
    {
        "run_id": "r-0001",
        "workflow": "support-triage",
        "env": "production",
        "version_id": "3f2a9c...",
        "started_at": "2026-12-01T10:00:00Z",
        "latency_ms": 412,
        "status": "ok",
    }
]


@router.post(
    "/v1/runs",
    tags=["runs"],
    summary="Land a batch of production runs, all or none (`releasegate runs import`)",
    description='A JSON array of run records (or `{"runs": [...]}`), the fields of '
    "docs/production.md. Needs operator.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {"type": "array", "items": {"type": "object"}},
                    "example": EXAMPLE,
                }
            },
        }
    },
)
async def post_runs(
    request: Request,
    _: Annotated[Identity, Depends(requires(Role.OPERATOR))],
    atomic: Annotated[
        bool,
        Query(
            description="false: land the good runs of a batch with bad ones, each rejection "
            "listed in `rejected` (the SDK's rule: one bad value an application set must not "
            "lose the others); true (the default): all or none, as `runs import`"
        ),
    ] = True,
) -> Json:
    # the body is parsed here, by the ingest path's own parser (one parse, depth-limited)
    raw = await request.body()
    store: Store = request.app.state.store
    result = await run_in_threadpool(_ingest, store, raw, atomic)
    request.app.state.metrics.runs.inc(result.landed)
    return Json(result.as_dict())


def _ingest(store: Store, raw: bytes, atomic: bool = True) -> IngestResult:
    doc = parse_json(raw, SOURCE)
    items = doc.get("runs") if isinstance(doc, dict) and set(doc) == {"runs"} else doc
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ValidationFailed(
            'the body must be a JSON array of run objects (or {"runs": [...]})',
            [FieldError(field="body", message="expected an array of objects")],
        )
    result = ingest_dicts(store, items, source="http", atomic=atomic)
    if result.rejected and atomic:
        raise _refused(result, "run record(s)", SOURCE)
    return result


def _refused(result: IngestResult, what: str, source: str) -> ValidationFailed:
    """The 422 of a batch that landed nothing: every rejected record by index and field."""
    shown = result.rejected[:50]
    return ValidationFailed(
        f"{result.rejected_count} {what} rejected, nothing landed: "
        + "; ".join(r.describe(source) for r in shown[:5])
        + (" ..." if result.rejected_count > 5 else ""),
        [FieldError(field=r.field, message=r.reason, index=r.index) for r in shown],
        hint="fix the records named and send the whole batch again",
    )


@router.post(
    "/v1/traces",
    tags=["runs"],
    summary="Land an OTLP/HTTP JSON trace export: spans carrying a version become runs",
    description="An `ExportTraceServiceRequest` as JSON (protobuf is not taken yet): the "
    "path of `releasegate runs import` for OTLP files. Needs operator.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def post_traces(
    request: Request, _: Annotated[Identity, Depends(requires(Role.OPERATOR))]
) -> Json:
    raw = await request.body()
    store: Store = request.app.state.store
    result = await run_in_threadpool(_ingest_otlp, store, raw)
    request.app.state.metrics.runs.inc(result.landed)
    return Json(result.as_dict())


def _ingest_otlp(store: Store, raw: bytes) -> IngestResult:
    from releasegate.monitor.ingest import ingest_otlp

    doc = parse_json(raw, "POST /v1/traces")
    if not isinstance(doc, dict):
        raise ValidationFailed(
            "the body must be an OTLP ExportTraceServiceRequest as a JSON object",
            [FieldError(field="body", message="expected an object")],
        )
    result = ingest_otlp(store, doc)
    if result.rejected:
        raise _refused(result, "span(s)", "POST /v1/traces")
    return result
