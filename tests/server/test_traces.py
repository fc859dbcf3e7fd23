"""``POST /v1/traces`` from the real OpenTelemetry SDK: its OTLP/HTTP exporter sends
protobuf by default (and gzip or deflate when asked) to a real uvicorn on loopback, on
SQLite and PostgreSQL. The protobuf body goes through the JSON path's converter, so the
same spans sent as OTLP/JSON are the same runs (duplicates, not conflicts); bad protobuf
is 400, a bad run span 422, an oversized body 413, each in the one error shape with
nothing written."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from google.protobuf.json_format import MessageToDict
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from releasegate.server.app import Settings, create_app
from releasegate.store.engine import Store
from tests.server.conftest import Live, run_server
from tests.server.test_api import events, is_error


def stored(store: Store) -> list[tuple[Any, ...]]:
    with store.read() as conn:
        rows = conn.execute(
            sa.text("SELECT run_id, status, tokens_in, tokens_out, model FROM runs ORDER BY run_id")
        )
        return [tuple(r) for r in rows]


class App:
    """An application's tracer: every finished span goes to the OTLP/HTTP exporter (in
    batches, as deployed) and is also kept in memory, to send the same spans as JSON."""

    def __init__(
        self,
        live: Live,
        compression: Compression = Compression.NoCompression,
        *,
        exported: bool = True,
    ) -> None:
        self.kept = InMemorySpanExporter()
        self.exporter = OTLPSpanExporter(
            endpoint=f"{live.url}/v1/traces",
            headers={"Authorization": f"Bearer {live.tokens['operator']}"},
            compression=compression,
            timeout=30,
        )
        resource = Resource.create(
            {"service.name": "router-api", "deployment.environment.name": "staging"}
        )
        self.provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        self.provider.add_span_processor(SimpleSpanProcessor(self.kept))
        if exported:  # on force_flush: a run and its GenAI span in one request
            batches = BatchSpanProcessor(self.exporter, schedule_delay_millis=600_000)
            self.provider.add_span_processor(batches)
        self.tracer = self.provider.get_tracer("router-app", "1.0")

    def handle(self, live: Live, i: int, *, failed: bool = False, workflow: bool = True) -> None:
        """One request of the application: a run span with a GenAI chat span beneath."""
        attrs = {"releasegate.version": live.v1, "releasegate.run_id": f"otel-{i:04d}"}
        if workflow:
            attrs["releasegate.workflow"] = "router"
        start = time.time_ns() - 5_000_000_000
        with self.tracer.start_as_current_span(
            "route", start_time=start, end_on_exit=False, attributes=attrs
        ) as run:
            with self.tracer.start_as_current_span(
                "chat", start_time=start + 1000, end_on_exit=False
            ) as chat:
                chat.set_attributes(
                    {
                        "gen_ai.operation.name": "chat",
                        "gen_ai.request.model": "small-router",
                        "gen_ai.usage.input_tokens": 40 + i,
                        "gen_ai.usage.output_tokens": 3,
                    }
                )
                chat.end(end_time=start + 200_000_000)
            if failed:
                run.set_status(Status(StatusCode.ERROR, "upstream timed out"))
            run.end(end_time=start + 250_000_000)

    @property
    def spans(self) -> tuple[ReadableSpan, ...]:
        return self.kept.get_finished_spans()

    def json_payload(self) -> dict[str, Any]:
        body: dict[str, Any] = MessageToDict(encode_spans(self.spans))
        return body


@pytest.fixture
def app_for(live: Live) -> Iterator[Any]:
    made: list[App] = []

    def make(compression: Compression = Compression.NoCompression) -> App:
        made.append(App(live, compression))
        return made[-1]

    yield make
    for app in made:
        app.provider.shutdown()


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_the_sdks_otlp_http_exporter_lands_runs(
    live: Live, app_for: Any, compression: Compression
) -> None:
    app = app_for(compression)
    for i in range(20):
        app.handle(live, i, failed=i == 7)
    assert app.provider.force_flush(30_000)
    runs = stored(live.store)
    assert len(runs) == 20
    assert runs[0] == ("otel-0000", "ok", 40, 3, "small-router")
    assert runs[7] == ("otel-0007", "error", 47, 3, "small-router")
    with live.client("operator") as op:  # the same spans as OTLP/JSON: the same runs
        again = op.post("/v1/traces", json=app.json_payload())
        assert again.status_code == 200, again.text
        assert (again.json()["landed"], again.json()["duplicates"]) == (0, 20)
    assert stored(live.store) == runs


def test_a_protobuf_export_is_answered_in_protobuf_or_json_as_accepted(
    live: Live, app_for: Any
) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceResponse,
    )

    app = app_for()
    app.handle(live, 1)
    body = encode_spans(app.spans).SerializeToString()
    with live.client("operator", **{"Content-Type": "application/x-protobuf"}) as op:
        answer = op.post("/v1/traces", content=body)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/x-protobuf"
        ExportTraceServiceResponse().ParseFromString(answer.content)  # full success
        summary = op.post(
            "/v1/traces",
            content=gzip.compress(body),
            headers={"Accept": "application/json", "Content-Encoding": "gzip"},
        )
        assert summary.status_code == 200, summary.text
        assert (summary.json()["landed"], summary.json()["duplicates"]) == (0, 1)
    assert len(stored(live.store)) == 1


def test_bad_protobuf_and_bad_spans_land_nothing(live: Live, app_for: Any) -> None:
    app = app_for()
    app.handle(live, 1)
    assert app.provider.force_flush(30_000)
    landed = stored(live.store)
    assert len(landed) == 1
    good = encode_spans(app.spans)
    no_workflow = encode_spans(app.spans)
    span = no_workflow.resource_spans[0].scope_spans[0].spans[1]
    assert span.name == "route"
    kept = [kv for kv in span.attributes if kv.key != "releasegate.workflow"]
    del span.attributes[:]
    span.attributes.extend(kept)
    before = events(live)
    with live.client("operator", **{"Content-Type": "application/x-protobuf"}) as op:
        bad = is_error(op.post("/v1/traces", content=b"\x0a\x05ab"), 400, "not an OTLP")
        assert "ExportTraceServiceRequest in protobuf" in bad["error"]
        is_error(op.post("/v1/traces", content=b"{"), 400, "not an OTLP")
        refused = is_error(
            op.post("/v1/traces", content=no_workflow.SerializeToString()),
            422,
            "span(s) rejected, nothing landed",
        )
        assert refused["errors"][0]["field"] == "attributes.releasegate.workflow"
        assert "resourceSpans[0].scopeSpans[0].spans[1]" in refused["error"]
        cut = gzip.compress(good.SerializeToString())[:-12]
        gzipped = {"Content-Encoding": "gzip"}
        is_error(op.post("/v1/traces", content=cut, headers=gzipped), 400, "gzip")
        is_error(
            op.post("/v1/traces", content=b"x", headers={"Content-Encoding": "br"}),
            400,
            "Content-Encoding 'br' is not taken",
        )
    app.handle(live, 2, workflow=False)  # the exporter is told its export failed
    bad_run = next(s for s in app.spans if s.attributes.get("releasegate.run_id") == "otel-0002")
    assert app.exporter.export([bad_run]) == SpanExportResult.FAILURE
    assert stored(live.store) == landed
    assert events(live) == before


def test_an_oversized_or_inflating_body_is_413_and_lands_nothing(live: Live) -> None:
    app = create_app(live.store, Settings(max_body_bytes=10_000, token_ttl=0))
    sender = App(live, exported=False)
    for i in range(60):
        sender.handle(live, i)
    body = encode_spans(sender.spans).SerializeToString()
    sender.provider.shutdown()
    assert len(body) > 10_000
    before = events(live)
    for url in run_server(app):
        headers = {
            "Authorization": f"Bearer {live.tokens['operator']}",
            "Content-Type": "application/x-protobuf",
        }
        is_error(httpx.post(f"{url}/v1/traces", content=body, headers=headers), 413, "10,000")
        packed = gzip.compress(body)
        assert len(packed) < 10_000
        inflating = httpx.post(
            f"{url}/v1/traces", content=packed, headers={**headers, "Content-Encoding": "gzip"}
        )
        is_error(inflating, 413, "inflates past the server's limit of 10,000 bytes")
        bomb = gzip.compress(b"[" + b" " * 5_000_000 + b"]")
        json_headers = {**headers, "Content-Type": "application/json", "Content-Encoding": "gzip"}
        is_error(httpx.post(f"{url}/v1/runs", content=bomb, headers=json_headers), 413)
    assert stored(live.store) == []
    assert events(live) == before
