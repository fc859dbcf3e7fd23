"""Runs in: from the SDK, a JSONL file, an HTTP JSON body or OTLP traces, one path to the store.

Every source is validated by the same pure parser (``domain/runs.py``); a batch lands
whole or not at all, and a re-sent batch lands nothing twice (runs are keyed by id).
After landing, any version that never passed the gate for its environment raises an
"outside the gate" alert at once: that is a release that skipped the loop.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from releasegate.domain.otlp import parse_otlp_json
from releasegate.domain.runs import Rejection, RunRecord, parse_batch, parse_jsonl
from releasegate.errors import InputError
from releasegate.store.engine import Conn, Store
from releasegate.store.repos import (
    DecisionRepo,
    EnvironmentRepo,
    RunRepo,
    VersionRepo,
)

CHUNK = 20_000
"""Runs validated and inserted per step of a streamed import (one transaction overall)."""
MAX_REASONS = 50


@dataclass(frozen=True)
class Outside:
    """A version seen running in an environment it never passed the gate for."""

    workflow: str
    env: str
    version_id: str
    runs: int
    registered: bool


@dataclass
class IngestResult:
    received: int = 0
    landed: int = 0
    duplicates: int = 0
    skipped: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    outside_gate: list[Outside] = field(default_factory=list)
    alerts: list[Any] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejected

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "landed": self.landed,
            "duplicates": self.duplicates,
            "skipped": self.skipped,
            "rejected": [_rejection_dict(r) for r in self.rejected[:MAX_REASONS]],
            "rejected_total": len(self.rejected),
            "outside_gate": [o.__dict__ for o in self.outside_gate],
            "alerts": [getattr(a, "message", str(a)) for a in self.alerts],
        }


def text_hash(text: str | None) -> str | None:
    """The key a text's embedding is kept under: the sha256 of the text (the parser has
    already turned structured inputs into canonical JSON text)."""
    return None if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()


def to_row(r: RunRecord, received_at: float) -> tuple[Any, ...]:
    """A record as a ``runs`` row (``RUN_COLUMNS`` order); the provider, which has no
    column of its own, is kept with the attributes."""
    attributes = {**r.attributes, "provider": r.provider} if r.provider else r.attributes
    return (
        r.run_id,
        r.workflow,
        r.version_id,
        r.env,
        r.started_epoch,
        r.ended_epoch,
        r.latency_ms,
        r.tokens_in,
        r.tokens_out,
        r.cost_usd,
        r.model,
        r.operation,
        r.status,
        r.failure_reason,
        r.retries,
        r.escalated,
        r.edited,
        r.feedback,
        r.label,
        None if r.output is None else len(r.output),
        text_hash(r.input),
        text_hash(r.output),
        r.input,
        r.output,
        json.dumps(attributes, sort_keys=True) if attributes else None,
        r.source,
        received_at,
    )


def _tally(records: Iterable[RunRecord], seen: dict[tuple[str, str, str], int]) -> None:
    """Runs per (workflow, env, version): what the gate check after landing looks at."""
    for r in records:
        k = (r.workflow, r.env, r.version_id)
        seen[k] = seen.get(k, 0) + 1


def ingest_records(store: Store, records: Sequence[RunRecord]) -> IngestResult:
    """Land already-validated records in one transaction, then check the gate."""
    result = IngestResult(received=len(records))
    received_at = datetime.now(UTC).timestamp()
    with store.write() as conn:
        result.landed = RunRepo.insert_many(conn, [to_row(r, received_at) for r in records])
    result.duplicates = len(records) - result.landed
    _after_landing(store, records, result)
    return result


def ingest_dicts(
    store: Store,
    items: Sequence[Mapping[str, Any]],
    *,
    source: str,
    atomic: bool = True,
    now: datetime | None = None,
) -> IngestResult:
    """Runs as JSON objects (HTTP body, SDK batch). ``atomic``: one bad record lands none.

    The SDK passes ``atomic=False``: one bad value an application set must not lose
    the other runs of its batch; each rejection is still reported.
    """
    parsed = parse_batch(items, now=now or datetime.now(UTC), source=source)
    if parsed.rejected and atomic:
        return IngestResult(received=len(items), rejected=list(parsed.rejected))
    result = ingest_records(store, parsed.accepted)
    result.received = len(items)
    result.rejected = list(parsed.rejected)
    return result


def ingest_otlp(
    store: Store, payload: Mapping[str, Any], *, now: datetime | None = None
) -> IngestResult:
    """An OTLP/HTTP JSON ``ExportTraceServiceRequest``: spans carrying a version become runs."""
    parsed = parse_otlp_json(payload, now=now or datetime.now(UTC))
    if parsed.rejected:
        return IngestResult(
            received=len(parsed.runs) + len(parsed.rejected),
            rejected=list(parsed.rejected),
            skipped=parsed.skipped_spans,
        )
    result = ingest_records(store, parsed.runs)
    result.skipped = parsed.skipped_spans
    return result


def import_jsonl(
    store: Store,
    path: Path,
    *,
    now: datetime | None = None,
    progress: Any = None,
) -> IngestResult:
    """A JSONL file of runs, streamed in chunks inside one transaction: all lines or none.

    Every line is validated even after the first bad one, so one pass names every
    problem (up to ``MAX_REASONS`` are kept); then nothing is written.
    """
    at = now or datetime.now(UTC)
    received_at = at.timestamp()
    result = IngestResult()
    seen: dict[tuple[str, str, str], int] = {}
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", source=str(path)) from None
    try:
        with handle, store.write() as conn:
            _stream(conn, handle, path, at, received_at, result, seen, progress)
    except _Rejected:
        result.landed = 0
        return result
    result.duplicates = result.received - result.landed
    _check_gate(store, seen, result)
    return result


class _Rejected(Exception):
    """Raised inside the import transaction so it rolls back: nothing of the file lands."""


def _stream(
    conn: Conn,
    handle: Any,
    path: Path,
    at: datetime,
    received_at: float,
    result: IngestResult,
    seen: dict[tuple[str, str, str], int],
    progress: Any,
) -> None:
    for chunk, start_line in _chunks(handle):
        parsed = parse_jsonl(chunk, now=at, source="jsonl")
        result.received += len(parsed.accepted) + parsed.duplicates + parsed.rejected_count
        if parsed.rejected:
            offset = start_line - 1  # the parser numbers lines within the chunk
            result.rejected.extend(
                replace(r, line=None if r.line is None else r.line + offset)
                for r in parsed.rejected
            )
        if not result.rejected:
            result.landed += RunRepo.insert_many(
                conn, [to_row(r, received_at) for r in parsed.accepted]
            )
            _tally(parsed.accepted, seen)
        if progress is not None:
            progress(len(chunk))
    if result.rejected:
        raise _Rejected


FORMATS = ("auto", "jsonl", "otlp")


def import_file(
    store: Store, path: Path, *, format: str = "auto", progress: Any = None
) -> IngestResult:
    """A file of runs: JSONL, or an OTLP/HTTP JSON trace export (``auto`` looks inside)."""
    if format not in FORMATS:
        raise InputError(f"unknown format '{format}'", field="--format", hint="jsonl, otlp")
    if not path.is_file():
        raise InputError(f"no such file: {path}", source=str(path))
    if format == "jsonl" or (format == "auto" and not _looks_like_otlp(path)):
        return import_jsonl(store, path, progress=progress)
    try:
        payload = json.loads(path.read_bytes())
    except ValueError as exc:
        raise InputError(f"not JSON: {exc}", source=str(path)) from None
    if not isinstance(payload, dict):
        raise InputError("expected an OTLP ExportTraceServiceRequest", source=str(path))
    return ingest_otlp(store, payload)


def _looks_like_otlp(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(4096).lstrip()
    return head.startswith(b"{") and b'"resourceSpans"' in head


def _chunks(handle: Any) -> Iterator[tuple[list[bytes], int]]:
    chunk: list[bytes] = []
    start = 1
    for n, line in enumerate(handle, 1):
        chunk.append(line)
        if len(chunk) >= CHUNK:
            yield chunk, start
            chunk = []
            start = n + 1
    if chunk:
        yield chunk, start


def _after_landing(store: Store, records: Iterable[RunRecord], result: IngestResult) -> None:
    seen: dict[tuple[str, str, str], int] = {}
    _tally(records, seen)
    _check_gate(store, seen, result)


def gated(conn: Conn, workflow: str, env: str, version_id: str) -> bool:
    """Did this version reach ``env`` through the loop (promoted or rolled back to there,
    or holding a passing gate decision for it)?"""
    if any(h.version_id == version_id for h in EnvironmentRepo.history(conn, workflow, env)):
        return True
    decision = DecisionRepo.latest(conn, version_id, env)
    return decision is not None and decision.verdict == "pass"


def _check_gate(
    store: Store, seen: Mapping[tuple[str, str, str], int], result: IngestResult
) -> None:
    if not seen:
        return
    with store.read() as conn:
        for (workflow, env, vid), n in sorted(seen.items()):
            if not gated(conn, workflow, env, vid):
                registered = VersionRepo.find(conn, vid) is not None
                result.outside_gate.append(Outside(workflow, env, vid, n, registered))
    if result.outside_gate:
        from releasegate.monitor.alerts import raise_outside_gate

        result.alerts.extend(raise_outside_gate(store, result.outside_gate))


def _rejection_dict(r: Rejection) -> dict[str, Any]:
    return {
        "index": r.index,
        "line": r.line,
        "run_id": r.run_id,
        "field": r.field,
        "reason": r.reason,
        "where": r.where,
        "message": r.describe(),
    }
