"""Read-only views for people: the workflows, one workflow's environments, versions of a
workflow, one version, a diff of two (the CLI's ``--json`` and the server's GET bodies),
and the blobs versions refer to."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from releasegate.domain.diff import diff_manifests, render_text_diff
from releasegate.domain.experiments import EXPERIMENT, TRACKS, Retention
from releasegate.domain.gate_report import GateReport
from releasegate.errors import InputError, NotFoundError
from releasegate.release.interrupted import mark_interrupted
from releasegate.release.refs import MIN_PREFIX, check_env, find_version
from releasegate.store.decisions import DecisionRepo
from releasegate.store.engine import Store
from releasegate.store.environments import EnvironmentRepo
from releasegate.store.evals import EvalRepo
from releasegate.store.rollouts import RolloutRepo
from releasegate.store.rows import now as utc_now
from releasegate.store.versions import VersionRecord, VersionRepo
from releasegate.store.workflows import WorkflowRepo


def blob(store: Store, digest: str) -> bytes:
    """A stored blob (a version's prompt or index file) by its sha256, checked against it:
    ``NotFoundError`` when none has it, ``BlobCorruptError`` when its bytes do not match."""
    return store.blobs.get(digest)


def blob_size(store: Store, digest: str) -> int:
    """A stored blob's size in bytes (``NotFoundError`` when none has that digest)."""
    return store.blobs.size(digest)


def blob_chunks(store: Store, digest: str) -> Iterator[bytes]:
    """The same a chunk at a time; the digest is checked before the last chunk comes out."""
    return store.blobs.iter_chunks(digest)


def list_workflows(store: Store) -> list[dict[str, Any]]:
    """Every workflow, with its stakes, owners and what runs in each environment."""
    with store.read() as conn:
        return [_workflow(conn, wf) for wf in WorkflowRepo(conn).all()]


def show_workflow(store: Store, workflow: str) -> dict[str, Any]:
    """One workflow (``NotFoundError`` naming the known ones when there is no such)."""
    with store.read() as conn:
        return _workflow(conn, WorkflowRepo(conn).get(workflow))


def _workflow(conn: Any, wf: Any) -> dict[str, Any]:
    return {
        "workflow": wf.name,
        "description": wf.description,
        "stakes": wf.stakes,
        "owners": dict(wf.owners),
        "data_class": wf.data_class,
        "environments": _environments(conn, wf),
    }


def _environments(conn: Any, wf: Any) -> list[dict[str, Any]]:
    """Each environment of ``wf`` in its declared order: what runs, paused or not, and the
    rollout in progress."""
    out = []
    for env in wf.environments:
        serving = EnvironmentRepo(conn).serving(wf.name, env)
        route = RolloutRepo(conn).route(wf.name, env)
        held = serving[1] if serving is not None else None
        out.append(
            {
                "env": env,
                "version_id": serving[0].version_id if serving is not None else None,
                "paused": held is not None,
                "paused_reason": held.reason if held is not None else None,
                "pause": held.as_dict() if held is not None else None,
                "rollout": None
                if route is None
                else {
                    "rollout_id": route.rollout_id,
                    "canary_id": route.canary_id,
                    "weight": route.weight,
                },
            }
        )
    return out


def list_versions(
    store: Store, workflow: str, track: str | None = None, *, now: datetime | None = None
) -> list[dict[str, Any]]:
    """A workflow's versions (on ``track`` only, when given), each with its track and, for
    an experiment of a workflow with a retention window, when it expires."""
    if track is not None and track not in TRACKS:
        raise InputError(
            f"unknown track '{track}'", field="--track", hint="one of: " + ", ".join(TRACKS)
        )
    at = now or utc_now()
    with store.read() as conn:
        retention = Retention(WorkflowRepo(conn).get(workflow).experiments_retention_days)
        running: dict[str, list[str]] = {}
        for env, vid in EnvironmentRepo(conn).all(workflow).items():
            running.setdefault(vid, []).append(env)
        return [
            {
                "version_id": v.version_id,
                "workflow": v.workflow,
                "created_at": v.created_at.isoformat(),
                "owner": v.owner,
                "track": v.track,
                "parent_id": v.parent_id,
                "reason": v.reason,
                "source_commit": v.source_commit,
                "environments": sorted(running.get(v.version_id, [])),
                **_expiry(v, retention, at),
            }
            for v in VersionRepo(conn).list(workflow)
            if track is None or v.track == track
        ]


def _expiry(v: VersionRecord, retention: Retention, at: datetime) -> dict[str, Any]:
    expires = retention.expires_at(v.created_at) if v.track == EXPERIMENT else None
    return {
        "expires_at": None if expires is None else expires.isoformat(),
        "is_expired": expires is not None and at >= expires,
    }


def show_version(store: Store, ref: str) -> dict[str, Any]:
    mark_interrupted(store)  # an eval whose process died is shown as what it is
    with store.read() as conn:
        v = find_version(conn, ref)
        wf = WorkflowRepo(conn).get(v.workflow)
        envs = sorted(
            env for env, vid in EnvironmentRepo(conn).all(v.workflow).items() if vid == v.version_id
        )
        evals = [
            {
                "eval_id": e.eval_id,
                "suite_id": e.suite_id,
                "status": e.status,
                "epochs": e.epochs,
                "started_at": e.started_at.isoformat(),
                "metrics": {k: m["estimate"] for k, m in e.summary.get("metrics", {}).items()},
            }
            for e in EvalRepo(conn).for_version(v.version_id)
        ]
        decisions = []
        for env in wf.environments:
            d = DecisionRepo(conn).latest(v.version_id, env)
            if d is not None:
                decisions.append(
                    {
                        "env": env,
                        "verdict": d.verdict,
                        "decision_id": d.decision_id,
                        "created_at": d.created_at.isoformat(),
                    }
                )
    return {
        "version_id": v.version_id,
        "workflow": v.workflow,
        "owner": v.owner,
        "reason": v.reason,
        "track": v.track,
        "parent_id": v.parent_id,
        "source_commit": v.source_commit,
        "created_at": v.created_at.isoformat(),
        "manifest": v.manifest,
        "environments": envs,
        "evals": evals,
        "decisions": decisions,
    }


def diff_versions(store: Store, a: str, b: str) -> dict[str, Any]:
    with store.read() as conn:
        va, vb = find_version(conn, a), find_version(conn, b)
    d = diff_manifests(va.manifest, vb.manifest)
    return {
        "a": va.version_id,
        "b": vb.version_id,
        "change_class": d.change_class.value if d.change_class else None,
        "classes": sorted(c.value for c in d.classes),
        "changes": [
            {
                "path": c.path,
                "kind": c.kind,
                "class": c.change_class.value,
                "before": c.before,
                "after": c.after,
            }
            for c in d.changes
        ],
        "lines": render_text_diff(d),
    }


def gate_report(store: Store, ref: str, env: str | None = None) -> GateReport:
    """A stored gate report: by decision id (prefix), or a version's latest for ``env``."""
    with store.read() as conn:
        if env is not None:
            version = find_version(conn, ref)
            check_env(WorkflowRepo(conn).get(version.workflow), env)
            found = DecisionRepo(conn).latest(version.version_id, env)
            if found is None:
                raise NotFoundError(
                    f"{version.version_id[:12]} was never gated for {env}",
                    hint=f"run `releasegate gate {version.version_id[:12]} --env {env}`",
                )
            return found.report
        if len(ref) < MIN_PREFIX:
            raise InputError(
                f"'{ref}' is too short: give at least {MIN_PREFIX} characters of a decision id",
                field="decision",
            )
        hits = DecisionRepo(conn).by_prefix(ref.lower())
    if not hits:
        raise NotFoundError(
            f"no gate decision '{ref}'",
            field="decision",
            hint="give a decision id, or a version with --env for its latest decision",
        )
    if len(hits) > 1:
        raise InputError(
            f"'{ref}' matches several decisions", field="decision", hint="give more characters"
        )
    return hits[0].report
