"""Runs in: from the SDK, a JSONL file, an HTTP JSON body or OTLP traces, one path to the store.

Every source is validated by the same pure parser (``domain/runs.py``); a batch lands
whole or not at all (a long file commits in chunks, and a bad line takes back what it
committed), and a re-sent batch lands nothing twice (runs are keyed by id).
After landing, any version that never passed the gate for its environment raises an
"outside the gate" alert at once: that is a release that skipped the loop.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import io
import itertools
import json
import logging
import operator
import os
import sys
import time
import types
from array import array
from collections import Counter
from collections.abc import Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from releasegate.domain.data_class import STORE_NO_TEXTS, DataRules
from releasegate.domain.otlp import parse_otlp_json
from releasegate.domain.runs import (
    BatchResult,
    Rejection,
    RunKey,
    RunRecord,
    RunValues,
    name_problems,
    name_rejections,
    parse_batch,
    parse_jsonl,
    parse_values,
    shown_run_id,
)
from releasegate.domain.untrusted import parse_json
from releasegate.errors import InputError, PrerequisiteError
from releasegate.monitor.alerts import Outside, gated, raise_outside_gate
from releasegate.providers import prices
from releasegate.release.data_rules import load_rules
from releasegate.store.engine import Batches, Store
from releasegate.store.runs import ROW_KINDS, EncodedRun, RunRepo, encode, without_texts
from releasegate.store.versions import VersionRepo
from releasegate.store.workflows import WorkflowRepo

log = logging.getLogger("releasegate.ingest")

_SEEN_KEY = operator.attrgetter("workflow", "env", "version_id")
"""A ``RunRecord``'s (workflow, env, version_id), the gate check's key: by name, in C."""

CHUNK = 20_000
"""Runs validated and inserted per step of a streamed import."""
COMMIT_RUNS = 50_000
COMMIT_SECONDS = 2.0
"""A long import commits after this many runs or seconds, so other writers wait
seconds, not minutes; a file with a bad line still lands nothing (see import_jsonl)."""
MAX_REASONS = 50
MAX_KEPT = 1000
"""Rejections kept (as examples) per import; ``IngestResult.rejected_count`` counts all."""
CHANGED = (
    "already stored with other content: a run_id names one run, recorded once "
    "(send a changed run under a new run_id)"
)


@dataclass
class IngestResult:
    received: int = 0
    landed: int = 0
    duplicates: int = 0
    skipped: int = 0
    rejected: list[Rejection] = field(default_factory=list)  # the first MAX_KEPT examples
    outside_gate: list[Outside] = field(default_factory=list)
    alerts: list[Any] = field(default_factory=list)
    rejected_total: int = 0  # every rejection, beyond the examples kept
    texts_dropped: int = 0  # runs whose input/output their workflow's data class keeps out

    @property
    def ok(self) -> bool:
        return not self.rejected

    @property
    def rejected_count(self) -> int:
        return max(self.rejected_total, len(self.rejected))

    def as_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "landed": self.landed,
            "duplicates": self.duplicates,
            "skipped": self.skipped,
            "rejected": [r.to_dict() for r in self.rejected[:MAX_REASONS]],
            "rejected_total": self.rejected_count,
            "outside_gate": [o.__dict__ for o in self.outside_gate],
            "alerts": [getattr(a, "message", str(a)) for a in self.alerts],
            "texts_dropped": self.texts_dropped,
        }


def _tally(records: Iterable[RunRecord], seen: dict[tuple[str, str, str], int]) -> None:
    """Runs per (workflow, env, version): what the gate check after landing looks at."""
    for k, n in Counter(map(_SEEN_KEY, records)).items():  # counted in C
        seen[k] = seen.get(k, 0) + n


def ingest_records(
    store: Store, records: Sequence[RunRecord], *, atomic: bool = True
) -> IngestResult:
    """Land already-validated records in one transaction, then check the gate.

    Records naming a workflow or environment the store does not know, or a version of
    another workflow, are rejected, and so is a run_id already stored with other
    content. ``atomic``: then nothing lands; otherwise the other records do."""
    result = IngestResult(received=len(records))
    received_at = datetime.now(UTC).timestamp()
    rules = _rules_for_records()
    try:
        with store.write() as conn:
            known = RunRepo(conn).known_names({r.version_id for r in records})
            rejected, bad = name_rejections(records, known)
            result.rejected = rejected
            if rejected and atomic:
                return result
            if bad:
                records = [r for i, r in enumerate(records) if i not in bad]
            added = RunRepo(conn).add(
                records,
                received_at=received_at,
                price=prices.run_pricer(),
                textless=_textless(conn, {r.workflow for r in records}, rules),
            )
            result.texts_dropped = added.texts_dropped
            result.landed = added.landed
            if added.changed:
                changed = set(added.changed)
                for i, r in enumerate(records):
                    if r.run_id in changed:
                        result.rejected.append(Rejection(i, None, r.run_id, "run_id", CHANGED))
                if changed and atomic:
                    raise _Rejected
                records = [r for r in records if r.run_id not in changed]
    except _Rejected:
        result.landed = 0
        return result
    result.duplicates = len(records) - result.landed
    _after_landing(store, records, result)
    return result


def _rules_for_records() -> DataRules:
    """The data rules for runs an application sends (SDK, HTTP, OTLP): with a rules file
    that cannot be read, the runs still land, but with no texts at all (the safe side)
    and a logged error: an application's runs are not lost to a typo in a rules file."""
    try:
        return load_rules()
    except InputError as exc:
        log.error("data rules unreadable, storing runs without their texts: %s", exc)
        return STORE_NO_TEXTS


def _textless(conn: Any, workflows: Iterable[str], rules: DataRules) -> set[str]:
    """Which of ``workflows`` are of a data class whose run texts are never stored."""
    classes = WorkflowRepo(conn).data_classes(workflows)
    return {name for name, data_class in classes.items() if not rules.stores_texts(data_class)}


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
    return _ingest_parsed(store, parsed, len(items), atomic)


def ingest_values(
    store: Store,
    items: Sequence[RunValues],
    *,
    source: str = "sdk",
    atomic: bool = False,
    now: datetime | None = None,
) -> IngestResult:
    """``ingest_dicts`` of runs given as their values in ``FIELDS`` order (the SDK's
    writer): the same rules, messages and landing, without a dict per run."""
    parsed = parse_values(items, now=now or datetime.now(UTC), source=source)
    return _ingest_parsed(store, parsed, len(items), atomic)


def _ingest_parsed(store: Store, parsed: BatchResult, received: int, atomic: bool) -> IngestResult:
    if parsed.rejected and atomic:
        return IngestResult(
            received=received,
            rejected=list(parsed.rejected),
            rejected_total=parsed.rejected_count,
        )
    result = ingest_records(store, parsed.accepted, atomic=atomic)
    result.received = received
    result.rejected = list(parsed.rejected) + result.rejected
    result.rejected_total = parsed.rejected_count + len(result.rejected) - len(parsed.rejected)
    return result


def ingest_otlp(
    store: Store, payload: Mapping[str, Any], *, now: datetime | None = None
) -> IngestResult:
    """An OTLP/HTTP JSON ``ExportTraceServiceRequest``: spans carrying a version become runs."""
    parsed = parse_otlp_json(payload, now=now or datetime.now(UTC))
    if parsed.rejected:
        return IngestResult(
            received=len(parsed.runs) + parsed.rejected_count,
            rejected=list(parsed.rejected),
            skipped=parsed.skipped_spans,
            rejected_total=parsed.rejected_count,
        )
    result = ingest_records(store, parsed.runs)
    result.skipped = parsed.skipped_spans
    return result


def otlp_from_protobuf(raw: bytes, source: str) -> dict[str, Any]:
    """An OTLP/HTTP protobuf ``ExportTraceServiceRequest`` (what the OpenTelemetry SDKs'
    OTLP/HTTP exporters send by default) as its OTLP/JSON document, by protobuf's own JSON
    mapping (``json_format``: lowerCamelCase names, ids in base64, int64 as strings, enum
    names), which is what ``ingest_otlp`` reads: both encodings go through one converter,
    with the same rules. InputError when the bytes are not such a message."""
    try:
        from google.protobuf.json_format import MessageToDict
        from google.protobuf.message import DecodeError
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )
    except ModuleNotFoundError as exc:
        raise PrerequisiteError(
            f"OTLP protobuf needs opentelemetry-proto ({exc.name} is not installed)",
            hint="pip install 'releasegate[server]'",
        ) from None
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(raw)
    except DecodeError as exc:
        raise InputError(
            f"not an OTLP ExportTraceServiceRequest in protobuf ({exc})",
            source=source,
            hint="send the OpenTelemetry exporter's body as it is, or OTLP/JSON with "
            "Content-Type: application/json",
        ) from None
    document: dict[str, Any] = MessageToDict(request)
    return document


def import_jsonl(
    store: Store,
    path: Path,
    *,
    now: datetime | None = None,
    progress: Any = None,
    workers: int | None = None,
) -> IngestResult:
    """A JSONL file of runs, streamed in chunks: every line lands, or none does.

    Every line is validated even after the first bad one, so one pass names every
    problem (up to ``MAX_REASONS`` are kept); then nothing is written. A large file may
    be parsed by ``workers`` child processes (default: one per idle core) while this
    process inserts; chunks land in file order, so the result is the same either way.
    A long import commits every ``COMMIT_RUNS`` runs or ``COMMIT_SECONDS`` so that a
    concurrent ``approve`` waits seconds; if a bad line comes after a commit, the runs
    this import landed (its own ``received_at`` stamp) are deleted again. An import that
    is killed keeps what it committed: running it again skips those runs by ``run_id``.
    """
    at = now or datetime.now(UTC)
    received_at = datetime.now(UTC).timestamp()  # this import's own stamp, see above
    result = IngestResult()
    rules = load_rules()  # a bad rules file is exit 2 before the file is read
    seen: dict[tuple[str, str, str], int] = {}
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", source=str(path)) from None
    n_workers = _worker_count(path) if workers is None else workers
    found = _Found()
    try:
        with handle, store.write_batches() as batches, RunRepo(batches.conn).bulk(), _gc_paused():
            if n_workers > 0:
                chunks = _parse_elsewhere(path, handle, at, received_at, n_workers)
            else:
                chunks = _parse_here(handle, at, received_at)
            with contextlib.closing(chunks):  # stops the workers, whatever happens
                _land(batches, chunks, result, seen, progress, found, rules)
            if found.changed:  # which of them were stored before this import
                found.stored_before = set(
                    RunRepo(batches.conn).received_before(found.changed, received_at)
                )
            if result.rejected or found:
                raise _Rejected
    except _Rejected:
        if batches.commits:  # earlier chunks were committed: take this import's runs back
            with store.write() as conn:
                RunRepo(conn).unland(received_at)
        result.landed = 0
        if found:
            located, count = _locate(path, found, MAX_KEPT)
            result.rejected = sorted(result.rejected + located, key=_by_line)[:MAX_KEPT]
            result.rejected_total += count
        return result
    result.duplicates = result.received - result.landed
    _check_gate(store, seen, result)
    return result


class _Rejected(Exception):
    """Raised inside the import transaction so it rolls back: nothing of the file lands."""


class _Chunk(NamedTuple):
    """One parsed chunk of a JSONL file, wherever it was parsed."""

    lines: int
    received: int
    rejected: list[Rejection]  # lines numbered in the file, not the chunk
    rows: Iterable[EncodedRun]  # empty when the chunk has rejections
    seen: Mapping[tuple[str, str, str], int]  # (workflow, env, version_id) -> runs
    rejected_count: int = 0  # may exceed len(rejected), which is capped


@dataclass
class _Found:
    """What the store refused in an import: names it does not know, and run_ids stored
    with other content; their lines are looked up afterwards (``_locate``)."""

    names: dict[RunKey, tuple[str, str]] = field(default_factory=dict)
    changed: set[str] = field(default_factory=set)
    stored_before: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.names or self.changed)


def _land(
    batches: Batches,
    chunks: Iterable[_Chunk],
    result: IngestResult,
    seen: dict[tuple[str, str, str], int],
    progress: Any,
    found: _Found,
    rules: DataRules,
) -> None:
    conn = batches.conn
    checked: set[RunKey] = set()
    textless: set[str] = set()  # workflows whose run texts are never stored
    since_commit = 0
    committed_at = time.monotonic()
    for chunk in chunks:
        result.received += chunk.received
        result.rejected_total += chunk.rejected_count
        result.rejected.extend(chunk.rejected[: MAX_KEPT - len(result.rejected)])
        new = [key for key in chunk.seen if key not in checked]
        if new:  # a few distinct (workflow, env, version) per file: checked once each
            known = RunRepo(conn).known_names({key[2] for key in new})
            found.names.update(name_problems(new, known))
            checked.update(new)
            textless |= _textless(conn, {key[0] for key in new}, rules)
        if not result.rejected and not found.names:
            rows = chunk.rows if isinstance(chunk.rows, list) else list(chunk.rows)
            if textless:
                rows, dropped = without_texts(rows, textless)
                result.texts_dropped += dropped
            added = RunRepo(conn).add_encoded(rows)  # a re-sent run: identical, or changed
            result.landed += added.landed
            since_commit += chunk.received
            found.changed.update(added.changed)
            for key, n in chunk.seen.items():
                seen[key] = seen.get(key, 0) + n
            due = since_commit >= COMMIT_RUNS or time.monotonic() - committed_at >= COMMIT_SECONDS
            if due and not found:  # a refused file is taken back anyway
                batches.commit()  # other writers get the lock between two chunks
                since_commit, committed_at = 0, time.monotonic()
        if progress is not None:
            progress(chunk.lines)


def _by_line(r: Rejection) -> tuple[int, int]:
    return (r.line or 0, r.index)


def _locate(path: Path, found: _Found, limit: int) -> tuple[list[Rejection], int]:
    """The lines behind what the store refused: every record naming an unknown workflow
    or environment (or another workflow's version), and the record re-using a stored
    run_id (or one used earlier in the file) with other content. Only on the way to a
    refusal, so a second read of the file costs nothing on a clean import."""
    loads: Any = json.loads
    with contextlib.suppress(ImportError):
        from orjson import loads
    out: list[Rejection] = []
    count = 0
    first: dict[str, int] = {}
    index = -1
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                obj = loads(raw)
            except (ValueError, RecursionError):
                continue
            index += 1
            if not isinstance(obj, dict):
                continue
            run_id = obj.get("run_id")
            run_id = str(run_id) if type(run_id) is int else run_id
            version_id = obj.get("version_id")
            key = (
                obj.get("workflow"),
                obj.get("env"),
                version_id.lower() if isinstance(version_id, str) else version_id,
            )
            problem = found.names.get(key)  # type: ignore[arg-type]
            reason: tuple[str, str] | None = problem
            if reason is None and run_id in found.changed:
                if run_id in found.stored_before:
                    reason = ("run_id", CHANGED)
                elif run_id in first:
                    reason = ("run_id", f"already used by line {first[run_id]} with other content")
                else:
                    first[run_id] = number
            if reason is not None:
                count += 1
                if len(out) < limit:
                    out.append(Rejection(index, number, shown_run_id(run_id), *reason))
    return out, count


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
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", source=str(path)) from None
    payload = parse_json(raw, str(path))
    if not isinstance(payload, dict):
        raise InputError("expected an OTLP ExportTraceServiceRequest", source=str(path))
    return ingest_otlp(store, payload)


def _looks_like_otlp(path: Path) -> bool:
    with path.open("rb") as f:
        head = f.read(4096).lstrip()
    return head.startswith(b"{") and b'"resourceSpans"' in head


def _parse_chunk(lines: list[bytes], start_line: int, at: datetime, received_at: float) -> _Chunk:
    parsed = parse_jsonl(lines, now=at, source="jsonl")
    received = len(parsed.accepted) + parsed.duplicates + parsed.rejected_count
    seen = Counter(map(_SEEN_KEY, parsed.accepted))
    if parsed.rejected:
        offset = start_line - 1  # the parser numbers lines within the chunk
        rejected = [
            replace(r, line=None if r.line is None else r.line + offset) for r in parsed.rejected
        ]
        return _Chunk(len(lines), received, rejected, [], seen, parsed.rejected_count)
    price = prices.run_pricer()
    rows = [encode(r, received_at, price) for r in parsed.accepted]
    return _Chunk(len(lines), received, [], rows, seen)


def _parse_here(
    handle: Any, at: datetime, received_at: float, skip: int = 0
) -> Generator[_Chunk, None, None]:
    for index, (lines, start_line) in enumerate(_chunks(handle, CHUNK)):
        if index >= skip:
            yield _parse_chunk(lines, start_line, at, received_at)


def _chunks(handle: Any, size: int) -> Iterator[tuple[list[bytes], int]]:
    start = 1
    while chunk := list(itertools.islice(handle, size)):
        yield chunk, start
        start += len(chunk)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """An import allocates millions of short-lived, acyclic objects (dicts, records, rows),
    and the cyclic collector would walk the survivors again and again for nothing."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# -- parsing in child processes ----------------------------------------------------------------
#
# Parsing (json.loads, validation, hashing) is two thirds of an import and SQLite takes
# one writer, so a large file is parsed by a ``ProcessPoolExecutor`` while this process
# inserts. This process finds where each chunk of CHUNK lines starts (the chunks the
# in-process path would make) and hands the workers (offset, length) spans; each worker
# reads its span itself, so lines never travel, only rows do. Results are taken in
# submission order, so chunks land in file order and the single transaction stays here.
# Rows travel by column (numbers as arrays, texts joined), a quarter cheaper than pickled
# 27-field tuples. A pool that breaks or cannot start hands the rest of the file back to
# this process, which parses it itself. Workers only pay on idle cores: on a busy machine
# they add the cost of the trip and win nothing (see benchmarks/README.md), hence
# ``_worker_count``, which samples /proc/stat (the load average trails by a minute and
# counted this very import: measured, it said "no idle core" at every start).

PARALLEL_MIN_BYTES = 32 << 20
"""Files smaller than this are parsed in-process: a child costs ~0.3 s to start."""
MAX_WORKERS = 4
IN_FLIGHT = 3
"""Chunks queued per worker: enough to keep it busy, few enough to bound the memory."""
"""Beyond ~3, this process's inserts are the bound."""
_SEP = "\x00"


def _worker_count(path: Path) -> int:
    """Children only pay with idle cores: with none, they add ~30% more work (the rows
    travel between processes) and take turns with this one. So one per core that is
    (at least half) idle now, beyond the one this process will take."""
    try:
        size = path.stat().st_size
    except OSError:
        return 0
    if size < PARALLEL_MIN_BYTES or not sys.executable:
        return 0
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    idle = _idle_cores(cpus or 1)
    return max(0, min(int(idle - 1 + 0.5), MAX_WORKERS))


def _idle_cores(cpus: int, sample_s: float = 0.1) -> float:
    """Cores idle over the next ``sample_s``, while this process sleeps, from /proc/stat.

    Not the load average: it trails by a minute and counts whatever this process (or
    the import before it) was doing, which left a second core idle at every start."""
    try:
        before = _cpu_ticks()
        time.sleep(sample_s)
        after = _cpu_ticks()
    except (OSError, ValueError, IndexError):  # not Linux: the last minute will have to do
        busy = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        return cpus - busy
    total, idle = after[0] - before[0], after[1] - before[1]
    if total <= 0:
        return float(cpus)
    return min(float(cpus), after[2] * idle / total)  # the host's idle cores, ours at most


def _cpu_ticks() -> tuple[int, int, int]:
    """(all, idle) jiffies of every CPU together (the first line of /proc/stat), and how
    many CPUs the host has (its ``cpuN`` lines): a container may see the whole host."""
    with open("/proc/stat", "rb") as stat:
        lines = stat.read().split(b"\n")
    fields = [int(v) for v in lines[0].split()[1:9]]
    host_cpus = sum(1 for line in lines[1:] if line.startswith(b"cpu"))
    return sum(fields), fields[3] + fields[4], host_cpus  # idle + iowait


def _parse_elsewhere(
    path: Path, handle: Any, at: datetime, received_at: float, n_workers: int
) -> Generator[_Chunk, None, None]:
    import multiprocessing
    from concurrent.futures import Future, ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    # spawn, not fork: this process holds a database connection and maybe the SDK's thread
    context = multiprocessing.get_context("spawn")  # set_executable would be process-wide
    pool = ProcessPoolExecutor(n_workers, mp_context=context)
    pending: collections.deque[Future[Any]] = collections.deque()
    spans = _spans(path, CHUNK)
    index = 0

    def submit(count: int) -> None:
        with _main_hidden():  # a worker may start here: it must not run the caller's script
            for span in itertools.islice(spans, count):
                pending.append(pool.submit(_parse_span, str(path), *span, at, received_at))

    try:
        submit(IN_FLIGHT * n_workers)
        while pending:
            lines, received, rejected, packed, seen, rejected_count = pending.popleft().result()
            submit(1)  # keep the workers busy while this process inserts
            rejections = [Rejection(*r) for r in rejected]
            yield _Chunk(lines, received, rejections, _unpack_rows(packed), seen, rejected_count)
            index += 1
        return
    except (OSError, EOFError, BrokenProcessPool, RuntimeError) as exc:
        log.info("parsing %s in this process from chunk %d (%s)", path, index, exc)
    finally:
        spans.close()
        pool.shutdown(wait=True, cancel_futures=True)
    yield from _parse_here(handle, at, received_at, skip=index)


@contextlib.contextmanager
def _main_hidden() -> Iterator[None]:
    """Spawned workers import the parent's ``__main__`` (by path or name) before their
    first task, which would run a caller's script without an ``if __name__`` guard again,
    side effects and all. The workers need only this package, so while they start
    ``__main__`` is a bare module, as in an interactive session."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def _spans(path: Path, size: int) -> Generator[tuple[int, int, int], None, None]:
    """(byte offset, byte length, first line number) of each chunk of ``size`` lines: the
    chunks ``_chunks`` makes in-process, so line numbers and order are the same. Newlines
    are counted in 1 MB blocks, so this costs this process next to nothing."""
    with path.open("rb") as handle:
        chunk_start, first_line, lines, block_start = 0, 1, 0, 0
        while block := handle.read(1 << 20):
            at = 0
            while True:
                need = size - lines
                found = block.count(b"\n", at)
                if found < need:
                    lines += found
                    break
                for _ in range(need):
                    at = block.index(b"\n", at) + 1
                end = block_start + at
                yield chunk_start, end - chunk_start, first_line
                chunk_start, first_line, lines = end, first_line + size, 0
            block_start += len(block)
        if block_start > chunk_start:  # the last chunk, with or without a final newline
            yield chunk_start, block_start - chunk_start, first_line


def _pack_rows(rows: Iterable[EncodedRun]) -> list[tuple[str, Any]]:
    columns = list(zip(*rows, strict=True))
    if not columns:
        return []
    packed: list[tuple[str, Any]] = []
    for kind, column in zip(ROW_KINDS, columns, strict=True):
        try:
            if kind != "s":
                packed.append((kind, array(kind, column).tobytes()))
                continue
            text = _SEP.join(column)
            if text.count(_SEP) == len(column) - 1:
                packed.append(("s", text))
                continue
        except (TypeError, OverflowError):  # a None, or a separator inside a text
            pass
        packed.append(("o", column))
    return packed


def _unpack_rows(packed: list[tuple[str, Any]]) -> Iterable[EncodedRun]:
    columns: list[Any] = []
    for kind, payload in packed:
        if kind == "s":
            columns.append(payload.split(_SEP))
        elif kind == "o":
            columns.append(payload)
        else:
            values = array(kind)
            values.frombytes(payload)
            columns.append(values.tolist())
    return zip(*columns, strict=True)


def _parse_span(
    path: str, offset: int, length: int, start_line: int, at: datetime, received_at: float
) -> tuple[int, int, list[tuple[Any, ...]], list[tuple[str, Any]], dict[Any, int], int]:
    """A worker's task: parse one chunk of the file, rows packed by column for the trip."""
    gc.disable()  # a worker of this import only: the same reason as ``_gc_paused``
    with open(path, "rb") as handle:
        handle.seek(offset)
        lines = list(io.BytesIO(handle.read(length)))  # split as file iteration splits
    chunk = _parse_chunk(lines, start_line, at, received_at)
    rejected = [(r.index, r.line, r.run_id, r.field, r.reason, r.where) for r in chunk.rejected]
    rows = _pack_rows(chunk.rows)
    return chunk.lines, chunk.received, rejected, rows, dict(chunk.seen), chunk.rejected_count


def _after_landing(store: Store, records: Iterable[RunRecord], result: IngestResult) -> None:
    seen: dict[tuple[str, str, str], int] = {}
    _tally(records, seen)
    _check_gate(store, seen, result)


def _check_gate(
    store: Store, seen: Mapping[tuple[str, str, str], int], result: IngestResult
) -> None:
    if not seen:
        return
    with store.read() as conn:
        for (workflow, env, vid), n in sorted(seen.items()):
            if not gated(conn, workflow, env, vid):
                registered = VersionRepo(conn).find(vid) is not None
                result.outside_gate.append(Outside(workflow, env, vid, n, registered))
    if result.outside_gate:
        result.alerts.extend(raise_outside_gate(store, result.outside_gate).alerts)
