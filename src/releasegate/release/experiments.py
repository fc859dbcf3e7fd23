"""Experiments that expire: which are due, and ``gc``, which collects their eval data.

An experiment (a version on the ``experiment`` track) of a workflow whose file sets
``experiments: {retention_days: N}`` expires N days after it was registered. ``gc``
then deletes its cached eval outputs and scores and marks its eval runs
``collected``; the version row, its manifest, its eval summaries, its gate decisions
and the audit trail are kept, and each collection is audited
(``experiment.collected``). An experiment that serves somewhere (an environment's
current version, or the canary of a running rollout) or has an eval running is kept
and says why. ``collect_expired`` is the one entry point: ``releasegate gc`` and the
governance review's ``--fix`` both call it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from releasegate.domain.experiments import EXPERIMENT, Retention
from releasegate.errors import NotFoundError
from releasegate.release.refs import actor as default_actor
from releasegate.store.audit import AuditRepo
from releasegate.store.engine import Conn, Store
from releasegate.store.environments import EnvironmentRepo
from releasegate.store.evals import EvalData, EvalDataRepo
from releasegate.store.rollouts import RolloutRepo
from releasegate.store.rows import now as utc_now
from releasegate.store.versions import VersionRecord, VersionRepo
from releasegate.store.workflows import WorkflowRecord, WorkflowRepo


@dataclass(frozen=True)
class ExpiredExperiment:
    """An experiment past its retention window, and what gc did (or would do) with it."""

    version_id: str
    workflow: str
    created_at: datetime
    expired_at: datetime
    retention_days: int
    outputs: int
    scores: int
    evals: int
    kept_because: str | None  # None: collected (or, in a dry run, would be)

    @property
    def is_collected(self) -> bool:
        return self.kept_because is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version_id": self.version_id,
            "workflow": self.workflow,
            "created_at": self.created_at.isoformat(),
            "expired_at": self.expired_at.isoformat(),
            "retention_days": self.retention_days,
            "outputs": self.outputs,
            "scores": self.scores,
            "evals": self.evals,
            "collected": self.is_collected,
            "kept_because": self.kept_because,
        }


@dataclass(frozen=True)
class Collection:
    """What ``collect_expired`` found and did. ``experiments`` lists every expired
    experiment that still held eval data; ``dry_run`` says nothing was deleted."""

    at: datetime
    dry_run: bool
    workflows: tuple[str, ...]
    experiments: tuple[ExpiredExperiment, ...]

    @property
    def collected(self) -> tuple[ExpiredExperiment, ...]:
        return tuple(e for e in self.experiments if e.is_collected)

    @property
    def kept(self) -> tuple[ExpiredExperiment, ...]:
        return tuple(e for e in self.experiments if not e.is_collected)

    @property
    def outputs(self) -> int:
        return sum(e.outputs for e in self.collected)

    @property
    def scores(self) -> int:
        return sum(e.scores for e in self.collected)

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "dry_run": self.dry_run,
            "workflows": list(self.workflows),
            "collected": len(self.collected),
            "kept": len(self.kept),
            "outputs": self.outputs,
            "scores": self.scores,
            "experiments": [e.to_dict() for e in self.experiments],
        }


def _workflows(conn: Conn, workflow: str | None) -> list[WorkflowRecord]:
    if workflow is None:
        return WorkflowRepo(conn).all()
    return [WorkflowRepo(conn).get(workflow)]


def _serving(conn: Conn, wf: WorkflowRecord) -> dict[str, str]:
    """version id -> where it serves: an environment's current version, a rollout's canary."""
    where: dict[str, str] = {}
    for env, version_id in sorted(EnvironmentRepo(conn).all(wf.name).items()):
        where.setdefault(version_id, f"serves {wf.name}@{env}")
        rollout = RolloutRepo(conn).active(wf.name, env)
        if rollout is not None:
            where.setdefault(rollout.canary_id, f"is the canary of {wf.name}@{env}")
    return where


def _expired(
    v: VersionRecord, retention: Retention, data: EvalData, kept_because: str | None
) -> ExpiredExperiment:
    expired_at = retention.expires_at(v.created_at)
    assert expired_at is not None and retention.days is not None  # only due versions come here
    return ExpiredExperiment(
        v.version_id,
        v.workflow,
        v.created_at,
        expired_at,
        retention.days,
        data.outputs,
        data.scores,
        data.evals,
        kept_because,
    )


def expired_experiments(
    store: Store, workflow: str | None = None, *, now: datetime | None = None
) -> list[ExpiredExperiment]:
    """Expired experiments that still hold eval data (read-only; ``kept_because`` says
    why gc would keep one). What the governance review lists. A handful of set-based
    queries whatever the number of workflows and versions."""
    at = now or utc_now()
    with store.read() as conn:
        workflows = {wf.name: wf for wf in _workflows(conn, workflow)}
        due: list[tuple[VersionRecord, Retention]] = []
        for v in VersionRepo(conn).on_track(EXPERIMENT, workflow):
            wf = workflows.get(v.workflow)
            retention = Retention(wf.experiments_retention_days if wf else None)
            if retention.is_expired(v.created_at, at):
                due.append((v, retention))
        if not due:
            return []
        data = EvalDataRepo(conn).counts(v.version_id for v, _ in due)
        due = [(v, r) for v, r in due if v.version_id in data]
        serving = _serving_everywhere(conn, set(workflows))
        running = EvalDataRepo(conn).running_of(v.version_id for v, _ in due)
    found = []
    for v, retention in due:
        why = serving.get(v.version_id)
        if why is None and v.version_id in running:
            why = "has an eval running"
        found.append(_expired(v, retention, data[v.version_id], why))
    return found


def _serving_everywhere(conn: Conn, workflows: set[str]) -> dict[str, str]:
    """``_serving`` of many workflows in two queries."""
    where: dict[str, str] = {}
    for wf, env, version_id in EnvironmentRepo(conn).everywhere():
        if wf in workflows:
            where.setdefault(version_id, f"serves {wf}@{env}")
    for wf, env, version_id in RolloutRepo(conn).canaries():
        if wf in workflows:
            where.setdefault(version_id, f"is the canary of {wf}@{env}")
    return where


def collect_expired(
    store: Store,
    workflow: str | None = None,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    who: str | None = None,
) -> Collection:
    """Collect the eval data of every expired experiment (of ``workflow``, or of all).

    Each experiment is collected in its own write transaction, re-checked inside it
    (still an experiment, still serving nowhere), with its ``experiment.collected``
    audit event; a dry run reports the same list and writes nothing. Two collectors at
    once collect each experiment once: the second deletes nothing and audits nothing.
    """
    at = now or utc_now()
    who = who or default_actor()
    with store.read() as conn:
        names = tuple(wf.name for wf in _workflows(conn, workflow))
    candidates = expired_experiments(store, workflow, now=at)
    if dry_run:
        return Collection(at, True, names, tuple(candidates))
    done: list[ExpiredExperiment] = []
    for e in candidates:
        if not e.is_collected:
            done.append(e)
            continue
        with store.write() as conn:
            result = _collect_one(conn, e, at, who)
        if result is not None:
            done.append(result)
    return Collection(at, False, names, tuple(done))


def _collect_one(
    conn: Conn, e: ExpiredExperiment, at: datetime, who: str
) -> ExpiredExperiment | None:
    """One experiment's collection inside the caller's write transaction (None: nothing
    left to collect, another collector was first)."""
    v = VersionRepo(conn).find(e.version_id)
    if v is None:
        raise NotFoundError(f"version {e.version_id[:12]} disappeared during gc")
    wf = WorkflowRepo(conn).get(v.workflow)
    retention = Retention(wf.experiments_retention_days)
    if v.track != EXPERIMENT or not retention.is_expired(v.created_at, at):
        return None  # graduated, or its retention changed, meanwhile
    why = _serving(conn, wf).get(v.version_id)
    if why is None and EvalDataRepo(conn).is_running(v.version_id):
        why = "has an eval running"
    if why is not None:
        return _expired(v, retention, EvalDataRepo(conn).count(v.version_id), why)
    removed = EvalDataRepo(conn).collect(v.version_id)
    if removed.is_empty:
        return None
    collected = _expired(v, retention, removed, None)
    AuditRepo(conn).append(
        kind="experiment.collected",
        actor=who,
        workflow=v.workflow,
        subject=v.version_id,
        payload={
            "retention_days": collected.retention_days,
            "expired_at": collected.expired_at.isoformat(),
            "outputs": removed.outputs,
            "scores": removed.scores,
            "evals": removed.evals,
        },
    )
    return collected
