"""What the web dashboard shows, gathered in one read transaction per page.

``overview`` is the home page: every workflow with its stage, what runs in each
environment and since when, the rollouts in progress, the alerts firing and the paused
environments. ``workflow_view`` is one workflow's page: the same, plus its history of
promotions and rollbacks, the latest rollout of each environment with its state and
reason (and for a running one what its evidence says now), its latest alerts, its
newest versions and its last rehearsal. An alert is *firing* while its signal's
cool-down runs (the monitor stays quiet on it for that long, so the condition it
reported is taken to hold): the latest alert of each environment and signal raised
within its cool-down. Plain records, no rule: the pages only render them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from releasegate.domain.handover import STAGES, rehearsal_summary, stage_state
from releasegate.domain.monitoring import MonitorConfig
from releasegate.domain.rehearsal import Rehearsal
from releasegate.domain.rollout import CheckOutcome, Rollout, assess
from releasegate.store.alerts import AlertRecord, AlertRepo
from releasegate.store.engine import Conn, Store
from releasegate.store.environments import EnvironmentRepo, HistoryRecord, Pause
from releasegate.store.rehearsals import RehearsalRepo
from releasegate.store.rollouts import RolloutRepo
from releasegate.store.stages import StageRepo
from releasegate.store.versions import VersionRecord, VersionRepo
from releasegate.store.workflows import WorkflowRecord, WorkflowRepo

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_ALERTS = 20
LATEST_HISTORY = 50
LATEST_VERSIONS = 30


@dataclass(frozen=True)
class EnvironmentView:
    """One environment: what runs there since when (the last move), paused or not, and
    the rollout in progress."""

    env: str
    version_id: str | None
    since: datetime | None
    moved_by: str | None
    move: str | None
    """``promote`` or ``rollback``: how the version got there."""
    pause: Pause | None
    rollout: Rollout | None


@dataclass(frozen=True)
class WorkflowSummary:
    workflow: str
    description: str
    stakes: str
    stage: str
    environments: tuple[EnvironmentView, ...]
    firing: tuple[AlertRecord, ...]

    @property
    def rollouts(self) -> tuple[Rollout, ...]:
        return tuple(e.rollout for e in self.environments if e.rollout is not None)

    @property
    def paused(self) -> tuple[EnvironmentView, ...]:
        return tuple(e for e in self.environments if e.pause is not None)


@dataclass(frozen=True)
class Overview:
    generated_at: datetime
    workflows: tuple[WorkflowSummary, ...]

    @property
    def rollouts(self) -> tuple[Rollout, ...]:
        return tuple(r for w in self.workflows for r in w.rollouts)

    @property
    def firing(self) -> tuple[AlertRecord, ...]:
        return tuple(a for w in self.workflows for a in w.firing)

    @property
    def paused(self) -> tuple[tuple[str, EnvironmentView], ...]:
        return tuple((w.workflow, e) for w in self.workflows for e in w.paused)

    @property
    def by_stage(self) -> dict[str, int]:
        """How many workflows are at each stage, in the order of the stages."""
        return {st: n for st in STAGES if (n := sum(w.stage == st for w in self.workflows))}


@dataclass(frozen=True)
class WorkflowView:
    summary: WorkflowSummary
    owners: dict[str, Any]
    data_class: str
    history: tuple[HistoryRecord, ...]
    """Promotions and rollbacks of every environment, newest first."""
    rollouts: tuple[Rollout, ...]
    """The newest rollout of each environment that ever had one, running or ended."""
    analysis: dict[str, CheckOutcome]
    """Rollout id -> what its evidence says now (abort, hold or advance, and why), for
    each running one: ``rollout status`` without reading new runs."""
    alerts: tuple[AlertRecord, ...]
    """The latest alerts of the workflow, newest first."""
    versions: tuple[VersionRecord, ...]
    """The newest versions, newest first."""
    version_count: int
    rehearsal: Rehearsal | None
    rehearsal_text: str


def overview(store: Store, *, now: datetime | None = None) -> Overview:
    """The home page: every workflow, in one read."""
    at = now or datetime.now(UTC)
    with store.read() as conn:
        return Overview(at, tuple(_summary(conn, wf, at) for wf in WorkflowRepo(conn).all()))


def workflow_view(store: Store, workflow: str, *, now: datetime | None = None) -> WorkflowView:
    """One workflow's page (``NotFoundError`` naming the known workflows if none)."""
    at = now or datetime.now(UTC)
    with store.read() as conn:
        wf = WorkflowRepo(conn).get(workflow)
        summary = _summary(conn, wf, at)
        envs = EnvironmentRepo(conn)
        history = sorted(
            (h for env in wf.environments for h in envs.history(wf.name, env)),
            key=lambda h: (h.created_at, h.seq),
            reverse=True,
        )
        rollouts = tuple(
            r for env in wf.environments if (r := RolloutRepo(conn).latest(wf.name, env))
        )
        alerts = AlertRepo(conn).between(wf.name, EPOCH, at)[-LATEST_ALERTS:]
        versions, version_count = VersionRepo(conn).newest(wf.name, LATEST_VERSIONS)
        rehearsal = RehearsalRepo(conn).latest(wf.name)
    return WorkflowView(
        summary=summary,
        owners=dict(wf.owners),
        data_class=wf.data_class,
        history=tuple(history[:LATEST_HISTORY]),
        rollouts=rollouts,
        analysis={r.rollout_id: assess(r, now=at) for r in rollouts if r.is_running},
        alerts=tuple(reversed(alerts)),
        versions=tuple(versions),
        version_count=version_count,
        rehearsal=rehearsal,
        rehearsal_text=rehearsal_summary(rehearsal),
    )


def _summary(conn: Conn, wf: WorkflowRecord, at: datetime) -> WorkflowSummary:
    stage = stage_state(wf.name, StageRepo(conn).history(wf.name), at.date()).stage
    return WorkflowSummary(
        workflow=wf.name,
        description=wf.description,
        stakes=wf.stakes,
        stage=stage,
        environments=tuple(_environment(conn, wf.name, env) for env in wf.environments),
        firing=_firing(conn, wf, at),
    )


def _environment(conn: Conn, workflow: str, env: str) -> EnvironmentView:
    repo = EnvironmentRepo(conn)
    serving = repo.serving(workflow, env)
    rollout = RolloutRepo(conn).active(workflow, env)
    if serving is None:
        return EnvironmentView(env, None, None, None, None, None, rollout)
    history = repo.history(workflow, env)
    last = history[-1] if history else None
    return EnvironmentView(
        env=env,
        version_id=serving[0].version_id,
        since=last.created_at if last else None,
        moved_by=last.actor if last else None,
        move=last.action if last else None,
        pause=serving[1],
        rollout=rollout,
    )


def _firing(conn: Conn, wf: WorkflowRecord, at: datetime) -> tuple[AlertRecord, ...]:
    config = MonitorConfig.from_dict(wf.monitor)
    longest = max([config.cooldown, *(config.cooldown_for(r.signal) for r in config.rules)])
    latest: dict[tuple[str, str], AlertRecord] = {}
    for alert in AlertRepo(conn).between(wf.name, at - longest, at):
        latest[(alert.env, alert.signal)] = alert  # oldest first: the last one stays
    return tuple(
        a
        for a in sorted(latest.values(), key=lambda a: a.seq, reverse=True)
        if at - a.created_at < config.cooldown_for(a.signal)
    )
