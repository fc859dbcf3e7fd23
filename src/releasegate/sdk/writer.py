"""The SDK's run writer: a bounded queue in memory, a thread that stores batches, and an
explicit policy for when the queue is full.

The request path takes a lock, appends one tuple (the run's values in
``domain.runs.FIELDS`` order) and returns. A background thread takes batches off the
queue and lands each through the bulk path (``ingest_values``: the validation and row
encoding of ``releasegate runs import``, one transaction per batch). When the queue
is full, ``on_overflow`` decides, and every run is accounted for in ``stats`` (sent =
stored + duplicates + rejected + spilled + dropped + failed + still queued):

- ``spill``: the run goes to a JSONL file on disk (``spill.py``), replayed later;
  a failed batch (the store is down) is spilled at once too.
- ``block``: the caller waits until the writer has made room (back-pressure).
- ``drop_oldest``: the oldest queued run makes room, counted and logged once per
  ``warn_every`` seconds.

``flush()`` and ``close()`` store, or spill, everything queued and return a
``FlushReport``; if some runs could be neither stored nor spilled they raise
``RunsNotStoredError`` carrying the report.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from releasegate.domain.runs import RunValues, run_dict
from releasegate.errors import InputError, RunsNotStoredError, SDKUsageError
from releasegate.release.store_access import Store
from releasegate.sdk.spill import Spill

if TYPE_CHECKING:
    from releasegate.monitor.ingest import IngestResult

log = logging.getLogger("releasegate.sdk")

POLICIES = ("spill", "block", "drop_oldest")
MAX_REASONS = 20
RETRY_AFTER = 1.0
"""Seconds between two attempts at a store that failed (the queue keeps filling meanwhile)."""


@dataclass
class ClientStats:
    """Every run the application sent, by where it went (a live view; read, don't write)."""

    submitted: int = 0
    stored: int = 0
    duplicates: int = 0  # already in the store (a replay, a re-sent run_id with the same content)
    rejected: int = 0  # invalid (a bad value the application set): logged with its reason
    spilled: int = 0  # written to the spill file, stored when it is replayed
    dropped: int = 0  # on_overflow="drop_oldest", or recorded after close()
    failed: int = 0  # neither stored nor spilled: lost, and raised by flush()/close()
    replayed: int = 0  # runs read back from spill files and stored (or found already stored)
    texts_dropped: int = 0  # runs stored without input/output: their data class forbids them
    failed_batches: int = 0
    last_error: str | None = None
    reasons: list[str] = field(default_factory=list)  # the latest rejections, worded

    @property
    def written(self) -> int:
        """The runs stored (the older name of ``stored``)."""
        return self.stored


class FlushReport(NamedTuple):
    """What happened to the runs handled since the previous flush (or the start)."""

    stored: int
    spilled: int
    dropped: int
    failed: int  # could be neither stored nor spilled
    rejected: int = 0
    duplicates: int = 0
    queued: int = 0  # still waiting in memory (the store is down, the policy keeps them)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.queued == 0


_COUNTED = ("stored", "spilled", "dropped", "failed", "rejected", "duplicates")


class RunWriter:
    """The queue and the thread behind ``Client.run``; see the module docstring."""

    def __init__(
        self,
        open_store: Callable[[], Store],
        *,
        on_overflow: str = "spill",
        max_queue: int = 100_000,
        batch_size: int = 5000,
        flush_every: float = 1.0,
        spill: Spill | None = None,
        warn_every: float = 60.0,
        ingest: Callable[[list[dict[str, Any]]], IngestResult] | None = None,
    ) -> None:
        if on_overflow not in POLICIES:
            raise SDKUsageError(
                f"unknown overflow policy {on_overflow!r}",
                field="on_overflow",
                hint="one of: " + ", ".join(POLICIES),
            )
        if on_overflow == "spill" and spill is None:
            raise SDKUsageError("on_overflow='spill' needs a spill_dir", field="spill_dir")
        if max_queue < 1 or batch_size < 1:
            raise SDKUsageError(
                "max_queue and batch_size must be at least 1", field="max_queue/batch_size"
            )
        self._open_store = open_store
        self._ingest_dicts = ingest or self._ingest_dicts_here
        """Lands one batch of JSON objects (a spill file's), keeping its good runs: the
        store's ``ingest_dicts`` here, or a server's ``POST /v1/runs`` (``sdk/remote.py``)."""
        self._ingest = self._ingest_values_here if ingest is None else self._ingest_as_dicts
        """Lands one batch of queued runs (``RunValues``): ``ingest_values`` here; a
        server takes them as JSON objects."""
        self.on_overflow = on_overflow
        self.max_queue = max_queue
        self.batch_size = batch_size
        self.flush_every = flush_every
        self.warn_every = warn_every
        self._spill = spill
        self.stats = ClientStats()
        self._queue: collections.deque[RunValues] = collections.deque()
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._waiters: list[threading.Event] = []
        self._pending = 0  # queued + being written; only under _lock
        self._stopping = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._down_until = 0.0  # monotonic time before which the store is not tried again
        self._unstored = 0  # after the last final drain: runs neither stored nor spilled
        self._warned_at = -1e9
        self._last_report = dict.fromkeys(_COUNTED, 0)
        self._replay_due = spill is not None and any(spill.waiting())
        if self._replay_due:
            self._start()

    # -- the request path ------------------------------------------------------------------

    def submit(self, record: RunValues) -> None:
        with self._lock:
            if self._pending < self.max_queue and not self._closed:
                self._pending += 1
                self.stats.submitted += 1
                self._queue.append(record)
                queued = len(self._queue)
            else:
                queued = -1
        if queued < 0:
            self._overflow(record)
        elif self._thread is None:
            self._start()
        elif queued >= self.batch_size and not self._wake.is_set():
            self._wake.set()

    def _overflow(self, record: RunValues) -> None:
        if self._closed:
            with self._lock:
                self.stats.submitted += 1
                self.stats.dropped += 1
            self._warn("a run recorded after close() was dropped")
            return
        if self.on_overflow == "block":
            with self._room:
                while self._pending >= self.max_queue and not self._closed:
                    self._wake.set()
                    self._room.wait(0.5)
                if not self._closed:
                    self._pending += 1
                    self.stats.submitted += 1
                    self._queue.append(record)
                    return
            self._overflow(record)  # closed while waiting
            return
        if self.on_overflow == "drop_oldest":
            with self._lock:
                self.stats.submitted += 1
                self.stats.dropped += 1
                if self._queue:  # else every pending run is being written: this one goes
                    self._queue.popleft()
                    self._queue.append(record)
                dropped = self.stats.dropped
            self._warn(
                f"the run queue is full ({self.max_queue:,}): {dropped:,} runs dropped so far, "
                "the oldest first (on_overflow='drop_oldest')"
            )
            return
        assert self._spill is not None
        with self._lock:
            self.stats.submitted += 1
        try:
            self._spill.append([record])
        except OSError as exc:
            with self._lock:
                self.stats.failed += 1
            self._warn(f"the run queue is full and the spill file cannot be written: {exc}")
            return
        with self._lock:
            self.stats.spilled += 1
        self._wake.set()

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._warned_at >= self.warn_every:
            self._warned_at = now
            log.warning("releasegate: %s", message)

    # -- the writer thread -----------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="releasegate-runs", daemon=True
                )
                self._thread.start()

    def _loop(self) -> None:
        if self._replay_due:
            self._replay()
        while True:
            self._wake.wait(self.flush_every)
            self._wake.clear()
            with self._lock:
                waiters, self._waiters = self._waiters, []
                stopping = self._stopping
            final = bool(waiters) or stopping
            self._drain(final=final, stopping=stopping)
            if self._spill is not None:
                self._sync_spill()
                if not stopping and not self._queue and self._replay_due:
                    self._replay()  # the store answers again: what was spilled goes in
            for waiter in waiters:
                waiter.set()
            if stopping:
                return

    def _drain(self, *, final: bool, stopping: bool) -> None:
        """Store what is queued now, in batches. A failed batch is spilled (policy ``spill``,
        or at a flush/close), else put back for the next attempt."""
        queue = self._queue
        limit = len(queue)
        if final:
            self._unstored = 0
            self._down_until = 0.0  # a flush or close tries the store at least once
        while limit > 0:
            with self._lock:  # the request path waits on this lock: hold it briefly
                take = min(limit, self.batch_size, len(queue))
                if take == len(queue):  # all of it (the usual case): one copy, no pops
                    batch = list(queue)
                    queue.clear()
                else:
                    popleft = queue.popleft
                    batch = [popleft() for _ in range(take)]
            if not batch:
                return
            limit -= take
            if time.monotonic() >= self._down_until and self._store(batch):
                continue
            if (self.on_overflow == "spill" or final) and self._spill_batch(batch, lost=stopping):
                continue
            if final and not stopping:
                self._unstored += len(batch)
            self._requeue(batch)
            if not final:
                time.sleep(RETRY_AFTER if not self._stopping else 0.0)
                return

    def _ingest_values_here(self, batch: list[RunValues]) -> IngestResult:
        from releasegate.monitor.ingest import ingest_values

        return ingest_values(self._open_store(), batch, source="sdk", atomic=False)

    def _ingest_dicts_here(self, batch: list[dict[str, Any]]) -> IngestResult:
        from releasegate.monitor.ingest import ingest_dicts

        return ingest_dicts(self._open_store(), batch, source="sdk", atomic=False)

    def _ingest_as_dicts(self, batch: list[RunValues]) -> IngestResult:
        return self._ingest_dicts([run_dict(values) for values in batch])

    def _store(self, batch: list[RunValues]) -> bool:
        try:
            with _gc_paused():
                result = self._ingest(batch)
        except InputError as exc:  # the whole batch refused: retrying cannot help
            self._settle(len(batch), rejected=len(batch), reasons=[str(exc)])
            return True
        except Exception as exc:  # the store failed: keep the application alive, say so
            self._down_until = time.monotonic() + RETRY_AFTER
            with self._lock:
                self.stats.failed_batches += 1
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("releasegate could not store %d runs: %s", len(batch), exc)
            return False
        reasons = [r.describe("sdk") for r in result.rejected[:5]]
        self._settle(
            len(batch),
            stored=result.landed,
            duplicates=result.duplicates,
            rejected=len(result.rejected),
            reasons=reasons,
            texts_dropped=result.texts_dropped,
        )
        if self._spill is not None and self._spill.path is not None:
            self._replay_due = True  # the store answers again: what was spilled can go in
        return True

    def _settle(
        self,
        n: int,
        *,
        stored: int = 0,
        duplicates: int = 0,
        rejected: int = 0,
        spilled: int = 0,
        failed: int = 0,
        reasons: list[str] | None = None,
        texts_dropped: int = 0,
    ) -> None:
        with self._room:
            self._pending -= n
            stats = self.stats
            stats.stored += stored
            stats.duplicates += duplicates
            stats.rejected += rejected
            stats.spilled += spilled
            stats.failed += failed
            stats.texts_dropped += texts_dropped
            if reasons:
                stats.reasons.extend(reasons)
                del stats.reasons[:-MAX_REASONS]  # a long-lived process keeps the latest few
            self._room.notify_all()
        for reason in reasons or ():
            log.warning("releasegate rejected a run: %s", reason)

    def _spill_batch(self, batch: list[RunValues], *, lost: bool) -> bool:
        if self._spill is None:
            error = "no spill_dir"
        else:
            try:
                self._spill.append(batch)
            except OSError as exc:
                error = str(exc)
            else:
                self._settle(len(batch), spilled=len(batch))
                return True
        log.error("releasegate could not spill %d runs: %s", len(batch), error)
        if lost:
            self._settle(len(batch), failed=len(batch))
            return True
        return False

    def _requeue(self, batch: list[RunValues]) -> None:
        with self._lock:
            self._queue.extendleft(reversed(batch))

    def _sync_spill(self) -> None:
        assert self._spill is not None
        try:
            self._spill.sync()
        except OSError as exc:
            log.error("releasegate could not write the spill file: %s", exc)

    def _replay(self) -> None:
        """Store the runs of closed spill files (this process's earlier ones included)."""
        assert self._spill is not None
        self._replay_due = False

        def store_batch(batch: list[dict[str, Any]]) -> None:
            result = self._ingest_dicts(batch)
            with self._lock:
                self.stats.replayed += result.landed + result.duplicates
            for rejection in result.rejected[:5]:
                log.warning("releasegate rejected a spilled run: %s", rejection.describe("sdk"))

        try:
            self._spill.rotate()
            self._spill.replay(store_batch, self.batch_size)
        except Exception as exc:  # down again: the files stay for the next attempt
            self._replay_due = True
            self._down_until = time.monotonic() + RETRY_AFTER
            log.warning("releasegate could not replay the spilled runs yet: %s", exc)

    # -- flush and close -------------------------------------------------------------------

    def flush(self, timeout: float = 30.0) -> FlushReport:
        if self._thread is not None:
            done = threading.Event()
            with self._lock:
                self._waiters.append(done)
            self._wake.set()
            if not done.wait(timeout):
                report = self._report(queued=self._pending)
                raise RunsNotStoredError(
                    f"the run writer did not finish within {timeout:g} s; "
                    f"{report.queued:,} runs are still waiting",
                    report=report,
                    hint="the store may be hanging; close() spills what is queued",
                )
        report = self._report(queued=self._unstored)
        if report.failed or report.queued:
            raise RunsNotStoredError(_not_stored(report), report=report)
        return report

    def close(self, timeout: float = 30.0) -> FlushReport:
        if self._closed:
            return self._report()
        thread = self._thread
        if thread is not None:
            with self._lock:
                self._stopping = True
            self._wake.set()
            thread.join(timeout)
        with self._room:
            self._closed = True
            leftover = list(self._queue)  # a hung writer: what it never took
            self._queue.clear()
            self._room.notify_all()
        if leftover:
            self._spill_batch(leftover, lost=True)
        if self._spill is not None:
            try:
                self._spill.close()
            except OSError as exc:
                log.error("releasegate could not close the spill file: %s", exc)
        report = self._report(queued=self._pending)  # a hung writer's batch in flight
        if report.failed or report.queued:
            message = _not_stored(report)
            log.error("releasegate: %s", message)
            raise RunsNotStoredError(message, report=report)
        return report

    def _report(self, queued: int = 0) -> FlushReport:
        with self._lock:
            now = {name: getattr(self.stats, name) for name in _COUNTED}
            delta = {name: now[name] - self._last_report[name] for name in _COUNTED}
            self._last_report = now
        return FlushReport(queued=queued, **delta)


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """A batch allocates thousands of short-lived, acyclic tuples (records, rows), and the
    cyclic collector would walk them, and the application's heap, for nothing: a third of
    the writer's time. Paused for one batch (tens of milliseconds), as the bulk import does;
    the application's own cycles are collected right after."""
    was_enabled = gc.isenabled()
    if was_enabled:
        gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _not_stored(report: FlushReport) -> str:
    parts = []
    if report.failed:
        parts.append(f"{report.failed:,} runs could be neither stored nor spilled and are lost")
    if report.queued:
        parts.append(f"{report.queued:,} runs could not be stored yet and are still in memory")
    return "; ".join(parts) + f" ({report.stored:,} stored, {report.spilled:,} spilled)"
