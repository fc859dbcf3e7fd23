"""Runs from OTLP/HTTP JSON traces, on spans as the real OpenTelemetry SDK emits them:
recorded by an in-memory exporter, encoded by the OTLP exporter's own encoder and
rendered to JSON by protobuf (base64 ids), or with the hex ids the OTLP spec mandates."""

from __future__ import annotations

import base64
import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict  # type: ignore[import-untyped]
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode, Tracer

from releasegate.domain.otlp import OtlpResult, any_value, parse_otlp_json
from releasegate.errors import InputError

VERSION = "ab" * 32
T0 = 1_748_779_140_123_456_789  # 2025-06-01T11:59:00.123456789Z, in nanoseconds
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
RUN = {
    "releasegate.version": VERSION,
    "releasegate.workflow": "support-triage",
}


class Telemetry:
    """An application's tracer, and what its OTLP/HTTP exporter would send."""

    def __init__(self, resource: dict[str, Any]) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(resource=Resource.create(resource), shutdown_on_exit=False)
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer: Tracer = self.provider.get_tracer("support-app", "1.0")

    @property
    def spans(self) -> tuple[ReadableSpan, ...]:
        return self.exporter.get_finished_spans()

    def payload(self) -> dict[str, Any]:
        """The request body, as protobuf's json_format writes it (ids in base64)."""
        body: dict[str, Any] = MessageToDict(encode_spans(self.spans))
        return body

    def span(self, name: str) -> ReadableSpan:
        return next(s for s in self.spans if s.name == name)


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    app = Telemetry({"service.name": "triage-api", "deployment.environment.name": "production"})
    yield app
    app.provider.shutdown()


def hex_ids(payload: dict[str, Any]) -> dict[str, Any]:
    """The same request with ids in hex, as the OTLP/JSON specification mandates."""
    out = copy.deepcopy(payload)
    for resource_spans in out["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return out


def span_hex(span: ReadableSpan) -> str:
    assert span.context is not None
    return f"{span.context.span_id:016x}"


def emit_workflow(tracer: Tracer, **run_attributes: Any) -> None:
    """A workflow span with releasegate attributes and one GenAI chat span under it."""
    with tracer.start_as_current_span(
        "triage", start_time=T0, end_on_exit=False, attributes=RUN | run_attributes
    ) as run:
        with tracer.start_as_current_span(
            "chat gpt-4o-mini",
            start_time=T0 + 1_000_000,
            end_on_exit=False,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
                "gen_ai.usage.input_tokens": 412,
                "gen_ai.usage.output_tokens": 9,
            },
        ) as chat:
            chat.end(end_time=T0 + 801_000_000)
        run.end(end_time=T0 + 845_500_001)


def test_a_workflow_span_with_a_genai_child_is_one_run(telemetry: Telemetry) -> None:
    emit_workflow(
        telemetry.tracer,
        **{
            "releasegate.escalated": True,
            "releasegate.edited": False,
            "releasegate.feedback": -0.5,
            "releasegate.retries": 1,
            "releasegate.label": "billing",
            "releasegate.output": "billing",
            "tenant": "acme",
        },
    )
    result = parse_otlp_json(telemetry.payload(), now=NOW)
    assert result.ok and result.skipped_spans == 0 and result.child_spans == 1
    [run] = result.runs
    root = telemetry.span("triage")
    assert root.context is not None
    assert run.run_id == span_hex(root)
    assert (run.workflow, run.version_id, run.env, run.source) == (
        "support-triage",
        VERSION,
        "production",
        "otlp",
    )
    assert (run.tokens_in, run.tokens_out) == (412, 9)  # summed from the chat span
    assert (run.model, run.provider, run.operation) == (
        "gpt-4o-mini-2024-07-18",
        "openai",
        "chat",
    )
    assert (run.escalated, run.edited, run.feedback, run.retries) == (True, False, -0.5, 1)
    assert (run.label, run.output, run.status, run.failure_reason) == (
        "billing",
        "billing",
        "ok",
        None,
    )
    assert run.started_epoch == T0 / 1e9
    assert run.started_at == datetime(2025, 6, 1, 11, 59, 0, 123457, tzinfo=UTC)
    assert run.latency_ms == 845.500001  # from the nanoseconds, not the rounded seconds
    assert run.attributes == {
        "trace_id": f"{root.context.trace_id:032x}",
        "service.name": "triage-api",
        "tenant": "acme",
    }


def test_hex_ids_per_the_spec_and_base64_ids_from_json_format_agree(
    telemetry: Telemetry,
) -> None:
    emit_workflow(telemetry.tracer)
    payload = telemetry.payload()
    first = payload["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert first["traceId"].endswith("==") and first["startTimeUnixNano"].isdigit()
    from_base64 = parse_otlp_json(payload, now=NOW)
    from_hex = parse_otlp_json(hex_ids(payload), now=NOW)
    assert from_base64.ok and from_hex.ok
    assert from_base64.runs == from_hex.runs
    assert from_hex.runs[0].tokens_in == 412


def test_an_error_status_makes_an_error_run_with_the_message(telemetry: Telemetry) -> None:
    with (
        pytest.raises(TimeoutError),
        telemetry.tracer.start_as_current_span("triage", attributes=RUN),
    ):
        raise TimeoutError("provider did not answer in 30 s")
    result = parse_otlp_json(telemetry.payload(), now=datetime.now(UTC))
    [run] = result.runs
    assert (run.status, run.is_error) == ("error", True)
    assert run.failure_reason == "TimeoutError: provider did not answer in 30 s"


def test_an_error_without_a_message_falls_back_to_error_type(telemetry: Telemetry) -> None:
    with telemetry.tracer.start_as_current_span(
        "triage", attributes=RUN | {"error.type": "rate_limited"}
    ) as span:
        span.set_status(Status(StatusCode.ERROR))
    [run] = parse_otlp_json(telemetry.payload(), now=datetime.now(UTC)).runs
    assert (run.status, run.failure_reason) == ("error", "rate_limited")
    assert "error.type" in run.attributes


def test_spans_outside_any_run_are_skipped_and_counted(telemetry: Telemetry) -> None:
    with (
        telemetry.tracer.start_as_current_span("healthcheck"),
        telemetry.tracer.start_as_current_span("db.query"),
    ):
        pass
    emit_workflow(telemetry.tracer)
    result = parse_otlp_json(telemetry.payload(), now=datetime.now(UTC))
    assert result.ok
    assert (len(result.runs), result.skipped_spans, result.child_spans) == (1, 2, 1)


def test_a_request_without_runs_is_empty_not_an_error(telemetry: Telemetry) -> None:
    with telemetry.tracer.start_as_current_span(
        "chat", attributes={"gen_ai.usage.input_tokens": 3}
    ):
        pass
    result = parse_otlp_json(telemetry.payload(), now=datetime.now(UTC))
    assert result == OtlpResult([], [], skipped_spans=1)
    assert parse_otlp_json({}, now=NOW) == OtlpResult([], [], skipped_spans=0)


def test_a_bad_version_id_rejects_that_run_with_its_path(telemetry: Telemetry) -> None:
    emit_workflow(telemetry.tracer, **{"releasegate.run_id": "good"})
    emit_workflow(telemetry.tracer, **{"releasegate.version": "v2", "releasegate.run_id": "bad"})
    result = parse_otlp_json(telemetry.payload(), now=NOW)
    assert not result.ok
    [bad] = result.rejected
    assert (bad.run_id, bad.field, bad.reason) == (
        "bad",
        "attributes.releasegate.version",
        "expected a 64-hex version id, got 'v2'",
    )
    assert bad.where == "resourceSpans[0].scopeSpans[0].spans[3]" and bad.index == 3
    assert bad.describe("POST /v1/traces") == (
        "POST /v1/traces resourceSpans[0].scopeSpans[0].spans[3] (run bad): field "
        "'attributes.releasegate.version': expected a 64-hex version id, got 'v2'"
    )
    assert [r.run_id for r in result.runs] == ["good"]  # parsed, but the caller lands nothing
    error = result.error("POST /v1/traces")
    assert isinstance(error, InputError) and "1 record(s) rejected" in str(error)


def test_a_run_span_needs_a_workflow_and_an_environment() -> None:
    app = Telemetry({"service.name": "triage-api"})
    with app.tracer.start_as_current_span("a", attributes={"releasegate.version": VERSION}):
        pass
    with app.tracer.start_as_current_span("b", attributes=RUN):
        pass
    with app.tracer.start_as_current_span("c", attributes=RUN | {"releasegate.env": "staging"}):
        pass
    result = parse_otlp_json(app.payload(), now=datetime.now(UTC))
    assert [(r.field, r.reason) for r in result.rejected] == [
        ("attributes.releasegate.workflow", "is required on a run span"),
        (
            "attributes.releasegate.env",
            "is required: set the span attribute releasegate.env or the resource attribute "
            "deployment.environment.name",
        ),
    ]
    assert [r.env for r in result.runs] == ["staging"]
    app.provider.shutdown()


def test_the_older_environment_and_genai_attribute_names_are_read() -> None:
    app = Telemetry({"deployment.environment": "canary"})
    with app.tracer.start_as_current_span("triage", attributes=RUN):
        with app.tracer.start_as_current_span(
            "completion",
            attributes={
                "gen_ai.system": "ollama",
                "gen_ai.request.model": "llama3.2:3b",
                "gen_ai.usage.prompt_tokens": 50,
                "gen_ai.usage.completion_tokens": 7,
            },
        ):
            pass
        with app.tracer.start_as_current_span(
            "completion", attributes={"gen_ai.usage.prompt_tokens": 25}
        ):
            pass
    [run] = parse_otlp_json(app.payload(), now=datetime.now(UTC)).runs
    assert (run.env, run.provider, run.model, run.operation) == (
        "canary",
        "ollama",
        "llama3.2:3b",
        None,
    )
    assert (run.tokens_in, run.tokens_out) == (75, 7)
    app.provider.shutdown()


def test_usage_on_the_run_span_is_not_double_counted(telemetry: Telemetry) -> None:
    emit_workflow(
        telemetry.tracer,
        **{"gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 20},
    )
    [run] = parse_otlp_json(telemetry.payload(), now=NOW).runs
    assert (run.tokens_in, run.tokens_out) == (1000, 20)


def test_nested_genai_spans_count_once_and_disagreeing_models_stay_unknown(
    telemetry: Telemetry,
) -> None:
    tracer = telemetry.tracer
    with tracer.start_as_current_span("triage", attributes=RUN):
        with tracer.start_as_current_span(
            "invoke_agent",
            attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.usage.input_tokens": 30},
        ):
            for model in ("small", "large"):  # the agent's usage already covers these
                with tracer.start_as_current_span(
                    "chat",
                    attributes={"gen_ai.request.model": model, "gen_ai.usage.input_tokens": 15},
                ):
                    pass
        with tracer.start_as_current_span("tool", attributes={"gen_ai.usage.output_tokens": 4}):
            pass
    [run] = parse_otlp_json(telemetry.payload(), now=datetime.now(UTC)).runs
    assert (run.tokens_in, run.tokens_out) == (30, 4)
    assert run.model is None and run.operation == "invoke_agent"


def test_a_bad_token_count_on_a_child_names_the_child(telemetry: Telemetry) -> None:
    emit_workflow(telemetry.tracer)
    payload = telemetry.payload()
    chat = payload["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert chat["name"].startswith("chat")
    chat["attributes"][4]["value"] = {"intValue": "lots"}
    [bad] = parse_otlp_json(payload, now=NOW).rejected
    assert bad.field == (
        "resourceSpans[0].scopeSpans[0].spans[0].attributes.gen_ai.usage.input_tokens"
    )
    assert bad.reason == "intValue 'lots' is not a valid intValue"


def test_clock_skew_and_reversed_times_are_rejected(telemetry: Telemetry) -> None:
    emit_workflow(telemetry.tracer)
    payload = hex_ids(telemetry.payload())
    [skewed] = parse_otlp_json(payload, now=NOW - timedelta(hours=1)).rejected
    assert skewed.field == "startTimeUnixNano"
    assert skewed.reason.startswith("is 59 min ahead of the receiving clock (tolerance 5 min)")

    root = payload["resourceSpans"][0]["scopeSpans"][0]["spans"][1]
    root["endTimeUnixNano"] = str(T0 - 2_000_000)
    [reversed_] = parse_otlp_json(payload, now=NOW).rejected
    assert (reversed_.field, reversed_.reason) == (
        "endTimeUnixNano",
        "is 2 ms before startTimeUnixNano",
    )


def handmade(span: dict[str, Any], resource: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An OTLP/JSON request as a non-Python SDK might write it."""
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": resource or []},
                "scopeSpans": [{"scope": {"name": "x"}, "spans": [span]}],
            }
        ]
    }


def attribute(key: str, **value: Any) -> dict[str, Any]:
    return {"key": key, "value": value}


def handmade_run(**changes: Any) -> dict[str, Any]:
    span = {
        "traceId": "5B8EFFF798038103D269B633813FC60C",
        "spanId": "EEE19B7EC3C1B174",
        "name": "triage",
        "startTimeUnixNano": T0,
        "endTimeUnixNano": str(T0 + 1_500_000),
        "attributes": [
            attribute("releasegate.version", stringValue=VERSION),
            attribute("releasegate.workflow", stringValue="support-triage"),
            attribute("releasegate.env", stringValue="production"),
            attribute("releasegate.retries", intValue=2),
            attribute("releasegate.cost_usd", doubleValue=0.002),
            attribute("gen_ai.usage.input_tokens", intValue="12"),
        ],
        "status": {"code": 2, "message": "schema validation failed"},
    }
    span.update(changes)
    return span


def test_nanosecond_times_as_numbers_or_strings_and_numeric_status_codes() -> None:
    [run] = parse_otlp_json(handmade(handmade_run()), now=NOW).runs
    assert run.run_id == "eee19b7ec3c1b174"  # hex ids are case-insensitive, stored lowercase
    assert run.latency_ms == 1.5
    assert run.started_epoch == T0 / 1e9 and run.ended_epoch == (T0 + 1_500_000) / 1e9
    assert (run.status, run.failure_reason) == ("error", "schema validation failed")
    assert (run.retries, run.cost_usd, run.tokens_in, run.tokens_out) == (2, 0.002, 12, 0)
    assert run.attributes["trace_id"] == "5b8efff798038103d269b633813fc60c"


@pytest.mark.parametrize(
    ("changes", "field", "reason"),
    [
        ({"startTimeUnixNano": "0"}, "startTimeUnixNano", "is required (nanoseconds since 1970)"),
        ({"endTimeUnixNano": None}, "endTimeUnixNano", "is required (nanoseconds since 1970)"),
        (
            {"startTimeUnixNano": "soon"},
            "startTimeUnixNano",
            "expected nanoseconds since 1970 as an integer, got 'soon'",
        ),
        ({"spanId": "xyz"}, "spanId", "expected a 8-byte id as 16 hex digits or base64"),
        ({"traceId": "0" * 32}, "traceId", "expected a 16-byte id as 32 hex digits or base64"),
        ({"status": {"code": 7}}, "status.code", "expected a StatusCode (0, 1, 2), got 7"),
        (
            {"status": {"code": "STATUS_CODE_ERROR"}},
            None,
            None,
        ),
    ],
)
def test_bad_span_fields_are_named(changes: dict[str, Any], field: str, reason: str) -> None:
    result = parse_otlp_json(handmade(handmade_run(**changes)), now=NOW)
    if field is None:
        assert result.runs[0].failure_reason == "span status is ERROR (no message)"
        return
    [bad] = result.rejected
    assert bad.field == field
    assert bad.reason.startswith(reason)


def test_an_error_without_message_or_type_uses_the_exception_event() -> None:
    span = handmade_run(status={"code": "STATUS_CODE_ERROR"})
    span["events"] = [
        {
            "name": "exception",
            "timeUnixNano": str(T0 + 10),
            "attributes": [
                attribute("exception.type", stringValue="KeyError"),
                attribute("exception.message", stringValue="'intent'"),
            ],
        }
    ]
    [run] = parse_otlp_json(handmade(span), now=NOW).runs
    assert run.failure_reason == "KeyError: 'intent'"


def test_a_bad_attribute_value_on_a_run_span_is_named() -> None:
    span = handmade_run()
    span["attributes"][3] = attribute("releasegate.retries", doubleValue=1.5)
    span["attributes"].append(attribute("unrelated", intValue="not a number"))
    [bad] = parse_otlp_json(handmade(span), now=NOW).rejected
    assert (bad.field, bad.reason) == (
        "attributes.releasegate.retries",
        "expected an integer >= 0, got 1.5",
    )
    span["attributes"][3] = attribute("releasegate.retries", intValue="x")
    [bad] = parse_otlp_json(handmade(span), now=NOW).rejected
    assert (bad.field, bad.reason) == (
        "attributes.releasegate.retries",
        "intValue 'x' is not a valid intValue",
    )


def test_the_same_span_sent_twice_in_one_request_counts_once() -> None:
    payload = handmade(handmade_run())
    payload["resourceSpans"].append(copy.deepcopy(payload["resourceSpans"][0]))
    result = parse_otlp_json(payload, now=NOW)
    assert result.ok and len(result.runs) == 1 and result.duplicates == 1


def test_one_span_id_with_two_contents_is_rejected() -> None:
    other = handmade_run(endTimeUnixNano=str(T0 + 9_000_000))
    payload = handmade(handmade_run())
    payload["resourceSpans"][0]["scopeSpans"][0]["spans"].append(other)
    result = parse_otlp_json(payload, now=NOW)
    [bad] = result.rejected
    assert (bad.index, bad.field, bad.run_id) == (1, "run_id", "eee19b7ec3c1b174")
    assert bad.reason == (
        "already used by the span at resourceSpans[0].scopeSpans[0].spans[0] with different content"
    )


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ([], None),
        ({"resourceSpans": {}}, "resourceSpans"),
        (
            {"resourceSpans": [{"scopeSpans": [{"spans": [1]}]}]},
            "resourceSpans[0].scopeSpans[0].spans[0]",
        ),
    ],
)
def test_a_request_that_is_not_otlp_is_an_input_error(payload: Any, field: str | None) -> None:
    with pytest.raises(InputError) as caught:
        parse_otlp_json(payload, now=NOW)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"stringValue": "x"}, "x"),
        ({"intValue": "-12"}, -12),
        ({"intValue": 7}, 7),
        ({"doubleValue": 1}, 1.0),
        ({"doubleValue": "Infinity"}, float("inf")),
        ({"boolValue": False}, False),
        ({"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "1"}]}}, ["a", 1]),
        ({"arrayValue": {}}, []),
        ({"kvlistValue": {"values": [{"key": "k", "value": {"boolValue": True}}]}}, {"k": True}),
        ({"bytesValue": "AAE="}, "AAE="),
        ({}, None),
        (None, None),
    ],
)
def test_any_values_decode(value: Any, expected: Any) -> None:
    assert any_value(value) == expected


@pytest.mark.parametrize(
    "value",
    [{"intValue": "1.5"}, {"boolValue": "true"}, {"stringValue": 3}, {"a": 1, "b": 2}, 5],
)
def test_malformed_any_values_raise(value: Any) -> None:
    with pytest.raises(ValueError, match="is not a valid|expected an AnyValue"):
        any_value(value)


def test_an_attribute_with_a_lone_surrogate_rejects_its_run_naming_the_attribute() -> None:
    lone = "\ud83d"  # an OTLP/JSON "\ud83d": half of a UTF-16 pair, which no hash or db takes
    cases = [
        ("releasegate.input", "attributes.releasegate.input"),
        ("http.route", "attributes.http.route"),
    ]
    for key, field in cases:
        span = handmade_run()
        span["attributes"].append(attribute(key, stringValue="/triage" + lone))
        [bad] = parse_otlp_json(handmade(span), now=NOW).rejected
        assert (bad.field, bad.where) == (field, "resourceSpans[0].scopeSpans[0].spans[0]")
        assert bad.reason.startswith("not valid UTF-8 text: lone surrogate '\\ud83d'")
        assert bad.run_id == "eee19b7ec3c1b174"
    service = [attribute("service.name", stringValue="triage" + lone)]
    [bad] = parse_otlp_json(handmade(handmade_run(), service), now=NOW).rejected
    assert bad.field == "resource.attributes.service.name"


def test_a_run_id_attribute_with_a_lone_surrogate_is_reported_escaped() -> None:
    span = handmade_run()
    span["attributes"].append(attribute("releasegate.run_id", stringValue="r-\ud83d"))
    result = parse_otlp_json(handmade(span), now=NOW)
    [bad] = result.rejected
    assert (bad.run_id, bad.field) == ("r-\\ud83d", "attributes.releasegate.run_id")
    error = result.error("POST /v1/traces")
    assert error is not None and str(error).encode("utf-8")  # printable, sendable


def test_digits_that_are_not_ascii_are_a_rejection_not_a_crash() -> None:
    result = parse_otlp_json(handmade(handmade_run(startTimeUnixNano="²")), now=NOW)
    [bad] = result.rejected
    assert (bad.field, bad.reason) == (
        "startTimeUnixNano",
        "expected nanoseconds since 1970 as an integer, got '²'",
    )
    with pytest.raises(ValueError, match="is not a valid intValue"):
        any_value({"intValue": "١٢"})  # Arabic-Indic digits: int() would read them as 12
