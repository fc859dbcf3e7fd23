"""Resolve: which version runs where, on the hot path of the applications that ask.

Kept apart from promotion so a cold ``releasegate resolve`` imports SQLAlchemy
and nothing of the statistics (numpy, scipy) that deciding a gate needs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from releasegate.errors import NotFoundError, StaleAliasError
from releasegate.release.refs import check_env
from releasegate.store.engine import Store
from releasegate.store.repos import (
    EnvironmentRepo,
    HistoryRecord,
    VersionRecord,
    VersionRepo,
    WorkflowRepo,
)


@dataclass(frozen=True)
class Resolved:
    workflow: str
    env: str
    version_id: str
    manifest: Any


def resolve(store: Store, workflow: str, env: str) -> Resolved:
    with store.read() as conn:
        current = EnvironmentRepo.current(conn, workflow, env)
        if current is None:
            wf = WorkflowRepo.get(conn, workflow)  # names an unknown workflow clearly
            check_env(wf, env)
            raise NotFoundError(
                f"nothing runs in {workflow}@{env} yet",
                hint="promote a version that passed the gate",
            )
        version = VersionRepo.find(conn, current[0])
    if version is None:
        raise NotFoundError(f"{workflow}@{env} points at a missing version")
    return Resolved(workflow, env, version.version_id, version.manifest)


class Resolver:
    """Hot-path resolution for applications: cached per (workflow, env) for ``ttl`` seconds.

    Within the TTL a call is a dict lookup; after it, one indexed query. If the
    store cannot be read, the last known answer is returned rather than failing
    the caller's request.
    """

    def __init__(self, store: Store, ttl: float = 1.0) -> None:
        self.store = store
        self.ttl = ttl
        self._cache: dict[tuple[str, str], tuple[float, Resolved]] = {}

    def __call__(self, workflow: str, env: str) -> Resolved:
        key = (workflow, env)
        hit = self._cache.get(key)
        t = time.monotonic()
        if hit is not None and t - hit[0] < self.ttl:
            return hit[1]
        try:
            found = resolve(self.store, workflow, env)
        except (NotFoundError, StaleAliasError):
            raise
        except Exception:
            if hit is not None:
                return hit[1]
            raise
        self._cache[key] = (t, found)
        return found


def environments(store: Store, workflow: str) -> dict[str, VersionRecord]:
    with store.read() as conn:
        out = {}
        for env, vid in EnvironmentRepo.all(conn, workflow).items():
            v = VersionRepo.find(conn, vid)
            if v is not None:
                out[env] = v
        return out


def history(store: Store, workflow: str, env: str) -> list[HistoryRecord]:
    with store.read() as conn:
        return EnvironmentRepo.history(conn, workflow, env)
