"""The eval engine: every (case, epoch) once, concurrently, cached, resumable.

Outputs are the cache, keyed by (version, case content hash, epoch); scores are
keyed by that plus the scorer's identity. Before any model call the engine
reads what the store already has, so an unchanged re-run makes no calls, and
after Ctrl-C the next run starts where this one stopped. Fresh results are
written in batches (one transaction per ~256 results or half a second), so
storage stays off the critical path without holding results hostage in memory.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from releasegate.domain.results import Case, CaseOutput, Score
from releasegate.domain.suite import Suite
from releasegate.providers.base import Provider
from releasegate.runner.scorers.base import Scorer
from releasegate.store.engine import Store
from releasegate.store.evals import OutputRepo, ScoreRepo

Progress = Callable[[int, int], None]  # (done, total)
FLUSH_EVERY = 256
FLUSH_SECONDS = 0.5
SCORE_ERROR = "error:"  # a Score whose detail starts so is an error, never cached


@dataclass(frozen=True, slots=True)
class CaseRun:
    """One case in one epoch with its output and every scorer's verdict."""

    case: Case
    epoch: int
    output: CaseOutput
    scores: Mapping[str, Score]  # by scorer name
    cached: bool

    @property
    def passed(self) -> bool:
        return self.output.error is None and all(s.passed for s in self.scores.values())


@dataclass(frozen=True)
class EngineResult:
    runs: tuple[CaseRun, ...]
    n_called: int
    n_cached: int
    interrupted: bool


class _Writer:
    """Buffers fresh outputs and writes them in batches; ``flush`` on any exit.

    Batches are written by one background thread, in order, so the event loop keeps
    sending requests meanwhile (a 256-row transaction stalled every call in flight
    for ~30 ms); ``flush`` writes the rest and waits, raising any write's error.
    """

    def __init__(self, store: Store, version_id: str) -> None:
        self.store = store
        self.version_id = version_id
        self.pending: list[tuple[str, int, CaseOutput]] = []
        self.last = time.monotonic()
        self._thread: ThreadPoolExecutor | None = None
        self._writes: list[Future[None]] = []

    def add(self, case_hash: str, epoch: int, output: CaseOutput) -> None:
        self.pending.append((case_hash, epoch, output))
        if len(self.pending) >= FLUSH_EVERY or time.monotonic() - self.last > FLUSH_SECONDS:
            self._send()

    def _send(self) -> None:
        for done in [w for w in self._writes if w.done()]:
            self._writes.remove(done)
            done.result()  # a failed write stops the eval now, not at the end
        if self.pending:
            batch, self.pending = self.pending, []
            if self._thread is None:
                self._thread = ThreadPoolExecutor(1, thread_name_prefix="releasegate-writer")
            self._writes.append(self._thread.submit(self._write, batch))
        self.last = time.monotonic()

    def _write(self, batch: list[tuple[str, int, CaseOutput]]) -> None:
        with self.store.write() as conn:
            OutputRepo(conn).put_many(self.version_id, batch)

    def flush(self) -> None:
        try:
            self._send()
            for w in self._writes:
                w.result()
        finally:
            self._writes.clear()
            if self._thread is not None:
                self._thread.shutdown(wait=True)
                self._thread = None


async def call_once(provider: Provider, value: Any) -> CaseOutput:
    """The provider's answer to one input: a failure is that input's answer (an error), not
    the caller's; the latency is timed here when the provider reports none."""
    started = time.perf_counter()
    try:
        out = await provider.complete(value)
    except Exception as exc:  # a provider failure is this input's result, not the run's
        out = CaseOutput(text="", error=f"{type(exc).__name__}: {exc}")
    if not out.latency_ms:
        out = dataclasses.replace(out, latency_ms=(time.perf_counter() - started) * 1000)
    return out


async def _call_all(
    provider: Provider,
    todo: Sequence[tuple[Case, int]],
    concurrency: int,
    writer: _Writer,
    fresh: dict[tuple[str, int], CaseOutput],
    progress: Progress | None,
    done_before: int,
    total: int,
) -> None:
    queue: asyncio.Queue[tuple[Case, int]] = asyncio.Queue()
    for item in todo:
        queue.put_nowait(item)
    done = done_before

    async def worker() -> None:
        nonlocal done
        while True:
            try:
                case, epoch = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            out = await call_once(provider, case.input)
            fresh[(case.case_hash, epoch)] = out
            writer.add(case.case_hash, epoch, out)
            done += 1
            if progress is not None:
                progress(done, total)

    workers = [asyncio.create_task(worker()) for _ in range(max(1, min(concurrency, len(todo))))]
    try:
        await asyncio.gather(*workers)
    finally:
        for w in workers:
            w.cancel()


def run_suite(
    store: Store,
    *,
    version_id: str,
    suite: Suite,
    provider: Provider,
    scorers: Sequence[tuple[str, Scorer]],
    epochs: int = 1,
    concurrency: int = 8,
    use_cache: bool = True,
    progress: Progress | None = None,
) -> EngineResult:
    """Produce a CaseRun for every (case, epoch); ``scorers`` are (scorer_id, scorer) pairs."""
    keys = [(c, e) for c in suite.cases for e in range(epochs)]
    hashes = {c.case_hash for c in suite.cases}
    with store.read() as conn:
        cached_out = OutputRepo(conn).get_many(version_id, hashes) if use_cache else {}
        cached_scores = ScoreRepo(conn).get_many(version_id) if use_cache else {}
    outputs: dict[tuple[str, int], CaseOutput] = {}
    for c, e in keys:
        hit = cached_out.get((c.case_hash, e))
        if hit is not None and hit.error is None:
            outputs[(c.case_hash, e)] = hit
    # cases of identical content share one call and one cache row (the cache is by content)
    todo = list(
        {(c.case_hash, e): (c, e) for c, e in keys if (c.case_hash, e) not in outputs}.values()
    )
    n_cached = len(keys) - len(todo)
    if progress is not None:
        progress(n_cached, len(keys))

    fresh: dict[tuple[str, int], CaseOutput] = {}
    interrupted = False
    writer = _Writer(store, version_id)
    if todo:
        provider.warm(_distinct([c.input for c, _ in todo]))
        try:
            asyncio.run(
                _call_all(provider, todo, concurrency, writer, fresh, progress, n_cached, len(keys))
            )
        except KeyboardInterrupt:
            interrupted = True
        finally:
            writer.flush()
        if interrupted:
            raise KeyboardInterrupt(f"{len(fresh)} new results kept; re-run to resume")
    outputs.update(fresh)

    runs: list[CaseRun] = []
    new_scores: list[tuple[str, int, str, Score]] = []
    stored: set[tuple[str, int, str]] = set()
    judged: dict[tuple[str, int, str], Score] = {}
    try:
        awaited = _await_scores(scorers, keys, outputs, fresh, cached_scores, concurrency, judged)
    except KeyboardInterrupt:  # the verdicts already obtained are paid for: keep them
        kept = _keep_verdicts(store, version_id, judged, use_cache)
        raise KeyboardInterrupt(
            f"{len(fresh)} new results and {kept} judge verdict{'s' * (kept != 1)} kept; "
            "re-run to resume"
        ) from None
    for c, e in keys:
        out = outputs[(c.case_hash, e)]
        is_fresh = (c.case_hash, e) in fresh
        by_name: dict[str, Score] = {}
        for scorer_id, scorer in scorers:
            cached = None if is_fresh else cached_scores.get((c.case_hash, e, scorer_id))
            if cached is not None:
                by_name[scorer.name] = cached
                continue
            key = (c.case_hash, e, scorer_id)
            s = awaited[key] if key in awaited else _score(scorer, c, out)
            by_name[scorer.name] = s
            worth_keeping = out.error is None and not s.detail.startswith(SCORE_ERROR)
            if worth_keeping and key not in stored:  # errors are asked again; twins once
                stored.add(key)
                new_scores.append((c.case_hash, e, scorer_id, s))
        runs.append(CaseRun(c, e, out, by_name, cached=not is_fresh))
    if new_scores or (fresh and not use_cache):
        with store.write() as conn:
            if not use_cache:  # every fresh case, also one whose only new score is an error
                ScoreRepo(conn).forget(version_id, {h for h, _ in fresh})
            ScoreRepo(conn).put_many(version_id, new_scores)
    return EngineResult(
        tuple(runs), n_called=len(fresh), n_cached=n_cached, interrupted=interrupted
    )


def _await_scores(
    scorers: Sequence[tuple[str, Scorer]],
    keys: Sequence[tuple[Case, int]],
    outputs: Mapping[tuple[str, int], CaseOutput],
    fresh: Mapping[tuple[str, int], CaseOutput],
    cached: Mapping[tuple[str, int, str], Any],
    concurrency: int,
    judged: dict[tuple[str, int, str], Score],
) -> dict[tuple[str, int, str], Score]:
    """Scores of scorers that have ``async ascore`` (an LLM judge), awaited concurrently;
    each lands in ``judged`` as it arrives, so an interrupt keeps those already given."""
    distinct = {
        (c.case_hash, e, sid): (c, e, sid, scorer)
        for c, e in keys
        for sid, scorer in scorers
        if hasattr(scorer, "ascore")
        and outputs[(c.case_hash, e)].error is None
        and ((c.case_hash, e) in fresh or (c.case_hash, e, sid) not in cached)
    }
    todo = list(distinct.values())  # a judge is asked once per distinct case content
    if not todo:
        return {}

    async def score_all() -> list[Score]:
        slots = asyncio.Semaphore(max(1, concurrency))

        async def one(case: Case, epoch: int, sid: str, scorer: Any) -> Score:
            async with slots:
                score: Score = await scorer.ascore(case, outputs[(case.case_hash, epoch)])
                judged[(case.case_hash, epoch, sid)] = score
                return score

        return await asyncio.gather(*(one(c, e, sid, s) for c, e, sid, s in todo))

    scores = asyncio.run(score_all())
    return {(c.case_hash, e, sid): s for (c, e, sid, _), s in zip(todo, scores, strict=True)}


def _keep_verdicts(
    store: Store, version_id: str, judged: Mapping[tuple[str, int, str], Score], use_cache: bool
) -> int:
    """Store the judge verdicts obtained before an interrupt (errors are asked again)."""
    rows = [
        (h, e, sid, s) for (h, e, sid), s in judged.items() if not s.detail.startswith(SCORE_ERROR)
    ]
    if rows:
        with store.write() as conn:
            if not use_cache:  # --no-cache: these replace what was stored before
                ScoreRepo(conn).forget(version_id, {h for h, _, _, _ in rows})
            ScoreRepo(conn).put_many(version_id, rows)
    return len(rows)


def _score(scorer: Scorer, case: Case, output: CaseOutput) -> Score:
    if output.error is not None:
        return Score(0.0, False, f"error: {output.error}")
    return scorer.score(case, output)


def _distinct(inputs: Sequence[Any]) -> list[Any]:
    """Each distinct input once, so a batching provider never does the same work twice."""
    seen: set[str] = set()
    out = []
    for value in inputs:
        key = value if isinstance(value, str) else repr(value)
        if key not in seen:
            seen.add(key)
            out.append(value)
    return out
