"""Resolve: which version runs where, on the hot path of the applications that ask.

Kept apart from promotion so a cold ``releasegate resolve`` imports SQLAlchemy
and nothing of the statistics (numpy, scipy) that deciding a gate needs.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from releasegate.errors import (
    InputError,
    NotFoundError,
    PrerequisiteError,
    RefusedError,
    StoreUnavailableError,
)
from releasegate.release.refs import check_env
from releasegate.store.engine import Store
from releasegate.store.environments import EnvironmentRepo, HistoryRecord
from releasegate.store.faults import display_url
from releasegate.store.rollouts import RolloutRepo
from releasegate.store.versions import VersionRecord, VersionRepo
from releasegate.store.workflows import WorkflowRepo

log = logging.getLogger("releasegate.resolve")


@dataclass(frozen=True)
class Route:
    """A rollout running in the environment: who may be sent to its canary, and what it is.
    In ``shadow`` mode nobody is: the application runs the candidate beside the stable."""

    rollout_id: str
    canary_id: str
    canary_manifest: Any
    weight: float
    mode: str = "canary"


@dataclass(frozen=True)
class Resolved:
    workflow: str
    env: str
    version_id: str
    manifest: Any
    fallback: bool = False
    """True when the store failed or hung and this is the last version known to run."""
    rollout: Route | None = None
    """The canary (or shadow) of a rollout in progress; ``version_id`` is then its stable
    version."""
    paused: str | None = None
    """The reason, while the environment is paused (``releasegate pause``): the
    application sends every request to its human fallback. None when it runs normally."""

    def to_dict(self) -> dict[str, Any]:
        """``releasegate resolve --json`` and ``GET /v1/resolve``: one document for both."""
        route = self.rollout
        return {
            "workflow": self.workflow,
            "env": self.env,
            "version_id": self.version_id,
            "manifest": self.manifest,
            "fallback": self.fallback,
            "paused": self.paused is not None,
            "paused_reason": self.paused,
            "rollout": None
            if route is None
            else {
                "rollout_id": route.rollout_id,
                "canary_id": route.canary_id,
                "canary_manifest": route.canary_manifest,
                "weight": route.weight,
                "mode": route.mode,
            },
        }


def resolve(store: Store, workflow: str, env: str) -> Resolved:
    with store.read() as conn:
        serving = EnvironmentRepo(conn).serving(workflow, env)
        if serving is None:
            wf = WorkflowRepo(conn).get(workflow)  # names an unknown workflow clearly
            check_env(wf, env)
            raise NotFoundError(
                f"nothing runs in {workflow}@{env} yet",
                hint="promote a version that passed the gate",
            )
        current, held = serving
        version = VersionRepo(conn).find(current[0])
        route = None
        running = RolloutRepo(conn).route(workflow, env)
        if running is not None and running.stable_id == current[0]:
            canary = VersionRepo(conn).find(running.canary_id)
            if canary is not None:
                route = Route(
                    running.rollout_id,
                    canary.version_id,
                    canary.manifest,
                    running.weight,
                    running.mode,
                )
    if version is None:
        raise NotFoundError(f"{workflow}@{env} points at a missing version")
    paused = held.reason if held is not None else None
    return Resolved(
        workflow, env, version.version_id, version.manifest, rollout=route, paused=paused
    )


LAST_KNOWN = "last-known.json"
"""The file beside the store where resolvers keep the last version each environment ran."""
DEFAULT_DEADLINE = 2.0


class Resolver:
    """Hot-path resolution for applications and deploy scripts, with a deadline.

    Within ``ttl`` a call is a dict lookup; after it, one indexed query, run on a
    helper thread and waited for at most ``deadline`` seconds. If the store fails or
    does not answer in time, the last known answer is served (``fallback=True``):
    from memory, else from ``fallback_file``, which every fresh answer updates under
    a file lock, so a restarted process, or ``releasegate resolve`` in a deploy step,
    keeps serving what ran. A workflow never resolved there raises
    ``StoreUnavailableError`` naming the cause. A lookup still hanging is not started
    again: later calls are answered from the fallback at once until it returns.
    """

    def __init__(
        self,
        store: Store | Callable[[], Store],
        ttl: float = 1.0,
        *,
        deadline: float = DEFAULT_DEADLINE,
        fallback_file: Path | None = None,
        lookup: Callable[[str, str], Resolved] | None = None,
    ) -> None:
        self._open_store: Callable[[], Store] = (
            (lambda: store) if isinstance(store, Store) else store
        )
        self.lookup: Callable[[str, str], Resolved] = lookup or (
            lambda workflow, env: resolve(self._open_store(), workflow, env)
        )
        """One lookup of what runs where: the store's by default; the SDK's HTTP mode
        asks a server instead (same cache, deadline and fallback)."""
        self.where = display_url(store.location.url) if isinstance(store, Store) else "the store"
        self.ttl = ttl
        self.deadline = deadline
        self.fallback_file = fallback_file
        self._cache: dict[tuple[str, str], tuple[float, Resolved]] = {}
        self._lock = threading.Lock()
        self._lookups: dict[tuple[str, str], _Lookup] = {}
        self.last_cause: str | None = None
        """Why the latest fallback was served ("did not answer within 2 s", ...)."""

    def peek(self, workflow: str, env: str) -> Resolved | None:
        """The answer kept in memory, while it is fresher than the TTL; None otherwise
        (then call the resolver). Never blocks: an async server answers from it in place."""
        hit = self._cache.get((workflow, env))
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        return None

    def __call__(self, workflow: str, env: str) -> Resolved:
        key = (workflow, env)
        hit = self._cache.get(key)
        t = time.monotonic()
        if hit is not None and t - hit[0] < self.ttl:
            return hit[1]
        with self._lock:
            lookup = self._lookups.get(key)
            if lookup is None:
                lookup = self._lookups[key] = _Lookup(self, key)
        if lookup.overdue:  # hanging since an earlier call: do not wait for it again
            return self._fall_back(key, hit, None)
        if not lookup.done.wait(self.deadline):
            lookup.overdue = True
            return self._fall_back(key, hit, None)
        if lookup.error is not None:
            if isinstance(lookup.error, InputError | PrerequisiteError | RefusedError):
                raise lookup.error
            return self._fall_back(key, hit, lookup.error)
        assert lookup.found is not None
        return lookup.found

    def _answered(self, key: tuple[str, str], found: Resolved) -> None:
        """A lookup returned (maybe after its deadline): remember it, in memory and on disk."""
        previous = self._cache.get(key)
        self._cache[key] = (time.monotonic(), found)
        if (
            previous is None
            or previous[1].version_id != found.version_id
            or previous[1].paused != found.paused
            or previous[1].fallback
        ):
            self._remember(found)

    def _fall_back(
        self, key: tuple[str, str], hit: tuple[float, Resolved] | None, error: BaseException | None
    ) -> Resolved:
        cause = (
            f"did not answer within {self.deadline:g} s"
            if error is None
            else f"could not be read ({type(error).__name__}: {_one_line(error)})"
        )
        self.last_cause = cause
        known = hit[1] if hit is not None else self._recall(*key)
        if known is not None and known.fallback and hit is not None:
            self._cache[key] = (time.monotonic(), known)  # still down: quiet until the TTL
            return known
        if known is None:
            raise StoreUnavailableError(
                f"{self.where} {cause}, and {key[0]}@{key[1]} was never resolved here before, "
                "so there is no last known version to serve",
                hint="check the store; once it answers, resolve keeps the answer for outages",
            ) from error
        served = replace(known, fallback=True)
        log.warning(
            "releasegate: %s %s; serving the last known version of %s@%s, %s",
            self.where,
            cause,
            key[0],
            key[1],
            served.version_id[:12],
        )
        self._cache[key] = (time.monotonic(), served)
        return served

    def _recall(self, workflow: str, env: str) -> Resolved | None:
        if self.fallback_file is None:
            return None
        try:
            entry = json.loads(self.fallback_file.read_text())[f"{workflow}@{env}"]
            paused = entry.get("paused")
            return Resolved(
                workflow,
                env,
                entry["version_id"],
                entry["manifest"],
                True,
                paused=paused if isinstance(paused, str) else None,
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _remember(self, found: Resolved) -> None:
        path = self.fallback_file
        if path is None:
            return
        kept = self._recall(found.workflow, found.env)
        if kept is not None and (kept.version_id, kept.paused) == (found.version_id, found.paused):
            return  # already there: a process start or a deploy step writes nothing
        from filelock import FileLock, Timeout  # only when the file changes

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with FileLock(f"{path}.lock", timeout=self.deadline, thread_local=False):
                try:
                    known = json.loads(path.read_text())
                    if not isinstance(known, dict):
                        known = {}
                except (OSError, ValueError):
                    known = {}
                known[f"{found.workflow}@{found.env}"] = {
                    "version_id": found.version_id,
                    "manifest": found.manifest,
                    "paused": found.paused,
                    "resolved_at": datetime.now(UTC).isoformat(timespec="seconds"),
                }
                tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
                tmp.write_text(json.dumps(known, sort_keys=True, default=str))
                os.replace(tmp, path)
        except (OSError, Timeout) as exc:  # a read-only disk must not break resolution
            log.warning("releasegate: cannot keep the last known version at %s: %s", path, exc)


class _Lookup:
    """One query of the store for (workflow, env), on its own daemon thread."""

    def __init__(self, resolver: Resolver, key: tuple[str, str]) -> None:
        self.done = threading.Event()
        self.overdue = False
        self.found: Resolved | None = None
        self.error: BaseException | None = None
        self._resolver = resolver
        self._key = key
        threading.Thread(target=self._run, name="releasegate-resolve", daemon=True).start()

    def _run(self) -> None:
        resolver = self._resolver
        try:
            found = resolver.lookup(*self._key)
            resolver._answered(self._key, found)
            self.found = found
        except BaseException as exc:  # handed to the caller, which raises or falls back
            self.error = exc
        finally:
            with resolver._lock:
                resolver._lookups.pop(self._key, None)
            self.done.set()


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def environments(store: Store, workflow: str) -> dict[str, VersionRecord]:
    with store.read() as conn:
        out = {}
        for env, vid in EnvironmentRepo(conn).all(workflow).items():
            v = VersionRepo(conn).find(vid)
            if v is not None:
                out[env] = v
        return out


def history(store: Store, workflow: str, env: str) -> list[HistoryRecord]:
    """What ran in ``workflow@env``, oldest first; an unknown workflow or environment is
    ``NotFoundError``/``InputError``, not an empty history."""
    with store.read() as conn:
        check_env(WorkflowRepo(conn).get(workflow), env)
        return EnvironmentRepo(conn).history(workflow, env)
