"""``POST /v1/runs``: production runs as a JSON batch, through the same ingest path as
``releasegate runs import`` (``monitor.ingest.ingest_dicts``, atomic): the same record,
validated by the same parser, and one bad record lands none of the batch (422 naming each
record by its index and field). A re-sent batch lands nothing twice (runs are keyed by
id). Runs of a version that never passed the gate land and are reported in
``outside_gate`` with the alert raised, as the CLI does (it exits 1 there; here it is
still 200: the runs landed)."""

from __future__ import annotations

import zlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from releasegate.domain.access import Identity, Role
from releasegate.domain.untrusted import parse_json
from releasegate.errors import InputError
from releasegate.monitor.ingest import IngestResult, ingest_dicts, ingest_otlp, otlp_from_protobuf
from releasegate.release.store_access import Store
from releasegate.server.access import requires
from releasegate.server.errors import ERROR_RESPONSES, BodyTooLarge, FieldError, ValidationFailed
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
    encoding = request.headers.get("content-encoding")
    if encoding is not None:  # gzip or deflate: inflated within the body limit
        raw = await run_in_threadpool(
            decoded, raw, encoding, request.app.state.settings.max_body_bytes
        )
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


PROTOBUF = frozenset({"application/x-protobuf", "application/protobuf"})
"""Content types of an OTLP/HTTP protobuf body (the first is the OTLP specification's)."""
_WBITS = {"gzip": 31, "x-gzip": 31, "deflate": 15}  # zlib's window bits for each encoding


@router.post(
    "/v1/traces",
    tags=["runs"],
    summary="Land an OTLP/HTTP trace export (protobuf or JSON): spans carrying a version "
    "become runs",
    description="An `ExportTraceServiceRequest` in protobuf (`Content-Type: "
    "application/x-protobuf`, what the OpenTelemetry SDKs' OTLP/HTTP exporters send by "
    "default) or JSON, optionally `Content-Encoding: gzip` (or `deflate`): the path of "
    "`releasegate runs import` for OTLP files, one bad run span lands none. A protobuf "
    "request is answered with an `ExportTraceServiceResponse` in protobuf unless it "
    "accepts `application/json`; a JSON one with the summary of `POST /v1/runs`. "
    "Needs operator.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
)
async def post_traces(
    request: Request, _: Annotated[Identity, Depends(requires(Role.OPERATOR))]
) -> Response:
    raw = await request.body()
    headers = request.headers
    media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    is_protobuf = media in PROTOBUF
    store: Store = request.app.state.store
    limit: int = request.app.state.settings.max_body_bytes
    encoding = headers.get("content-encoding")
    result = await run_in_threadpool(_ingest_otlp, store, raw, encoding, limit, is_protobuf)
    request.app.state.metrics.runs.inc(result.landed)
    if is_protobuf and "application/json" not in headers.get("accept", ""):
        return Response(_export_answer(), media_type="application/x-protobuf")
    return Json(result.as_dict())


def _ingest_otlp(
    store: Store, raw: bytes, encoding: str | None, limit: int, is_protobuf: bool
) -> IngestResult:
    source = "POST /v1/traces"
    body = decoded(raw, encoding, limit)
    if is_protobuf:
        doc: Any = otlp_from_protobuf(body, source)
    else:
        doc = parse_json(body, source)
    if not isinstance(doc, dict):
        raise ValidationFailed(
            "the body must be an OTLP ExportTraceServiceRequest as a JSON object",
            [FieldError(field="body", message="expected an object")],
        )
    result = ingest_otlp(store, doc)
    if result.rejected:
        raise _refused(result, "span(s)", source)
    return result


def decoded(raw: bytes, encoding: str | None, limit: int) -> bytes:
    """The body as sent before its ``Content-Encoding`` (gzip or deflate), inflated at
    most to ``limit`` bytes: a small body that inflates past the server's limit is 413,
    as a large one is."""
    name = (encoding or "identity").strip().lower()
    if name == "identity":
        return raw
    wbits = _WBITS.get(name)
    if wbits is None:
        raise InputError(
            f"Content-Encoding '{name}' is not taken",
            field="Content-Encoding",
            hint="send the body as it is, or gzip or deflate it",
        )
    inflater = zlib.decompressobj(wbits)
    try:
        body = inflater.decompress(raw, limit + 1)
    except zlib.error as exc:
        raise InputError(f"the body is not valid {name} data ({exc})") from None
    if len(body) > limit:
        raise BodyTooLarge(
            f"the request body inflates past the server's limit of {limit:,} bytes; "
            "nothing was written"
        )
    if not inflater.eof:
        raise InputError(f"the {name} body ends before its end marker (cut short?)")
    return body


def _export_answer() -> bytes:
    """An empty ``ExportTraceServiceResponse``: every span was accepted (a rejection is
    the JSON error shape, with the spans at fault)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceResponse,
    )

    return ExportTraceServiceResponse().SerializeToString()
