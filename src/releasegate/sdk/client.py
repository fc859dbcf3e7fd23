"""The runtime SDK: which version to run, and a record of every run, off the request path.

An application asks ``client.resolve(...)`` on every request; it must be a dict
lookup, and it must keep answering when the store is briefly unreachable (the
last known version, in memory, then on disk). Recording a run must cost the
request microseconds: the context manager only notes times and values and puts
one dict on a queue; a background thread validates, hashes and writes batches.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from releasegate.errors import NotFoundError, PrerequisiteError, ReleasegateError
from releasegate.release.resolve import Resolved, resolve
from releasegate.store.engine import Store, locate

log = logging.getLogger("releasegate.sdk")

MAX_REASONS = 20


@dataclass(frozen=True)
class RuntimeVersion:
    """What an application needs to run a version: its id, prompts and generation config."""

    workflow: str
    env: str
    version_id: str
    manifest: Mapping[str, Any]
    fallback: bool = False
    """True when the store could not be read and this is the last version known to run."""

    @property
    def model(self) -> Mapping[str, Any]:
        model = self.manifest.get("model")
        return model if isinstance(model, Mapping) else {}

    @property
    def system_prompt(self) -> str | None:
        system = self.manifest.get("prompts", {}).get("system")
        return system if isinstance(system, str) else None

    @property
    def generation(self) -> Mapping[str, Any]:
        gen = self.manifest.get("generation")
        return gen if isinstance(gen, Mapping) else {}

    def render(self, template: str = "user", /, **fields: Any) -> str:
        """A prompt template filled with ``fields`` (``{name}`` placeholders)."""
        templates = self.manifest.get("prompts", {}).get("templates", {})
        if template not in templates:
            raise NotFoundError(
                f"version {self.version_id[:12]} has no prompt template '{template}'",
                hint=f"templates: {', '.join(sorted(templates)) or 'none'}",
            )
        return str(templates[template]).format_map(fields)


class Run:
    """One production execution, filled in by the application inside ``with client.run(...)``.

    Set what you know (``output``, ``tokens_in``, ``label``, ...); an exception leaving
    the block marks the run as an error with its reason and is re-raised.
    """

    __slots__ = (
        "_client",
        "_perf",
        "attributes",
        "cost_usd",
        "edited",
        "env",
        "escalated",
        "failure_reason",
        "feedback",
        "input",
        "label",
        "model",
        "output",
        "retries",
        "run_id",
        "started_at",
        "status",
        "tokens_in",
        "tokens_out",
        "version_id",
        "workflow",
    )

    def __init__(
        self, client: Client, workflow: str, env: str, version_id: str, run_input: Any
    ) -> None:
        self._client = client
        self.workflow = workflow
        self.env = env
        self.version_id = version_id
        self.input = run_input
        self.run_id = os.urandom(16).hex()
        self.output: Any = None
        self.label: str | None = None
        self.tokens_in = 0
        self.tokens_out = 0
        self.cost_usd: float | None = None
        self.model: str | None = None
        self.retries = 0
        self.escalated = False
        self.edited = False
        self.feedback: float | None = None
        self.status = "ok"
        self.failure_reason: str | None = None
        self.attributes: dict[str, Any] | None = None
        self.started_at = 0.0
        self._perf = 0.0

    def __enter__(self) -> Run:
        self.started_at = time.time()
        self._perf = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        latency_ms = (time.perf_counter() - self._perf) * 1000.0
        if exc is not None:
            self.status = "error"
            self.failure_reason = self.failure_reason or f"{type(exc).__name__}: {exc}"
        elif self.failure_reason:
            self.status = "error"
        self._client._submit(
            {
                "run_id": self.run_id,
                "workflow": self.workflow,
                "version_id": self.version_id,
                "env": self.env,
                "started_at": self.started_at,
                "ended_at": self.started_at + latency_ms / 1000.0,
                "latency_ms": latency_ms,
                "tokens_in": self.tokens_in,
                "tokens_out": self.tokens_out,
                "cost_usd": self.cost_usd,
                "model": self.model,
                "status": self.status,
                "failure_reason": self.failure_reason,
                "retries": self.retries,
                "escalated": self.escalated,
                "edited": self.edited,
                "feedback": self.feedback,
                "input": self.input,
                "output": self.output,
                "label": self.label,
                "attributes": self.attributes,
            }
        )

    def escalate(self) -> None:
        """A human took this one over."""
        self.escalated = True

    def retry(self) -> None:
        """Count one retry of the model call."""
        self.retries += 1

    def fail(self, reason: str) -> None:
        """Mark the run failed without raising (a refusal, an unusable answer)."""
        self.failure_reason = reason


@dataclass
class ClientStats:
    submitted: int = 0
    written: int = 0
    duplicates: int = 0
    rejected: int = 0
    failed_batches: int = 0
    dropped: int = 0
    last_error: str | None = None
    reasons: list[str] = field(default_factory=list)  # the latest rejections, worded


class Client:
    """Resolve versions and record runs against the store (``.releasegate/`` or a database URL).

    ``ttl`` bounds how stale a resolution may be; ``flush_every`` and ``batch_size`` bound
    how long a run waits in memory; ``max_queue`` bounds memory if the store is down
    (older runs are then dropped and counted, never blocking the application).
    """

    def __init__(
        self,
        project_dir: str | Path | None = None,
        *,
        store: Store | None = None,
        ttl: float = 30.0,
        flush_every: float = 1.0,
        batch_size: int = 2000,
        max_queue: int = 100_000,
        fallback_file: str | Path | None = None,
    ) -> None:
        self._project_dir = Path(project_dir) if project_dir is not None else None
        self._store = store
        self._owns_store = store is None
        self.ttl = ttl
        self.flush_every = flush_every
        self.batch_size = batch_size
        self.max_queue = max_queue
        home = store.location.home if store is not None else locate(self._project_dir).home
        self._fallback_file = Path(fallback_file) if fallback_file else home / "sdk-last-known.json"
        self._cache: dict[tuple[str, str], tuple[float, RuntimeVersion]] = {}
        # Recorded runs wait in a deque that the writer drains every ``flush_every``, when
        # ``batch_size`` are waiting, or on flush(); a queue would wake it on every run,
        # and that thread switch was most of the request path's cost.
        self._runs: collections.deque[dict[str, Any]] = collections.deque()
        self._wake = threading.Event()
        self._waiters: list[threading.Event] = []
        self._stopping = False
        self._pending = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.stats = ClientStats()
        atexit.register(_close_quietly, weakref.ref(self))

    # -- resolve -------------------------------------------------------------------------

    def resolve(self, workflow: str, *, env: str, key: str | None = None) -> RuntimeVersion:
        """The version ``env`` runs, from memory within ``ttl``; the last known one on failure.

        ``key`` is the caller's routing key (a user or session id). With no rollout in
        progress every key gets the environment's version.
        """
        cache_key = (workflow, env)
        hit = self._cache.get(cache_key)
        now = time.monotonic()
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        try:
            found = resolve(self._open_store(), workflow, env)
        except (NotFoundError, PrerequisiteError):
            raise
        except Exception as exc:  # the store is unreachable: keep serving what ran
            fallback = hit[1] if hit is not None else self._read_fallback(workflow, env)
            if fallback is None:
                raise
            log.warning("releasegate store unreachable (%s); serving %s", exc, fallback.version_id)
            fallback = RuntimeVersion(
                fallback.workflow, fallback.env, fallback.version_id, fallback.manifest, True
            )
            self._cache[cache_key] = (now, fallback)
            return fallback
        version = _runtime(found)
        previous = hit[1].version_id if hit is not None else None
        self._cache[cache_key] = (now, version)
        if previous != version.version_id:
            self._write_fallback(version)
        return version

    def _read_fallback(self, workflow: str, env: str) -> RuntimeVersion | None:
        try:
            known = json.loads(self._fallback_file.read_text())
            entry = known[f"{workflow}@{env}"]
        except (OSError, ValueError, KeyError):
            return None
        return RuntimeVersion(workflow, env, entry["version_id"], entry["manifest"], True)

    def _write_fallback(self, version: RuntimeVersion) -> None:
        try:
            known = json.loads(self._fallback_file.read_text())
        except (OSError, ValueError):
            known = {}
        known[f"{version.workflow}@{version.env}"] = {
            "version_id": version.version_id,
            "manifest": version.manifest,
        }
        try:
            self._fallback_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._fallback_file.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(known, sort_keys=True))
            os.replace(tmp, self._fallback_file)
        except OSError as exc:  # a read-only disk must not break resolution
            log.warning("cannot keep the last known version at %s: %s", self._fallback_file, exc)

    # -- runs ----------------------------------------------------------------------------

    def run(
        self,
        version: RuntimeVersion | str,
        *,
        input: Any = None,
        workflow: str | None = None,
        env: str | None = None,
    ) -> Run:
        """A context manager recording one run of ``version`` (a resolved version, or an id
        with ``workflow`` and ``env``)."""
        if isinstance(version, RuntimeVersion):
            return Run(self, version.workflow, version.env, version.version_id, input)
        if workflow is None or env is None:
            raise ReleasegateError("a run of a version id needs workflow= and env=")
        return Run(self, workflow, env, version, input)

    def _submit(self, record: dict[str, Any]) -> None:
        if self._closed or self._pending >= self.max_queue:
            self.stats.dropped += 1
            return
        self._pending += 1  # benign race: a bound, not an exact count
        self.stats.submitted += 1
        self._runs.append(record)
        if self._thread is None:
            self._start()
        elif len(self._runs) >= self.batch_size and not self._wake.is_set():
            self._wake.set()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="releasegate-runs", daemon=True
                )
                self._thread.start()

    def _loop(self) -> None:
        while True:
            self._wake.wait(self.flush_every)
            self._wake.clear()
            with self._lock:
                waiters, self._waiters = self._waiters, []
                stopping = self._stopping
            self._drain()  # everything recorded before the waiters asked
            for waiter in waiters:
                waiter.set()
            if stopping:
                return

    def _drain(self) -> None:
        """Write every waiting run in batches; stop at a failed batch (it is retried later)."""
        runs = self._runs
        while runs:
            batch = [runs.popleft() for _ in range(min(len(runs), self.batch_size))]
            if not self._write(batch):
                return

    def _write(self, batch: list[dict[str, Any]]) -> bool:
        from releasegate.monitor.ingest import ingest_dicts

        try:
            result = ingest_dicts(self._open_store(), batch, source="sdk", atomic=False)
        except Exception as exc:  # keep the application alive; say what happened
            self.stats.failed_batches += 1
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("releasegate could not record %d runs: %s", len(batch), exc)
            self._pending -= len(batch)
            self._retry_later(batch)
            return False
        self._pending -= len(batch)
        self.stats.written += result.landed
        self.stats.duplicates += result.duplicates
        self.stats.rejected += len(result.rejected)
        for rejection in result.rejected[:5]:
            reason = rejection.describe("sdk")
            self.stats.reasons.append(reason)
            log.warning("releasegate rejected a run: %s", reason)
        del self.stats.reasons[:-MAX_REASONS]  # a long-lived process keeps the latest few
        return True

    def _retry_later(self, batch: list[dict[str, Any]]) -> None:
        """A failed batch goes back in front of the waiting runs (bounded), so an outage loses
        nothing short; the writer tries again at its next wake-up."""
        kept = []
        for record in batch:
            if self._pending < self.max_queue and not self._stopping:
                self._pending += 1
                kept.append(record)
            else:
                self.stats.dropped += 1
        self._runs.extendleft(reversed(kept))
        time.sleep(min(self.flush_every, 1.0))

    def flush(self, timeout: float = 30.0) -> None:
        """Write every run recorded so far (tests, shutdown hooks, short scripts)."""
        if self._thread is None:
            return
        done = threading.Event()
        with self._lock:
            self._waiters.append(done)
        self._wake.set()
        done.wait(timeout)

    def close(self) -> None:
        """Flush and stop the writer; runs recorded after this are dropped and counted."""
        if self._closed:
            return
        if self._thread is not None:
            self.flush()
            with self._lock:
                self._stopping = True
            self._wake.set()
            self._thread.join(timeout=30.0)
        self._closed = True
        if self._owns_store and self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open_store(self) -> Store:
        if self._store is None:
            self._store = Store.open(self._project_dir, create=False)
        return self._store


def _runtime(found: Resolved) -> RuntimeVersion:
    return RuntimeVersion(found.workflow, found.env, found.version_id, found.manifest)


def _close_quietly(ref: weakref.ref[Client]) -> None:
    client = ref()
    if client is not None:
        with contextlib.suppress(Exception):  # interpreter shutdown: nothing left to tell
            client.close()
