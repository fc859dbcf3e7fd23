"""Runs from OpenTelemetry traces: an OTLP/HTTP JSON ExportTraceServiceRequest.

A span carrying ``releasegate.version`` is one run. Its other fields come from
``releasegate.*`` span attributes, the span's own times and status, and the GenAI
semantic conventions (``gen_ai.*``); what the run span lacks (token usage, model,
provider, operation) is taken from the GenAI spans beneath it in the same request.
Every run then goes through the same rules as a JSONL record (``runs.build_run``),
so a bad one is rejected with the span's path and the OTLP field at fault. Spans
that neither are runs nor sit under one are skipped and counted.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from releasegate.domain.document import type_name
from releasegate.domain.nesting import MAX_DEPTH
from releasegate.domain.runs import (
    DEFAULT_MAX_SKEW,
    RecordError,
    Rejection,
    RunRecord,
    build_run,
    drop_repeats,
    epoch_of,
    rejection_error,
    shown_run_id,
)
from releasegate.errors import InputError

VERSION = "releasegate.version"
# record field -> the span attribute that carries it
ATTRIBUTES = {
    "workflow": "releasegate.workflow",
    "env": "releasegate.env",
    "run_id": "releasegate.run_id",
    "escalated": "releasegate.escalated",
    "edited": "releasegate.edited",
    "feedback": "releasegate.feedback",
    "retries": "releasegate.retries",
    "label": "releasegate.label",
    "cost_usd": "releasegate.cost_usd",
    "failure_reason": "releasegate.failure_reason",
    "input": "releasegate.input",
    "output": "releasegate.output",
}
# record field -> GenAI semconv attributes, preferred first (older names last)
GEN_AI = {
    "model": ("gen_ai.response.model", "gen_ai.request.model"),
    "provider": ("gen_ai.provider.name", "gen_ai.system"),
    "operation": ("gen_ai.operation.name",),
    "tokens_in": ("gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens"),
    "tokens_out": ("gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens"),
}
FALLBACK_TEXT = {"input": "gen_ai.input.messages", "output": "gen_ai.output.messages"}
ENV_RESOURCE = ("deployment.environment.name", "deployment.environment")
_CONSUMED = frozenset(
    [VERSION, *ATTRIBUTES.values(), *FALLBACK_TEXT.values()]
    + [key for keys in GEN_AI.values() for key in keys]
)
_GEN_AI_KEYS = frozenset(key for keys in GEN_AI.values() for key in keys)
_USAGE = GEN_AI["tokens_in"] + GEN_AI["tokens_out"]
_ERROR_CODES = (2, "STATUS_CODE_ERROR")
_OK_CODES = (None, 0, 1, "STATUS_CODE_UNSET", "STATUS_CODE_OK")


@dataclass(frozen=True, slots=True)
class OtlpResult:
    """Runs found in one request; callers land nothing unless ``ok``."""

    runs: list[RunRecord]
    rejected: list[Rejection]
    skipped_spans: int  # neither a run nor under one
    child_spans: int = 0  # spans under a run, folded into it
    duplicates: int = 0
    rejected_count: int = 0

    @property
    def ok(self) -> bool:
        return not self.rejected

    def error(self, source: str = "") -> InputError | None:
        return rejection_error(self.rejected, self.rejected_count, source)


@dataclass(slots=True, eq=False)
class _Span:
    index: int
    path: str
    trace_id: str | None
    span_id: str | None
    parent_id: str | None
    raw: Mapping[str, Any]
    attrs: dict[str, Any]
    resource: dict[str, Any]
    errors: dict[str, str]  # attribute key -> why its value could not be decoded
    resource_errors: dict[str, str]

    def check(self, keys: frozenset[str] | tuple[str, ...], prefix: str = "") -> None:
        """Fail on the first undecodable attribute among ``keys`` (others are dropped)."""
        for key, reason in self.errors.items():
            if key in keys:
                raise RecordError(f"{prefix}attributes.{key}", reason)

    @property
    def is_run(self) -> bool:
        return VERSION in self.attrs or VERSION in self.errors

    @property
    def has_usage(self) -> bool:
        return any(key in self.attrs for key in _USAGE)


_Index = dict[tuple[str | None, str | None], "_Span"]


def parse_otlp_json(
    payload: Any,
    *,
    now: datetime,
    max_skew: timedelta = DEFAULT_MAX_SKEW,
    max_rejections: int = 1000,
) -> OtlpResult:
    """Runs from an ExportTraceServiceRequest in OTLP/JSON (lowerCamelCase field names;
    trace and span ids as hex, or as base64 as protobuf's json_format writes them).
    A request whose structure is not OTLP raises InputError; bad runs are rejections."""
    spans = _spans(payload)
    by_id: _Index = {(s.trace_id, s.span_id): s for s in spans if s.trace_id and s.span_id}
    runs = [s for s in spans if s.is_run]
    children: dict[int, list[tuple[_Span, bool]]] = {id(r): [] for r in runs}
    skipped = 0
    for span in spans:
        if span.is_run:
            continue
        owner, shadowed = _owner(span, by_id)
        if owner is None:
            skipped += 1
        else:
            children[id(owner)].append((span, shadowed))

    now_s, skew_s = epoch_of(now), max_skew.total_seconds()
    accepted: list[RunRecord] = []
    spots: list[_Span] = []
    rejected: list[Rejection] = []
    count = 0
    for span in runs:
        origin: dict[str, str] = {}
        try:
            record = _record(span, children[id(span)], origin)
            accepted.append(build_run(record, now_s, skew_s, "otlp"))
            spots.append(span)
        except RecordError as bad:
            count += 1
            if len(rejected) < max_rejections:
                field = origin.get(bad.field, bad.field) if bad.field else None
                run_id = shown_run_id(span.attrs.get(ATTRIBUTES["run_id"])) or span.span_id
                rejected.append(Rejection(span.index, None, run_id, field, bad.reason, span.path))

    def conflict(at: _Span, run: RunRecord, first: _Span) -> Rejection:
        reason = f"already used by the span at {first.path} with different content"
        return Rejection(at.index, None, run.run_id, "run_id", reason, at.path)

    kept, repeats, conflicts = drop_repeats(accepted, spots, conflict)
    if conflicts:
        count += len(conflicts)
        rejected = sorted(rejected + conflicts, key=lambda r: r.index)[:max_rejections]
    folded = sum(len(c) for c in children.values())
    return OtlpResult(kept, rejected, skipped, folded, repeats, count)


def _owner(
    span: _Span, by_id: dict[tuple[str | None, str | None], _Span]
) -> tuple[_Span | None, bool]:
    """The nearest run span above ``span`` in this request, and whether a span between
    them already reports token usage (then ``span``'s usage is part of that one's)."""
    shadowed = False
    current = span
    for _ in range(256):  # a parent chain that loops is not followed forever
        if current.parent_id is None:
            return None, False
        parent = by_id.get((current.trace_id, current.parent_id))
        if parent is None:
            return None, False
        if parent.is_run:
            return parent, shadowed
        shadowed = shadowed or parent.has_usage
        current = parent
    return None, False


def _record(
    span: _Span, children: list[tuple[_Span, bool]], origin: dict[str, str]
) -> dict[str, Any]:
    """The run span as a plain run record, noting in ``origin`` which OTLP field gave what."""
    span.check(_CONSUMED)
    attrs, raw = span.attrs, span.raw
    if span.trace_id is None:
        raise RecordError("traceId", _bad_id(raw.get("traceId"), 16))
    if span.span_id is None:
        raise RecordError("spanId", _bad_id(raw.get("spanId"), 8))
    record: dict[str, Any] = {"version_id": attrs.get(VERSION)}
    origin["version_id"] = f"attributes.{VERSION}"
    for name, key in ATTRIBUTES.items():
        if key in attrs:
            record[name] = attrs[key]
            origin[name] = f"attributes.{key}"
    for name, keys in GEN_AI.items():
        for key in keys:
            if key in attrs:
                record[name] = attrs[key]
                origin[name] = f"attributes.{key}"
                break
    for name, key in FALLBACK_TEXT.items():
        if name not in record and key in attrs:
            record[name] = attrs[key]
            origin[name] = f"attributes.{key}"
    if "workflow" not in record:
        raise RecordError(f"attributes.{ATTRIBUTES['workflow']}", "is required on a run span")
    if "env" not in record:
        found = next((k for k in ENV_RESOURCE if k in span.resource), None)
        bad = next((k for k in ENV_RESOURCE if k in span.resource_errors), None)
        if found is None and bad is not None:
            raise RecordError(f"resource.attributes.{bad}", span.resource_errors[bad])
        if found is None:
            raise RecordError(
                f"attributes.{ATTRIBUTES['env']}",
                "is required: set the span attribute releasegate.env or the resource "
                "attribute deployment.environment.name",
            )
        record["env"] = span.resource[found]
        origin["env"] = f"resource.attributes.{found}"
    if "run_id" not in record:
        record["run_id"] = span.span_id
    if type(record["run_id"]) is int:
        record["run_id"] = str(record["run_id"])

    start, end = _nanos(raw, "startTimeUnixNano"), _nanos(raw, "endTimeUnixNano")
    if end < start:
        raise RecordError(
            "endTimeUnixNano", f"is {(start - end) / 1e6:g} ms before startTimeUnixNano"
        )
    record["started_at"], record["ended_at"] = start / 1e9, end / 1e9
    record["latency_ms"] = (end - start) / 1e6
    origin.update(started_at="startTimeUnixNano", ended_at="endTimeUnixNano")
    origin["latency_ms"] = "endTimeUnixNano"
    _status(span, record, origin)
    _fold_children(record, children, origin)

    extra: dict[str, Any] = {"trace_id": span.trace_id}
    if "service.name" in span.resource:
        extra["service.name"] = span.resource["service.name"]
        origin["attributes.service.name"] = "resource.attributes.service.name"
    for key, value in attrs.items():
        if key in _CONSUMED or isinstance(value, list | dict):
            continue
        if not isinstance(value, float) or math.isfinite(value):
            extra[key] = value
    record["attributes"] = extra
    return record


def _status(span: _Span, record: dict[str, Any], origin: dict[str, str]) -> None:
    status = span.raw.get("status") or {}
    if not isinstance(status, Mapping):
        raise RecordError("status", f"expected an object, got {type_name(status)}")
    code = status.get("code")
    if code in _ERROR_CODES:
        record["status"] = "error"
        if "failure_reason" not in record:
            record["failure_reason"] = _failure_reason(span, status)
            origin["failure_reason"] = "status.message"
    elif code in _OK_CODES:
        record["status"] = "ok"
    else:
        raise RecordError("status.code", f"expected a StatusCode (0, 1, 2), got {code!r}")


def _failure_reason(span: _Span, status: Mapping[str, Any]) -> str:
    message = status.get("message")
    if isinstance(message, str) and message:
        return message
    error_type = span.attrs.get("error.type")
    if isinstance(error_type, str) and error_type:
        return error_type
    events = span.raw.get("events")
    for event in events if isinstance(events, list) else ():
        if isinstance(event, Mapping) and event.get("name") == "exception":
            attrs, _ = _attributes(event.get("attributes"))
            kind, text = attrs.get("exception.type"), attrs.get("exception.message")
            found = ": ".join(str(x) for x in (kind, text) if x)
            if found:
                return found
    return "span status is ERROR (no message)"


def _fold_children(
    record: dict[str, Any], children: list[tuple[_Span, bool]], origin: dict[str, str]
) -> None:
    """Token usage summed over the GenAI spans under the run (unless the run span has its
    own); model, provider and operation taken from them when they agree."""
    has_usage = "tokens_in" in record or "tokens_out" in record
    totals = {"tokens_in": 0, "tokens_out": 0}
    seen: dict[str, dict[Any, str]] = {"model": {}, "provider": {}, "operation": {}}
    for child, shadowed in sorted(children, key=lambda c: c[0].index):
        if not any(key.startswith("gen_ai.") for key in (*child.attrs, *child.errors)):
            continue
        child.check(_GEN_AI_KEYS, f"{child.path}.")
        for name, values in seen.items():
            key = next((k for k in GEN_AI[name] if k in child.attrs), None)
            if key is not None and isinstance(child.attrs[key], str):
                values.setdefault(child.attrs[key], f"{child.path}.attributes.{key}")
        if has_usage or shadowed:
            continue
        for name in totals:
            key = next((k for k in GEN_AI[name] if k in child.attrs), None)
            if key is None:
                continue
            value = child.attrs[key]
            if type(value) is not int or value < 0:
                raise RecordError(
                    f"{child.path}.attributes.{key}", f"expected an integer >= 0, got {value!r}"
                )
            totals[name] += value
    if not has_usage:
        record.update(totals)
    for name, values in seen.items():
        if name not in record and len(values) == 1:
            (record[name], origin[name]), *_ = values.items()


def _spans(payload: Any) -> list[_Span]:
    if not isinstance(payload, Mapping):
        raise InputError(
            f"expected an OTLP ExportTraceServiceRequest object, got {type_name(payload)}"
        )
    out: list[_Span] = []
    for r, resource_spans in enumerate(_list(payload, "resourceSpans", "")):
        where = f"resourceSpans[{r}]"
        _mapping(resource_spans, where)
        resource = resource_spans.get("resource") or {}
        _mapping(resource, f"{where}.resource")
        resource_attrs, resource_errors = _attributes(resource.get("attributes"))
        for s, scope_spans in enumerate(_list(resource_spans, "scopeSpans", where)):
            scope_where = f"{where}.scopeSpans[{s}]"
            _mapping(scope_spans, scope_where)
            for p, raw in enumerate(_list(scope_spans, "spans", scope_where)):
                path = f"{scope_where}.spans[{p}]"
                _mapping(raw, path)
                attrs, errors = _attributes(raw.get("attributes"))
                out.append(
                    _Span(
                        len(out),
                        path,
                        _id(raw.get("traceId"), 16),
                        _id(raw.get("spanId"), 8),
                        _id(raw.get("parentSpanId"), 8),
                        raw,
                        attrs,
                        resource_attrs,
                        errors,
                        resource_errors,
                    )
                )
    return out


def _list(parent: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = parent.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        field = f"{where}.{key}" if where else key
        raise InputError(f"expected a list, got {type_name(value)}", field=field)
    return value


def _mapping(value: Any, where: str) -> None:
    if not isinstance(value, Mapping):
        raise InputError(f"expected an object, got {type_name(value)}", field=where)


def _attributes(items: Any, depth: int = 0) -> tuple[dict[str, Any], dict[str, str]]:
    """An OTLP KeyValue list as a dict, and the keys whose values could not be decoded:
    kept apart so that a bad attribute only matters where it is used."""
    out: dict[str, Any] = {}
    errors: dict[str, str] = {}
    if not isinstance(items, list):
        if items is not None:
            errors[""] = f"expected a list of {{key, value}}, got {type_name(items)}"
        return out, errors
    for item in items:
        if not isinstance(item, Mapping) or not isinstance(item.get("key"), str):
            errors[""] = "expected {key, value} objects"
            continue
        try:
            out[item["key"]] = any_value(item.get("value"), depth)
        except ValueError as exc:
            errors[item["key"]] = str(exc)
    return out, errors


def any_value(value: Any, depth: int = 0) -> Any:
    """An OTLP/JSON AnyValue as a Python value; raises ValueError on a malformed one.
    intValue is a decimal string in OTLP/JSON (int64), and accepted as a number too.
    Arrays and kvlists nest at most ``MAX_DEPTH`` levels."""
    if depth > MAX_DEPTH:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    if value is None or value == {}:
        return None
    if not isinstance(value, Mapping) or len(value) != 1:
        raise ValueError(f"expected an AnyValue with one field, got {_brief(value)}")
    kind, raw = next(iter(value.items()))
    if kind == "stringValue" and isinstance(raw, str):
        return raw
    if kind == "intValue":
        if type(raw) is int:
            return raw
        if isinstance(raw, str) and raw.isascii() and raw.removeprefix("-").isdigit():
            return int(raw)
    elif kind == "doubleValue":
        if type(raw) is float or type(raw) is int:
            return float(raw)
        if isinstance(raw, str) and raw in _SPECIAL_DOUBLES:
            return _SPECIAL_DOUBLES[raw]
    elif kind == "boolValue" and type(raw) is bool:
        return raw
    elif kind == "arrayValue" and isinstance(raw, Mapping):
        values = raw.get("values") or []
        if isinstance(values, list):
            return [any_value(v, depth + 1) for v in values]
    elif kind == "kvlistValue" and isinstance(raw, Mapping):
        pairs, errors = _attributes(raw.get("values") or [], depth + 1)
        if errors:
            raise ValueError(next(iter(errors.values())))
        return pairs
    elif kind == "bytesValue" and isinstance(raw, str):
        return raw  # base64, kept as text
    raise ValueError(f"{kind} {_brief(raw)} is not a valid {kind}")


_SPECIAL_DOUBLES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _id(value: Any, size: int) -> str | None:
    """A trace or span id as lowercase hex: hex per the OTLP/JSON spec, or base64 as
    protobuf's json_format writes bytes. None when absent, empty or invalid."""
    if not isinstance(value, str) or not value:
        return None
    if len(value) == 2 * size:
        lowered = value.lower()
        if not lowered.strip("0123456789abcdef"):
            return None if not lowered.strip("0") else lowered
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(decoded) != size or not any(decoded):
        return None
    return decoded.hex()


def _bad_id(value: Any, size: int) -> str:
    return f"expected a {size}-byte id as {2 * size} hex digits or base64, got {value!r}"


def _nanos(raw: Mapping[str, Any], key: str) -> int:
    value = raw.get(key)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) < 30:
        value = int(value)  # ASCII digits only: "²".isdigit() is true too, and int() refuses it
    if type(value) is int and 0 < value < 10**20:  # 10**20 ns is the year 5138
        return value
    if value in (None, 0):
        raise RecordError(key, "is required (nanoseconds since 1970)")
    raise RecordError(key, f"expected nanoseconds since 1970 as an integer, got {value!r}")
