"""The runtime SDK: which version to run, and a record of every run, off the request path.

An application asks ``client.resolve(...)`` on every request; it must be a dict
lookup, and it must keep answering when the store is briefly unreachable (the
last known version, in memory, then on disk). Recording a run must cost the
request microseconds: the context manager only notes times and values and puts
one tuple on a bounded queue; a background thread validates, hashes and writes
batches (``writer.py``), spilling to disk what the store cannot take (``spill.py``).
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import threading
import time
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from string import Formatter
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple

from releasegate.domain.routing import PAIR_ATTRIBUTE, Splitter
from releasegate.errors import NotFoundError, SDKUsageError
from releasegate.release.resolve import DEFAULT_DEADLINE, LAST_KNOWN, Resolved, Resolver
from releasegate.release.store_access import Store, display_url, locate, open_store
from releasegate.sdk.spill import Spill
from releasegate.sdk.writer import ClientStats, FlushReport, RunWriter

if TYPE_CHECKING:
    from releasegate.sdk.remote import Remote


@dataclass(frozen=True)
class RuntimeVersion:
    """What an application needs to run a version: its id, prompts and generation config."""

    workflow: str
    env: str
    version_id: str
    manifest: Mapping[str, Any]
    fallback: bool = False
    """True when the store failed or hung and this is the last version known to run."""
    arm: str | None = None
    """Under a rollout: ``"canary"`` or ``"stable"``, the arm that serves this request
    (recorded with each run); ``"shadow"`` on ``version.shadow``; None when no rollout
    runs there."""
    paused_reason: str | None = None
    """Why the environment is paused (``releasegate pause``), None when it is not."""
    shadow: RuntimeVersion | None = None
    """Under a shadow rollout (``promote --shadow``): the candidate, never served. Run it
    on the same input off the request path if you like, and record that run with
    ``client.run(version.shadow, input=..., shadow=True)``; None otherwise."""

    @property
    def paused(self) -> bool:
        """True while the environment is paused: send the request to the human fallback,
        not to the model (``version.paused_reason`` says why)."""
        return self.paused_reason is not None

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
        text = str(templates[template])
        names = {f.split(".")[0].split("[")[0] for _, f, _, _ in Formatter().parse(text) if f}
        missing = sorted(names - set(fields))
        if missing:
            raise SDKUsageError(
                f"prompt template '{template}' of version {self.version_id[:12]} needs "
                + ", ".join(missing),
                field=f"prompts.templates.{template}",
                hint="pass every {placeholder} of the template as a keyword argument",
            )
        return text.format_map(fields)


class _RunIds:
    """Run ids that sort by time: the start of the process in milliseconds, 40 random bits,
    then a counter (32 hex characters). The store's ``run_id`` index then grows at one end
    per process instead of at random places: random ids made each insert of a large store
    miss SQLite's page cache, half the cost of storing a run. Renewed in a forked child."""

    def __init__(self) -> None:
        self._renew()
        os.register_at_fork(after_in_child=self._renew)

    def _renew(self) -> None:
        self._prefix = f"{int(time.time() * 1000):011x}{os.urandom(5).hex()}"
        self._counter = itertools.count()

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter):011x}"  # count() is atomic under the GIL


next_run_id = _RunIds()


class Run:
    """One production execution, filled in by the application inside ``with client.run(...)``.

    Set what you know (``output``, ``tokens_in``, ``label``, ...); an exception leaving
    the block marks the run as an error with its reason and is re-raised.
    """

    __slots__ = (
        "_client",
        "_perf",
        "arm",
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
        "pair",
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
        self,
        client: Client,
        workflow: str,
        env: str,
        version_id: str,
        run_input: Any,
        arm: str | None = None,
        pair: str | None = None,
    ) -> None:
        self._client = client
        self.arm = arm
        self.pair = pair
        self.workflow = workflow
        self.env = env
        self.version_id = version_id
        self.input = run_input
        self.run_id = next_run_id()
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
        # the run's values in ``domain.runs.FIELDS`` order: a tuple, not a dict, per run
        self._client._submit(
            (
                self.run_id,
                self.workflow,
                self.version_id,
                self.env,
                self.started_at,
                self.started_at + latency_ms / 1000.0,
                latency_ms,
                self.status,
                self.failure_reason,
                self.tokens_in,
                self.tokens_out,
                self.cost_usd,
                self.model,
                None,  # provider
                None,  # operation
                self.retries,
                self.escalated,
                self.edited,
                self.feedback,
                self.input,
                self.output,
                self.label,
                (
                    self.attributes
                    if self.pair is None
                    else {**(self.attributes or {}), PAIR_ATTRIBUTE: self.pair}
                ),
                self.arm,
            )
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


class Client:
    """Resolve versions and record runs against the store (``.releasegate/`` or a database URL).

    ``ttl`` bounds how stale a resolution may be, and ``resolve_timeout`` how long one may
    wait for the store before the last known version is served. Recorded runs wait in a
    queue of at most ``max_queue`` runs, written in batches of ``batch_size`` every
    ``flush_every`` seconds; when the queue is full (the store is slow or down),
    ``on_overflow`` decides: ``"spill"`` to a file in ``spill_dir`` (replayed on the next
    start), ``"block"`` the caller until there is room, or ``"drop_oldest"`` (counted in
    ``stats``, logged once per ``warn_every`` seconds). ``flush()`` and ``close()`` say
    what they could not write.

    With ``url`` (or ``RELEASEGATE_URL``; ``token`` or ``RELEASEGATE_TOKEN``) it talks to a
    ``releasegate serve`` instead of a store: the same cache, deadline, last known
    fallback, queue, spill and replay, over HTTP (``sdk/remote.py``).
    """

    def __init__(
        self,
        project_dir: str | Path | None = None,
        *,
        store: Store | None = None,
        ttl: float = 30.0,
        flush_every: float = 1.0,
        batch_size: int = 5000,
        max_queue: int = 100_000,
        on_overflow: str = "spill",
        spill_dir: str | Path | None = None,
        resolve_timeout: float = DEFAULT_DEADLINE,
        fallback_file: str | Path | None = None,
        warn_every: float = 60.0,
        url: str | None = None,
        token: str | None = None,
    ) -> None:
        if not resolve_timeout > 0:
            raise SDKUsageError(
                f"resolve_timeout must be a positive number of seconds, got {resolve_timeout!r}",
                field="resolve_timeout",
            )
        self._project_dir = Path(project_dir) if project_dir is not None else None
        self._store = store
        self._owns_store = store is None
        self._store_lock = threading.Lock()
        home = store.location.home if store is not None else locate(self._project_dir).home
        self._fallback_file = Path(fallback_file) if fallback_file else home / LAST_KNOWN
        url = url or (os.environ.get("RELEASEGATE_URL") if store is None else None) or None
        self._remote: Remote | None = None
        if url is not None:
            from releasegate.sdk.remote import Remote

            token = token or os.environ.get("RELEASEGATE_TOKEN") or None
            self._remote = Remote(url, token, timeout=max(resolve_timeout, 10.0))
        self._resolver = Resolver(
            self._open_store,
            ttl=ttl,
            deadline=resolve_timeout,
            fallback_file=self._fallback_file,
            lookup=self._remote.resolve if self._remote is not None else None,
        )
        self._resolver.where = (
            f"the server at {self._remote.url}"
            if self._remote is not None
            else display_url(store.location.url)
            if store is not None
            else "the store"
        )
        self._versions: dict[tuple[str, str], _Served] = {}
        spill = Spill(Path(spill_dir) if spill_dir is not None else home / "spill")
        self._writer = RunWriter(
            self._open_store,
            on_overflow=on_overflow,
            max_queue=max_queue,
            batch_size=batch_size,
            flush_every=flush_every,
            spill=spill,
            warn_every=warn_every,
            ingest=self._remote.ingest if self._remote is not None else None,
        )
        self._submit = self._writer.submit  # the request path: one bound call, no lookup
        self._closed = False
        atexit.register(_close_quietly, weakref.ref(self))
        # a client dropped without close(): its writer lives on with its thread, and is
        # closed at exit all the same, so its queued runs are stored or spilled
        atexit.register(_close_quietly, weakref.ref(self._writer))

    @property
    def stats(self) -> ClientStats:
        """Every run sent so far, by where it went (stored, spilled, dropped, ...)."""
        return self._writer.stats

    @property
    def ttl(self) -> float:
        return self._resolver.ttl

    # -- resolve -------------------------------------------------------------------------

    def resolve(self, workflow: str, *, env: str, key: str | None = None) -> RuntimeVersion:
        """The version ``env`` runs: from memory within ``ttl``; the last known one when the
        store fails or does not answer within ``resolve_timeout`` (``version.fallback``).

        While the environment is paused (``releasegate pause``), ``version.paused`` is True
        and ``version.paused_reason`` says why: send the request to the human fallback. A
        pause reaches every client within ``ttl``, and the last known version remembers it.

        ``key`` is the caller's routing key (a user or session id). With no rollout in
        progress every key gets the environment's version. Under a shadow rollout every
        key gets it too, with ``version.shadow`` the candidate to run beside it. Raises
        ``NotFoundError`` if nothing runs there, ``StoreUnavailableError`` if the store is
        down and the environment was never resolved here before.
        """
        found = self._resolver(workflow, env)
        known = self._versions.get((workflow, env))
        if known is None or known.found is not found:
            known = self._versions[(workflow, env)] = _Served.of(found)
        if known.split is None:
            return known.stable
        return known.canary if known.split.is_canary(key) else known.stable  # type: ignore[return-value]

    # -- runs ----------------------------------------------------------------------------

    def run(
        self,
        version: RuntimeVersion | str,
        *,
        input: Any = None,
        workflow: str | None = None,
        env: str | None = None,
        shadow: bool = False,
        pair: Run | str | None = None,
    ) -> Run:
        """A context manager recording one run of ``version`` (a resolved version, or an id
        with ``workflow`` and ``env``).

        ``shadow=True`` records a run of a shadow rollout's candidate (``version.shadow``),
        which served nobody: give it the same ``input`` as the served run, so the two pair
        up input by input (``rollout check`` compares them); monitoring leaves it out.
        ``pair`` names the served run it shadows (the ``Run``, or its ``run_id``): the two
        then pair by it, even where the workflow's data class keeps inputs (and their
        hashes) out of the store."""
        if pair is None and not shadow and type(version) is RuntimeVersion:  # the usual run
            return Run(self, version.workflow, version.env, version.version_id, input, version.arm)
        link = pair.run_id if isinstance(pair, Run) else pair
        if link is not None and not shadow:
            raise SDKUsageError(
                "pair= names the served run a shadow run shadows: it needs shadow=True",
                field="pair",
            )
        if type(version) is RuntimeVersion:
            if shadow and version.arm != "shadow":
                raise SDKUsageError(
                    f"shadow=True records a run of the shadow candidate, but version "
                    f"{version.version_id[:12]} is the one served ({version.arm or 'no rollout'})",
                    field="shadow",
                    hint="pass version.shadow (None when no shadow rollout runs)",
                )
            return Run(
                self, version.workflow, version.env, version.version_id, input, version.arm, link
            )
        if not isinstance(version, str):
            raise SDKUsageError(
                f"expected a resolved version or a version id, got {type(version).__name__}",
                field="version",
            )
        if workflow is None or env is None:
            raise SDKUsageError(
                "a run of a version id needs workflow= and env=",
                field="workflow" if workflow is None else "env",
                hint="or pass the version client.resolve(...) returned",
            )
        return Run(self, workflow, env, version, input, "shadow" if shadow else None, link)

    def flush(self, timeout: float = 30.0) -> FlushReport:
        """Store (or spill) every run recorded so far and say what became of them.

        Raises ``RunsNotStoredError`` (with ``.report``) if some could be neither stored
        nor spilled, or the writer did not finish within ``timeout``."""
        return self._writer.flush(timeout)

    def close(self, timeout: float = 30.0) -> FlushReport:
        """Flush and stop the writer; what the store cannot take is spilled to disk.

        Raises ``RunsNotStoredError`` if some runs could be neither stored nor spilled
        (they are lost, and said so). Runs recorded afterwards are dropped and counted."""
        if self._closed:
            return self._writer.close(timeout)
        self._closed = True
        try:
            return self._writer.close(timeout)
        finally:
            if self._owns_store and self._store is not None:
                self._store.close()
                self._store = None
            if self._remote is not None:
                self._remote.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open_store(self) -> Store:
        store = self._store
        if store is None:
            with self._store_lock:
                if self._store is None:
                    self._store = open_store(self._project_dir, create=False)
                store = self._store
        return store


class _Served(NamedTuple):
    """What ``resolve`` hands out for one answer of the resolver: the stable version and,
    under a rollout, the canary and the splitter that picks between them."""

    found: Resolved
    stable: RuntimeVersion
    canary: RuntimeVersion | None
    split: Splitter | None

    @classmethod
    def of(cls, found: Resolved) -> _Served:
        route = found.rollout
        arm = None if route is None else "stable"
        candidate = (
            None
            if route is None
            else RuntimeVersion(
                found.workflow,
                found.env,
                route.canary_id,
                route.canary_manifest,
                found.fallback,
                route.mode,  # "canary", or "shadow": served to nobody
                found.paused,
            )
        )
        shadow = candidate if route is not None and route.mode == "shadow" else None
        stable = RuntimeVersion(
            found.workflow,
            found.env,
            found.version_id,
            found.manifest,
            found.fallback,
            arm,
            found.paused,
            shadow,
        )
        if route is None or shadow is not None:
            return cls(found, stable, None, None)
        return cls(found, stable, candidate, Splitter(route.rollout_id, route.weight))


def _close_quietly(ref: weakref.ref[Client] | weakref.ref[RunWriter]) -> None:
    closing = ref()
    if closing is not None:
        # interpreter shutdown: close() has logged what it could not store or spill
        with contextlib.suppress(Exception):
            closing.close()
