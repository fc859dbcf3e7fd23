"""The facts a handover is decided on, read from the store, and the checklist over them.

``gather`` reads what ``domain.handover.readiness`` needs: the owners and responders of
the workflow file, the tracked numbers (the gate's quality metric against its floor,
cost per task and latency p95 of the last four weeks of production runs against the
policy's budgets), the alert routes and what they delivered, what the workflow sends to
a human, the last rollback rehearsal, the runs and their versions, and what is in
flight. ``check`` is the checklist ``report handover`` prints and ``stage set routine``
requires; the runbook quotes the same facts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from releasegate.domain.handover import (
    RUNS_PERIOD,
    HandoverFacts,
    NormalRange,
    Readiness,
    StageState,
    TrackedNumber,
    normal_range,
    readiness,
    stage_state,
)
from releasegate.domain.monitoring import MonitorConfig
from releasegate.domain.pausing import PauseOn
from releasegate.domain.runs import IS_ERROR, IS_ESCALATED
from releasegate.store.alerts import ALERT_ROUTED, AlertRepo
from releasegate.store.decisions import DecisionRecord, DecisionRepo
from releasegate.store.engine import Conn, Store
from releasegate.store.environments import EnvironmentRepo
from releasegate.store.policies import PolicyRepo
from releasegate.store.rehearsals import RehearsalRepo
from releasegate.store.rollouts import RolloutRepo
from releasegate.store.runs import RunRepo
from releasegate.store.stages import StageRepo
from releasegate.store.versions import VersionRecord, VersionRepo
from releasegate.store.workflows import WorkflowRecord, WorkflowRepo

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def main_env(wf: WorkflowRecord) -> str:
    """The environment users are served from: ``production`` if the workflow has one,
    else its last environment."""
    return "production" if "production" in wf.environments else wf.environments[-1]


@dataclass(frozen=True)
class Gathered:
    """Everything ``gather`` read: the checklist's facts and what the runbook adds."""

    workflow: WorkflowRecord
    env: str
    """The environment the numbers are from (``main_env``)."""
    facts: HandoverFacts
    stage: StageState
    monitor: MonitorConfig
    running: VersionRecord | None
    """What runs in ``env``."""
    decision: DecisionRecord | None
    """The gate decision that let it run there."""
    ranges: Mapping[str, NormalRange] = field(default_factory=dict)
    """``error_rate`` and ``escalation_rate`` of the period, as tracked numbers are."""
    runs_in_env: int = 0
    runs_per_day: float | None = None
    """Runs on a typical day in ``env`` (the median of the days that had runs)."""
    pause_on: PauseOn | None = None
    """The current policy's automatic pause rules in ``env`` (None: only a person pauses)."""
    labels: tuple[tuple[str, int], ...] = ()
    """The most frequent output labels in ``env`` over the period, with their counts."""


def decision_for(conn: Conn, workflow: str, env: str, version_id: str) -> DecisionRecord | None:
    """The gate decision the version's latest promotion into ``env`` named (or its latest
    decision there, after a rollback, which names none)."""
    repo = DecisionRepo(conn)
    history = EnvironmentRepo(conn).history(workflow, env)
    for h in reversed(history):
        if h.version_id == version_id and h.decision_id:
            found = repo.by_prefix(h.decision_id)
            if found:
                return found[0]
    return repo.latest(version_id, env)


def _quality(env: str, policy: Mapping[str, Any], decision: DecisionRecord | None) -> TrackedNumber:
    """The gate's quality metric of what runs, against the current policy's floor: the
    policy's regression metric, else its first floor, else the report's first metric."""
    regressions = policy.get("max_regression") or []
    floors: Mapping[str, Any] = policy.get("floors") or {}
    names = [r["metric"] for r in regressions if isinstance(r, Mapping)] + list(floors)
    rows = {m.name: m for m in decision.report.metrics} if decision is not None else {}
    name = next((n for n in names if n in rows), names[0] if names else next(iter(rows), ""))
    row = rows.get(name)
    floor = floors.get(name)
    value = row.candidate if row is not None else None
    return TrackedNumber(
        "quality",
        f"quality ({name}, on the suite)" if name else "quality",
        env,
        "score",
        "min",
        float(floor) if isinstance(floor, int | float) else None,
        f"floor in the {env} policy" if floor is not None else "",
        None if value is None else float(value.estimate),
        None if value is None else float(value.low),
        None if value is None else float(value.high),
        0,
        "no gate decision for what runs"
        if decision is None
        else f"gate decision {decision.decision_id[:12]} of {decision.created_at:%Y-%m-%d}",
    )


def _budget(policy: Mapping[str, Any], name: str) -> float | None:
    value = (policy.get("budgets") or {}).get(name)
    return float(value) if isinstance(value, int | float) else None


def gather(store: Store, workflow: str, *, now: datetime | None = None) -> Gathered:
    """Read the facts of ``workflow``'s handover (one read transaction)."""
    now = now or datetime.now(UTC)
    start, end = (now - RUNS_PERIOD).timestamp(), now.timestamp()
    with store.read() as conn:
        wf = WorkflowRepo(conn).get(workflow)
        env = main_env(wf)
        stage = stage_state(workflow, StageRepo(conn).history(workflow), now.date())
        current = EnvironmentRepo(conn).current(workflow, env)
        running = VersionRepo(conn).find(current.version_id) if current else None
        decision = decision_for(conn, workflow, env, running.version_id) if running else None
        runs = RunRepo(conn)
        window = runs.signal_window(workflow, env, start, end, started=True)
        counts = runs.version_counts(workflow, start, end)
        registered = VersionRepo(conn).registered(workflow, counts)
        alerts = AlertRepo(conn).between(workflow, EPOCH, now + timedelta(seconds=1))
        # the last finished rehearsal: one running now has proven nothing yet
        rehearsal = next(
            (r for r in RehearsalRepo(conn).recent(workflow) if r.finished_at is not None), None
        )
        stored_policy = PolicyRepo(conn).current(workflow, env)
        in_flight = []
        for name in wf.environments:
            active = RolloutRepo(conn).active(workflow, name)
            if active is not None:
                in_flight.append(
                    f"a rollout of {active.canary_id[:12]} in {name} "
                    f"({active.weight:g}% of traffic): `releasegate rollout status "
                    f"{workflow} --env {name}`"
                )
            paused = EnvironmentRepo(conn).pause(workflow, name)
            if paused is not None:
                in_flight.append(f"{name} paused since {paused.at:%Y-%m-%d} ({paused.reason})")
    if stage.scheduled is not None and stage.scheduled.stage != "routine":
        s = stage.scheduled
        in_flight.append(f"stage {s.stage} scheduled from {s.handover_date.isoformat()}")

    monitor = MonitorConfig.from_dict(wf.monitor)
    # the targets are the current policy's (what the next gate and the automatic pause use)
    policy: Mapping[str, Any] = (
        stored_policy.content
        if stored_policy is not None
        else decision.report.policy.content
        if decision is not None
        else {}
    )
    started = window.column("started_at") if len(window) else _empty()
    cost = normal_range(started, window.column("cost_usd") if len(window) else _empty(), "mean")
    latency = normal_range(started, window.column("latency_ms") if len(window) else _empty(), "p95")
    errors = normal_range(started, _share(window, IS_ERROR), "mean")
    escalated = normal_range(started, _share(window, IS_ESCALATED), "mean")
    source = f"{env} runs, last {RUNS_PERIOD.days} days"
    cost_budget = _budget(policy, "cost_per_case_usd")
    latency_budget = _budget(policy, "latency_p95_ms")
    tracked = (
        _quality(env, policy, decision),
        TrackedNumber(
            "cost_per_task",
            "cost per task",
            env,
            "usd",
            "max",
            cost_budget,
            f"budget in the {env} policy" if cost_budget is not None else "",
            *cost,
            source,
        ),
        TrackedNumber(
            "latency_p95",
            "latency p95",
            env,
            "ms",
            "max",
            latency_budget,
            f"budget in the {env} policy" if latency_budget is not None else "",
            *latency,
            source,
        ),
    )

    owners = wf.owners
    routes = tuple(r.label for r in monitor.routes)
    delivered = {
        label
        for a in alerts
        for label in routes
        if any(line.startswith(f"{label}: sent") for line in a.routed)
    }
    last = next((a for a in reversed(alerts) if any(": sent" in line for line in a.routed)), None)
    escalations = []
    generation = running.manifest.get("generation", {}) if running else {}
    if isinstance(generation, Mapping) and generation.get("escalate_label"):
        floor = generation.get("min_confidence")
        escalations.append(
            "messages the model is unsure of"
            + (f" (confidence under {floor})" if floor is not None else "")
            + f" are labelled '{generation['escalate_label']}' for a person to handle"
        )
    if escalated.typical is not None and escalated.typical > 0:
        escalations.append(
            f"{escalated.typical * 100:.1f}% of {env} runs on a typical day are escalated "
            "to a human"
        )
    facts = HandoverFacts(
        workflow=workflow,
        now=now,
        change_owner=owners.get("change"),
        care_owner=owners.get("care"),
        responders=tuple(owners.get("responders") or ()),
        tracked=tracked,
        alert_routes=routes,
        alert_rules=len(monitor.rules),
        untested_rules=tuple(
            r.signal
            for r in monitor.rules
            if not any(a.signal == r.signal and a.status == ALERT_ROUTED for a in alerts)
        ),
        delivered=tuple(sorted(delivered)),
        last_alert=(
            None
            if last is None
            else f"{last.created_at:%Y-%m-%d %H:%M} UTC, {last.signal} in {last.env}"
        ),
        escalations=tuple(escalations),
        rehearsal=rehearsal,
        runs=sum(counts.values()),
        runs_unregistered=sum(n for v, n in counts.items() if v not in registered),
        versions_seen=tuple(sorted(counts, key=lambda v: -counts[v])),
        in_flight=tuple(in_flight),
    )
    return Gathered(
        workflow=wf,
        env=env,
        facts=facts,
        stage=stage,
        monitor=monitor,
        running=running,
        decision=decision,
        ranges={"error_rate": errors, "escalation_rate": escalated},
        runs_in_env=len(window),
        runs_per_day=_per_day(started),
        labels=_labels(window),
        pause_on=(
            PauseOn.from_content(stored_policy.content["pause_on"])
            if stored_policy is not None and stored_policy.content.get("pause_on")
            else None
        ),
    )


def check(store: Store, workflow: str, *, now: datetime | None = None) -> Readiness:
    """The readiness checklist of ``workflow`` now."""
    return readiness(gather(store, workflow, now=now).facts)


def _per_day(started: Any) -> float | None:
    import numpy as np

    if len(started) == 0:
        return None
    _, counts = np.unique(np.floor(started / 86400.0), return_counts=True)
    return float(np.median(counts))


def _labels(window: Any, top: int = 5) -> tuple[tuple[str, int], ...]:
    if not len(window):
        return ()
    found = Counter(lab for lab in window.column("label") if lab)
    return tuple(found.most_common(top))


def _empty() -> Any:
    import numpy as np

    return np.empty(0, dtype=np.float64)


def _share(window: Any, fact: Any) -> Any:
    return window.has(fact).astype("float64") if len(window) else _empty()
