"""Production runs: one execution of a workflow as the application reported it.

Every front (SDK, ``runs import FILE.jsonl``, the HTTP endpoint, OTLP traces) turns
its input into the same plain record shape and passes it through ``parse_run``, so
one set of rules decides what a run is. A bad record becomes a ``Rejection`` naming
its line or index, field and reason; a batch with any rejection lands nothing. Strings
must be valid text: JSON's ``"\\ud800"`` is a lone surrogate that no hash or database takes.

Validation is plain dict and type checks on the hot path (the importer needs
~100k runs/s), records are NamedTuples (a frozen dataclass's ``__init__`` costs
~5x more for 25 fields) and times are float epoch seconds, which SQLite stores and
compares natively; ``started_at``/``ended_at`` give the aware datetimes.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import operator
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple, TypeVar

from releasegate.domain.document import type_name
from releasegate.domain.nesting import deep_message, too_deep
from releasegate.errors import InputError

_fast_loads: Callable[[str | bytes], Any] | None
try:  # three times json.loads' speed on a run; json.loads judges what it refuses
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - a dependency, but the module works without it
    _fast_loads = None

Scalar = str | int | float | bool | None
SOURCES = ("sdk", "jsonl", "http", "otlp")
STATUSES = ("ok", "error")
DEFAULT_MAX_SKEW = timedelta(minutes=5)
EARLIEST = 946684800.0  # 2000-01-01T00:00:00Z: anything before is a clock that was never set
NAME_MAX = 256
COUNT_MAX = 2**53  # token and retry counts; also keeps them inside SQLite's INTEGER
INF = float("inf")
_Spot = TypeVar("_Spot")  # where a record sat: (index, line), or an OTLP span

FIELDS = (
    "run_id", "workflow", "version_id", "env", "started_at", "ended_at", "latency_ms",
    "status", "failure_reason", "tokens_in", "tokens_out", "cost_usd", "model", "provider",
    "operation", "retries", "escalated", "edited", "feedback", "input", "output", "label",
    "attributes", "arm",
)  # fmt: skip
RunValues = tuple[Any, ...]
"""A record as its values in ``FIELDS`` order, None for a missing one (``build_run_values``)."""
REQUIRED = ("workflow", "version_id", "env", "started_at", "status")
_KNOWN = frozenset(FIELDS)
_HEX = "0123456789abcdef"


class RunRecord(NamedTuple):
    """One validated run. Times are epoch seconds (UTC); ``source`` is one of SOURCES."""

    run_id: str
    workflow: str
    version_id: str
    env: str
    started_epoch: float
    ended_epoch: float
    latency_ms: float
    status: str
    failure_reason: str | None
    tokens_in: int
    tokens_out: int
    cost_usd: float | None  # None: priced later from the model's price table
    model: str | None
    provider: str | None
    operation: str | None
    retries: int
    escalated: bool
    edited: bool
    feedback: float | None  # in [-1, 1]
    input: str | None
    output: str | None
    label: str | None
    attributes: Mapping[str, Scalar]
    source: str
    arm: str | None = None  # which arm of a rollout served it: stable | canary | shadow

    @property
    def started_at(self) -> datetime:
        return datetime.fromtimestamp(self.started_epoch, UTC)

    @property
    def ended_at(self) -> datetime:
        return datetime.fromtimestamp(self.ended_epoch, UTC)

    @property
    def is_error(self) -> bool:
        return IS_ERROR.holds(self.status)


class RunFact(NamedTuple):
    """A yes/no fact about a run, stated once as a test of one of its fields: monitoring
    counts runs by these (error rate, escalations, edits, negative feedback). ``holds``
    applies the test to a value; the store turns it into SQL over the column of the same
    name, so a window is read by the same rule a record is judged by.

    ``test``: ``equals`` / ``below`` (``operand``), ``true``, ``present`` (not missing).
    """

    name: str
    field: str
    test: str
    operand: Any = None

    def holds(self, value: Any) -> bool:
        if self.test == "equals":
            return bool(value == self.operand)
        if self.test == "below":
            return value is not None and bool(value < self.operand)
        if self.test == "true":
            return bool(value)
        if self.test == "present":
            return value is not None
        raise ValueError(f"unknown run test {self.test!r}")


IS_ERROR = RunFact("error", "status", "equals", "error")
IS_ESCALATED = RunFact("escalated", "escalated", "true")
IS_EDITED = RunFact("edited", "edited", "true")
IS_NEGATIVE_FEEDBACK = RunFact("negative feedback", "feedback", "below", 0.0)
HAS_FEEDBACK = RunFact("feedback", "feedback", "present")
SIGNAL_FACTS = (IS_ERROR, IS_ESCALATED, IS_EDITED, IS_NEGATIVE_FEEDBACK, HAS_FEEDBACK)
"""What scalar drift counts of every run in a window."""


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why one record of a batch was refused, and where it sits."""

    index: int  # 0-based position in the batch (for OTLP: the span's position)
    line: int | None  # 1-based line of a JSONL file
    run_id: str | None
    field: str | None
    reason: str
    where: str = ""  # OTLP: the span's path in the request

    def describe(self, source: str = "") -> str:
        if self.line is not None:
            at = f"{source}:{self.line}"
        elif self.where:
            at = f"{source} {self.where}" if source else self.where
        else:
            at = f"{source}[{self.index}]"
        if self.run_id:
            at += f" (run {self.run_id})"
        return (
            f"{at}: field '{self.field}': {self.reason}" if self.field else f"{at}: {self.reason}"
        )

    def to_dict(self) -> dict[str, Any]:
        """A rejection as ``runs import --json`` and ``POST /v1/runs`` list it."""
        return {
            "index": self.index,
            "line": self.line,
            "run_id": self.run_id,
            "field": self.field,
            "reason": self.reason,
            "where": self.where,
            "message": self.describe(),
        }


def rejection_error(rejected: list[Rejection], total: int, source: str) -> InputError | None:
    """One InputError summing up a batch's rejections (None when there are none)."""
    if not rejected:
        return None
    first = rejected[0]
    lines = [r.describe(source) for r in rejected[:20]]
    more = f"\n  ... and {total - len(lines)} more" if total > len(lines) else ""
    return InputError(
        f"{total} record(s) rejected, nothing imported:\n  " + "\n  ".join(lines) + more,
        source=source or None,
        line=first.line,
        hint="fix the records named above and send the whole batch again",
    )


@dataclass(frozen=True, slots=True)
class BatchResult:
    """Accepted runs and rejections; callers land nothing unless ``ok``.

    ``duplicates`` counts records repeating an earlier record of the batch exactly
    (same run_id, same content): they are dropped, so a file concatenated with
    itself does not double-count. Across batches, the store does the same with
    ``same_content``.
    """

    accepted: list[RunRecord]
    rejected: list[Rejection]
    duplicates: int = 0
    rejected_count: int = 0  # may exceed len(rejected), which is capped

    @property
    def ok(self) -> bool:
        return not self.rejected

    def error(self, source: str = "") -> InputError | None:
        return rejection_error(self.rejected, self.rejected_count, source)


class KnownNames(NamedTuple):
    """What the store knows that a run must agree with (``RunRepo.known_names``)."""

    environments: Mapping[str, Sequence[str]]  # workflow -> its environments
    version_workflows: Mapping[str, str]  # version_id -> its workflow (registered ones)


RunKey = tuple[str, str, str]
"""A run's (workflow, env, version_id): what ``name_problems`` judges."""


def name_problem(key: RunKey, known: KnownNames) -> tuple[str, str] | None:
    """Why a run naming (workflow, env, version_id) cannot land, as (field, reason), or
    None. A typo would otherwise be stored for good as a version outside the gate; an
    unregistered version is not a problem here (that is what the gate check reports)."""
    workflow, env, version_id = key
    envs = known.environments.get(workflow)
    if envs is None:
        near = difflib.get_close_matches(workflow, list(known.environments), n=1)
        hint = f" (did you mean '{near[0]}'?)" if near else ""
        return "workflow", f"no workflow '{printable(workflow)}' is registered{hint}"
    if env not in envs:
        return "env", (
            f"workflow '{workflow}' has no environment '{printable(env)}' "
            f"(it has: {', '.join(envs)})"
        )
    owner = known.version_workflows.get(version_id)
    if owner is not None and owner != workflow:
        return "version_id", (
            f"version {version_id[:12]} belongs to workflow '{owner}', not '{workflow}'"
        )
    return None


def name_problems(keys: Iterable[RunKey], known: KnownNames) -> dict[RunKey, tuple[str, str]]:
    """``name_problem`` of each distinct key (a batch has a handful: cheap on any size)."""
    out: dict[RunKey, tuple[str, str]] = {}
    for key in keys:
        problem = name_problem(key, known)
        if problem is not None:
            out[key] = problem
    return out


def name_rejections(
    records: Sequence[RunRecord],
    known: KnownNames,
    spots: Sequence[tuple[int, int | None]] | None = None,
) -> tuple[list[Rejection], set[int]]:
    """Rejections for the records whose names ``name_problems`` refuses, and their
    positions in ``records``; ``spots`` gives each record's (index, line) when known."""
    problems = name_problems({(r[1], r[3], r[2]) for r in records}, known)
    if not problems:
        return [], set()
    rejected: list[Rejection] = []
    bad: set[int] = set()
    for i, r in enumerate(records):
        problem = problems.get((r[1], r[3], r[2]))
        if problem is not None:
            index, line = spots[i] if spots is not None else (i, None)
            rejected.append(Rejection(index, line, r.run_id, problem[0], problem[1]))
            bad.add(i)
    return rejected, bad


class RecordError(Exception):
    """Internal and cheap: one field of one record is bad (turned into a Rejection)."""

    def __init__(self, field: str | None, reason: str) -> None:
        self.field = field
        self.reason = reason


def epoch_of(now: datetime) -> float:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.timestamp()


def parse_run(
    obj: Any,
    *,
    now: datetime,
    source: str = "sdk",
    where: str | None = None,
    line: int | None = None,
    max_skew: timedelta = DEFAULT_MAX_SKEW,
) -> RunRecord:
    """Validate one run record, raising an InputError naming ``where``, line and field."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    try:
        return build_run(obj, epoch_of(now), max_skew.total_seconds(), source)
    except RecordError as bad:
        raise InputError(bad.reason, source=where, line=line, field=bad.field) from None


def parse_batch(
    objs: Iterable[Any],
    *,
    now: datetime,
    source: str = "http",
    max_skew: timedelta = DEFAULT_MAX_SKEW,
    max_rejections: int = 1000,
) -> BatchResult:
    """Validate every record of a batch (rejections carry their 0-based index)."""
    return _parse_items(objs, build_run, now, source, max_skew, max_rejections)


def parse_values(
    items: Iterable[RunValues],
    *,
    now: datetime,
    source: str = "sdk",
    max_skew: timedelta = DEFAULT_MAX_SKEW,
    max_rejections: int = 1000,
) -> BatchResult:
    """``parse_batch`` of records given as their values in ``FIELDS`` order (``RunValues``,
    what the SDK hands its writer): the same rules and messages, without a dict per run."""
    return _parse_items(items, build_run_values, now, source, max_skew, max_rejections)


def _parse_items(
    objs: Iterable[Any],
    build: Callable[[Any, float, float, str], RunRecord],
    now: datetime,
    source: str,
    max_skew: timedelta,
    max_rejections: int,
) -> BatchResult:
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    items = objs if type(objs) is list else list(objs)
    now_s, skew_s = epoch_of(now), max_skew.total_seconds()
    # the usual batch (an SDK's, an HTTP body): every record valid, every run_id its own;
    # one plain loop, then the set check. Anything else starts over in ``_collect``,
    # which places every rejection and repeat (``build`` is pure: the same answers).
    runs: list[RunRecord] = []
    append = runs.append
    try:
        if build is build_run_values:  # the SDK's: straight into the rules, a call fewer
            for values in items:
                append(_check(now_s, skew_s, source, *values))
        else:
            for obj in items:
                append(build(obj, now_s, skew_s, source))
    except (RecordError, TypeError):  # TypeError: values of another length
        pass
    else:
        if len(set(map(_RUN_ID, runs))) == len(runs):
            return BatchResult(runs, [])
    return _collect(
        ((i, None, obj) for i, obj in enumerate(items)),
        now_s,
        skew_s,
        source,
        max_rejections,
        build,
    )


def run_dict(values: RunValues) -> dict[str, Any]:
    """The record ``values`` stand for, as a JSON object (a spill file's line, an HTTP
    body's item); a missing ``provider`` or ``operation`` is left out, as the SDK sends."""
    record = dict(zip(FIELDS, values, strict=True))
    if record["provider"] is None:
        del record["provider"]
    if record["operation"] is None:
        del record["operation"]
    return record


def parse_jsonl(
    lines: Iterable[str | bytes],
    *,
    now: datetime,
    source: str = "jsonl",
    max_skew: timedelta = DEFAULT_MAX_SKEW,
    max_rejections: int = 1000,
) -> BatchResult:
    """Validate a JSONL stream (one run per line, blank lines skipped); rejections carry
    their 1-based line, and a line that is not JSON is a rejection, not an exception."""
    return _collect(
        _decode_lines(lines), epoch_of(now), max_skew.total_seconds(), source, max_rejections
    )


class _Malformed(NamedTuple):
    reason: str


_BLANK = _Malformed("blank")


def _decode_lines(lines: Iterable[str | bytes]) -> Iterable[tuple[int, int | None, Any]]:
    index = 0
    loads = _fast_loads or json.loads
    for number, raw in enumerate(lines, start=1):
        if number == 1:
            raw = (
                raw.lstrip("\ufeff") if isinstance(raw, str) else raw.removeprefix(b"\xef\xbb\xbf")
            )
        try:
            obj = loads(raw)
        except (ValueError, RecursionError):
            obj = _decode_slowly(raw)
            if obj is _BLANK:
                continue
        yield index, number, obj
        index += 1


def _decode_slowly(raw: str | bytes) -> Any:
    """The standard library's reading of a line the fast reader refused: what it accepts
    (NaN, a lone surrogate escape, a 30-digit number) goes on to the same validation,
    and what it refuses is described in its words. The one difference left: a whole
    number beyond 64 bits reaches validation as a float (refused or kept as before, with
    another reason for a count)."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        if not raw.strip():  # a blank line: looked for only here, as strip() copies
            return _BLANK
        return _Malformed(f"malformed JSON: {exc.msg} (column {exc.colno})")
    except UnicodeDecodeError as exc:
        return _Malformed(f"not UTF-8 text ({exc.reason})")
    except RecursionError:  # [[[[...]]]]
        return _Malformed(deep_message())
    except ValueError as exc:  # a 5000-digit number
        return _Malformed(f"unreadable JSON: {str(exc).split(';')[0]}")


def _collect(
    items: Iterable[tuple[int, int | None, Any]],
    now_s: float,
    skew_s: float,
    source: str,
    max_rejections: int,
    build: Callable[[Any, float, float, str], RunRecord] | None = None,
) -> BatchResult:
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    build = build or build_run
    runs: list[RunRecord] = []
    spots: list[tuple[int, int | None]] = []
    rejected: list[Rejection] = []
    count = 0
    for index, line, obj in items:
        try:
            if type(obj) is _Malformed:
                raise RecordError(None, obj.reason)
            runs.append(build(obj, now_s, skew_s, source))
            spots.append((index, line))
        except RecordError as bad:
            count += 1
            if len(rejected) < max_rejections:
                run_id = (
                    shown_run_id(obj.get("run_id"))
                    if isinstance(obj, Mapping)
                    else shown_run_id(obj[0])
                    if build is build_run_values
                    else None
                )
                rejected.append(Rejection(index, line, run_id, bad.field, bad.reason))

    def conflict(
        at: tuple[int, int | None], run: RunRecord, first: tuple[int, int | None]
    ) -> Rejection:
        before = f"line {first[1]}" if first[1] is not None else f"record {first[0]}"
        reason = f"already used by {before} with different content"
        return Rejection(at[0], at[1], run.run_id, "run_id", reason)

    kept, repeats, conflicts = drop_repeats(runs, spots, conflict)
    if conflicts:
        count += len(conflicts)
        rejected = sorted(rejected + conflicts, key=lambda r: r.index)[:max_rejections]
    return BatchResult(kept, rejected, repeats, count)


def drop_repeats(
    runs: list[RunRecord],
    spots: list[_Spot],
    conflict: Callable[[_Spot, RunRecord, _Spot], Rejection],
) -> tuple[list[RunRecord], int, list[Rejection]]:
    """Keep the first of exact repeats (same run_id, same content) and count the rest;
    a run_id reused with other content is a rejection. One set lookup when, as almost
    always, every run_id is distinct."""
    if len(set(map(_RUN_ID, runs))) == len(runs):
        return runs, 0, []
    first: dict[str, int] = {}
    kept: list[RunRecord] = []
    repeats = 0
    conflicts: list[Rejection] = []
    for i, run in enumerate(runs):
        j = first.setdefault(run.run_id, i)
        if j == i:
            kept.append(run)
        elif same_content(runs[j], run):
            repeats += 1
        else:
            conflicts.append(conflict(spots[i], run, spots[j]))
    return kept, repeats, conflicts


_RUN_ID = operator.itemgetter(0)


def same_content(a: RunRecord, b: RunRecord) -> bool:
    """Whether two records describe the same run, whichever front each came through
    (for a store meeting a run_id it already has: skip it, or refuse the batch)."""
    return a[:-2] == b[:-2] and a.arm == b.arm  # all but ``source``


def shown_run_id(value: Any) -> str | None:
    """A rejected record's run_id as a report can print it (None if it is not an id)."""
    if type(value) is int:
        return str(value)
    return printable(value) if type(value) is str else None


def printable(text: str) -> str:
    """``text`` with any lone surrogate escaped (``\\ud800``), for messages about bad input."""
    return text if text.isascii() else text.encode("utf-8", "backslashreplace").decode()


def build_run(obj: Any, now_s: float, skew_s: float, source: str) -> RunRecord:
    """The rules, on one plain record (a JSON object); raises RecordError(field, reason)."""
    if type(obj) is not dict and not isinstance(obj, Mapping):
        raise RecordError(None, f"expected a JSON object, got {type_name(obj)}")
    if not _KNOWN.issuperset(obj):
        unknown = sorted(printable(str(k)) for k in obj if k not in _KNOWN)
        raise RecordError(unknown[0], "unknown field; put extra data under 'attributes'")
    return _check(now_s, skew_s, source, *map(obj.get, FIELDS))


def build_run_values(values: RunValues, now_s: float, skew_s: float, source: str) -> RunRecord:
    """``build_run`` of a record given as its values in ``FIELDS`` order: the same rules
    (one function applies them to both) and the same messages."""
    if len(values) != len(FIELDS):
        raise RecordError(None, f"expected {len(FIELDS)} values in FIELDS order, got {len(values)}")
    return _check(now_s, skew_s, source, *values)


_GOOD_IDS: set[str] = set()
"""Version ids that passed the check (a process sees a handful): a set lookup instead of
scanning 64 characters per run. Bounded; cleared when full."""


def _check(
    now_s: float, skew_s: float, source: str,
    run_id: Any, workflow: Any, version_id: Any, env: Any, started_at: Any, ended_at: Any,
    latency: Any, status: Any, reason: Any, tokens_in: Any, tokens_out: Any, cost: Any,
    model: Any, provider: Any, operation: Any, retries: Any, escalated: Any, edited: Any,
    feedback: Any, text_in: Any, text_out: Any, label: Any, attributes: Any, arm: Any,
) -> RunRecord:  # fmt: skip
    """The rules, on the values of one record in ``FIELDS`` order (None where missing),
    received at ``now_s`` with clocks ``skew_s`` apart, from ``source``.

    Each check is inlined for the common valid value and calls its helper only to
    convert or to fail: a function call costs as much as the check itself."""
    if type(workflow) is not str or not 0 < len(workflow) <= NAME_MAX or not workflow.isascii():
        workflow = _name(workflow, "workflow", True)
    if type(env) is not str or not 0 < len(env) <= NAME_MAX or not env.isascii():
        env = _name(env, "env", True)
    if type(version_id) is not str or version_id not in _GOOD_IDS:
        if type(version_id) is not str or len(version_id) != 64 or version_id.strip(_HEX):
            version_id = _version_id(version_id)
        if len(_GOOD_IDS) >= 1024:
            _GOOD_IDS.clear()
        _GOOD_IDS.add(version_id)

    # a float inside the bounds _epoch and _number accept passes as it is
    started = started_at
    if type(started) is not float or not EARLIEST <= started <= 1e11:
        started = _epoch(started, "started_at")
    limit = now_s + skew_s
    if started > limit:
        raise RecordError("started_at", _ahead(started - now_s, skew_s))
    if latency is not None and (type(latency) is not float or not 0.0 <= latency < INF):
        latency = _number(latency, "latency_ms", 0.0, INF)
    ended = ended_at
    if ended is None:
        if latency is None:
            raise RecordError("ended_at", "is required (or give latency_ms)")
        ended = started + latency / 1000.0
    else:
        if type(ended) is not float or not EARLIEST <= ended <= 1e11:
            ended = _epoch(ended, "ended_at")
        if ended < started:
            raise RecordError(
                "ended_at", f"is {_span(started - ended)} before started_at: a clock went back?"
            )
        if ended > limit:
            raise RecordError("ended_at", _ahead(ended - now_s, skew_s))
        if latency is None:
            latency = (ended - started) * 1000.0

    if status != "ok" and status != "error":  # two compares beat `in`
        if status is None:
            raise RecordError("status", "is required ('ok' or 'error')")
        raise RecordError("status", f"expected 'ok' or 'error', got {_show(status)}")
    if reason is None:
        if status == "error":
            raise RecordError("failure_reason", "is required when status is 'error'")
    elif type(reason) is not str or not reason or not reason.isascii():
        reason = _string(reason, "failure_reason")

    if type(tokens_in) is not int or not 0 <= tokens_in < COUNT_MAX:
        tokens_in = _count(tokens_in, "tokens_in")
    if type(tokens_out) is not int or not 0 <= tokens_out < COUNT_MAX:
        tokens_out = _count(tokens_out, "tokens_out")
    if retries is None:  # missing, in most records of a file
        retries = 0
    elif type(retries) is not int or not 0 <= retries < COUNT_MAX:
        retries = _count(retries, "retries")
    if cost is not None and (type(cost) is not float or not 0.0 <= cost < INF):
        cost = _number(cost, "cost_usd", 0.0, INF)
    if feedback is not None:
        feedback = _number(feedback, "feedback", -1.0, 1.0)
    if escalated is None:
        escalated = False
    elif type(escalated) is not bool:
        escalated = _flag(escalated, "escalated")
    if edited is None:
        edited = False
    elif type(edited) is not bool:
        edited = _flag(edited, "edited")

    if model is not None and (
        type(model) is not str or not 0 < len(model) <= NAME_MAX or not model.isascii()
    ):
        model = _name(model, "model", False)
    if provider is not None and (
        type(provider) is not str or not 0 < len(provider) <= NAME_MAX or not provider.isascii()
    ):
        provider = _name(provider, "provider", False)
    if operation is not None and (
        type(operation) is not str or not 0 < len(operation) <= NAME_MAX or not operation.isascii()
    ):
        operation = _name(operation, "operation", False)
    if label is not None and (
        type(label) is not str or not 0 < len(label) <= NAME_MAX or not label.isascii()
    ):
        label = _name(label, "label", False)
    if text_in is not None and (type(text_in) is not str or not text_in.isascii()):
        text_in = _text(text_in, "input")
    if text_out is not None and (type(text_out) is not str or not text_out.isascii()):
        text_out = _text(text_out, "output")
    attributes = {} if attributes is None else _attributes(attributes)
    if arm is not None and arm != "stable" and arm != "canary" and arm != "shadow":
        raise RecordError("arm", f"expected 'stable', 'canary' or 'shadow', got {_show(arm)}")

    if run_id is None:
        run_id = derived_run_id(
            (started, ended, latency, cost, feedback, tokens_in, tokens_out, retries),
            (workflow, version_id, env, status, reason, model, provider, operation)
            + (escalated, edited, text_in, text_out, label, sorted(attributes.items()))
            + ((arm,) if arm is not None else ()),  # ids of runs outside a rollout hold
        )
    elif type(run_id) is not str or not 0 < len(run_id) <= NAME_MAX or not run_id.isascii():
        run_id = _name(str(run_id) if type(run_id) is int else run_id, "run_id", True)
    return _new(RunRecord, (
        run_id, workflow, version_id, env, started, ended, latency, status, reason,
        tokens_in, tokens_out, cost, model, provider, operation, retries, escalated, edited,
        feedback, text_in, text_out, label, attributes, source, arm,
    ))  # fmt: skip


_new = tuple.__new__  # RunRecord's own __new__ is a Python wrapper around this
_NUMBERS = struct.Struct("<dddddqqq")
_NAN = float("nan")


def derived_run_id(numbers: tuple[Any, ...], texts: tuple[Any, ...]) -> str:
    """A stable id for a record that brought none: the same content, the same id, so
    importing the same file twice cannot double-count. It covers every field except
    the id and the source, so the same run sent by two fronts gets one id; the numbers
    are packed as bytes (``repr`` of six floats costs more than the hash)."""
    start, end, latency, cost, feedback, tokens_in, tokens_out, retries = numbers
    packed = _NUMBERS.pack(
        start,
        end,
        latency,
        _NAN if cost is None else cost,
        _NAN if feedback is None else feedback,
        tokens_in,
        tokens_out,
        retries,
    )
    text = repr(texts).encode("utf-8")
    return hashlib.sha256(packed + text).hexdigest()[:32]


def _name(value: Any, field: str, required: bool) -> Any:
    if value is None:
        if required:
            raise RecordError(field, "is required")
        return None
    value = _string(value, field)
    if len(value) > NAME_MAX:
        raise RecordError(field, f"is {len(value)} characters long, more than {NAME_MAX}")
    return value


def _string(value: Any, field: str) -> str:
    if type(value) is not str or not value:
        raise RecordError(field, f"expected a non-empty string, got {_show(value)}")
    return _valid(value, field)


def _valid(text: str, field: str) -> str:
    """``text``, if UTF-8 can encode it: JSON's ``"\\ud800"`` decodes to a lone surrogate,
    which would pass every other check and then fail in a hash or in the database."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            at = exc.start
            raise RecordError(
                field,
                f"not valid UTF-8 text: lone surrogate {text[at]!a} at character {at + 1} "
                "(a string cut between the two halves of a UTF-16 pair?)",
            ) from None
    return text


def _version_id(value: Any) -> str:
    if value is None:
        raise RecordError("version_id", "is required")
    if type(value) is str:
        lowered = value.lower()
        if len(lowered) == 64 and not lowered.strip(_HEX):
            return lowered
        if 6 <= len(lowered) < 64 and not lowered.strip(_HEX):
            raise RecordError(
                "version_id",
                f"'{value}' is a short id; send the full 64-hex id "
                "(`releasegate resolve WORKFLOW --env ENV` prints it)",
            )
    raise RecordError("version_id", f"expected a 64-hex version id, got {_show(value)}")


def _epoch(value: Any, field: str) -> float:
    kind = type(value)
    if kind is str:
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise RecordError(
                field, f"expected an ISO-8601 time or epoch seconds, got {_show(value)}"
            ) from None
        if moment.tzinfo is None:
            raise RecordError(field, f"'{value}' has no UTC offset; add 'Z' or '+00:00'")
        seconds = moment.timestamp()
    elif kind is float or kind is int:
        if value > 1e11:  # year 5138 in seconds; 1973 in milliseconds
            raise RecordError(
                field,
                f"{value} looks like epoch milliseconds or nanoseconds; send epoch seconds "
                "or an ISO-8601 time",
            )
        if value != value:
            raise RecordError(field, "is not a number")
        seconds = float(value)
    elif value is None:
        raise RecordError(field, "is required")
    else:
        raise RecordError(field, f"expected an ISO-8601 time or epoch seconds, got {_show(value)}")
    if seconds < EARLIEST:
        raise RecordError(field, f"is {_iso(seconds)}, before 2000: a clock that was never set?")
    return seconds


def _iso(seconds: float) -> str:
    try:
        return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, OSError, ValueError):
        return f"{seconds:g} s after 1970"


def _ahead(seconds: float, skew_s: float) -> str:
    return (
        f"is {_span(seconds)} ahead of the receiving clock (tolerance {_span(skew_s)}): "
        "the reporting host's clock is fast, or the time is not UTC"
    )


def _span(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.3g} s"
    if seconds < 7200:
        return f"{seconds / 60:.3g} min"
    if seconds < 172800:
        return f"{seconds / 3600:.3g} h"
    return f"{seconds / 86400:.3g} days"


def _number(value: Any, field: str, low: float, high: float) -> float:
    kind = type(value)
    if kind is not float and kind is not int:
        raise RecordError(field, f"expected a number, got {_show(value)}")
    if not low <= value <= high or value == INF or (kind is int and value > _FLOAT_MAX):
        bounds = f"in [{low:g}, {high:g}]" if high != INF else f"a finite number >= {low:g}"
        raise RecordError(field, f"expected {bounds}, got {_show(value)}")
    return float(value)


_FLOAT_MAX = 2**1000


def _count(value: Any, field: str) -> int:
    if type(value) is int and 0 <= value < COUNT_MAX:
        return value
    if value is None:
        return 0
    if type(value) is int:
        bound = ">= 0" if value < 0 else f"below {COUNT_MAX}"
        raise RecordError(field, f"expected an integer {bound}, got {_show(value)}")
    raise RecordError(field, f"expected an integer >= 0, got {_show(value)}")


def _flag(value: Any, field: str) -> bool:
    if value is None:
        return False
    raise RecordError(field, f"expected true/false, got {_show(value)}")


def _text(value: Any, field: str) -> str:
    if type(value) is str:
        return _valid(value, field)
    if not isinstance(value, dict | list):
        raise RecordError(field, f"expected a string (or JSON object/list), got {_show(value)}")
    if too_deep(value):
        raise RecordError(field, deep_message())
    try:  # structured output: stored as its JSON text
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:  # from the SDK: a datetime, {1:, "a":}
        reason = str(exc) if not isinstance(exc, RecursionError) else "nested too deeply"
        raise RecordError(field, f"cannot be stored as JSON text: {reason}") from None
    return _valid(text, field)


def _attributes(value: Any) -> dict[str, Scalar]:
    if not isinstance(value, Mapping):
        raise RecordError("attributes", f"expected a mapping, got {_show(value)}")
    out: dict[str, Scalar] = {}
    for key, item in value.items():
        if type(key) is not str:
            raise RecordError("attributes", f"keys must be strings, got {_show(key)}")
        if not key.isascii():
            _valid(key, f"attributes.{printable(key)}")
        kind = type(item)
        if kind is str:
            if not item.isascii():
                _valid(item, f"attributes.{key}")
        elif kind is float:
            if not -INF < item < INF:
                raise RecordError(f"attributes.{key}", f"expected a finite number, got {item}")
        elif kind is int:
            if not -_INT64 <= item < _INT64:
                raise RecordError(f"attributes.{key}", "integer out of the 64-bit range")
        elif kind is not bool and item is not None:
            raise RecordError(
                f"attributes.{key}",
                f"expected a string, number, true/false or null, got {type_name(item)}",
            )
        out[key] = item
    return out


_INT64 = 2**63


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else repr(value[:37] + "...")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int):
        digits = str(value) if -(10**15) < value < 10**15 else None
        return digits or f"an integer of {value.bit_length()} bits"
    return type_name(value)
