"""The runbook's facts, read from the store: ``build_runbook`` fills a ``domain.runbook.Runbook``.

The handover facts (owners, tracked numbers, alerts, escalations, rehearsal, readiness)
come from ``release.handover.gather``; this module adds per environment what runs there,
the gate decision and the move that put it there, a pause or a rollout, and the version
a rollback returns to; and, from the last four weeks of runs, a normal input and output,
the label mix, the failure reasons and the runs to review. ``write_runbook`` renders it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from releasegate.domain.handover import RUNS_PERIOD, readiness
from releasegate.domain.monitoring import MonitorConfig
from releasegate.domain.pausing import PauseOn
from releasegate.domain.promotion import step_back
from releasegate.domain.runbook import (
    AlertRuleFacts,
    EnvironmentFacts,
    FailureFacts,
    RecentAlert,
    Runbook,
)
from releasegate.domain.runs import IS_EDITED, IS_ESCALATED, IS_NEGATIVE_FEEDBACK
from releasegate.release.handover import EPOCH, Gathered, decision_for, gather
from releasegate.release.review_queue import review_numbers
from releasegate.store.alerts import AlertRepo
from releasegate.store.decisions import ApprovalRepo
from releasegate.store.engine import Conn, Store
from releasegate.store.environments import EnvironmentRepo
from releasegate.store.rollouts import RolloutRepo
from releasegate.store.runs import RunRepo
from releasegate.store.versions import VersionRepo

RECENT_ALERTS = 5
EXAMPLE_CHARS = 300


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _rules(config: MonitorConfig) -> tuple[AlertRuleFacts, ...]:
    out = []
    for r in config.rules:
        parts = []
        if r.above is not None:
            parts.append(f"above {r.above:g}")
        if r.below is not None:
            parts.append(f"below {r.below:g}")
        parts.append(f"with at least {r.min_sample or config.min_sample} runs")
        cooldown = config.cooldown_for(r.signal).total_seconds()
        parts.append(f"quiet for {_duration(cooldown)} after it fires")
        out.append(AlertRuleFacts(r.signal, ", ".join(parts)))
    return tuple(out)


def _pause_rules(rules: PauseOn | None) -> tuple[str, ...]:
    if rules is None:
        return ()
    window = _duration(rules.window.total_seconds())
    return tuple(
        f"the {name.replace('_', ' ')} of the last {window} is shown above {ceiling:.0%} "
        f"(with at least {rules.min_runs} runs; at most {rules.alpha:.0%} false pauses per "
        "check over all the rules)"
        for name, ceiling in rules.ceilings.items()
    )


def _environment(conn: Conn, workflow: str, env: str) -> EnvironmentFacts:
    envs = EnvironmentRepo(conn)
    current = envs.current(workflow, env)
    history = envs.history(workflow, env)
    pause = envs.pause(workflow, env)
    active = RolloutRepo(conn).active(workflow, env)
    rollout = (
        None
        if active is None
        else f"a rollout of {active.canary_id[:12]} over {active.stable_id[:12]} serves "
        f"{active.weight:g}% of traffic (step {active.step + 1} of {len(active.steps)})"
    )
    if current is None:
        return EnvironmentFacts(
            env, None, "", None, None, None, None, None, "", None, None, None, None, (),
            None, None, None, rollout, None, "nothing runs there yet",
        )  # fmt: skip
    vid = current.version_id
    version = VersionRepo(conn).find(vid)
    last = history[-1] if history else None
    decision = decision_for(conn, workflow, env, vid)
    target = step_back([h.version_id for h in history if h.action == "promote"], vid)
    target_version = VersionRepo(conn).find(target) if target else None
    return EnvironmentFacts(
        env=env,
        version_id=vid,
        version_reason=version.reason if version else "",
        version_owner=version.owner if version else None,
        version_created_at=version.created_at if version else None,
        moved_at=last.created_at if last else None,
        moved_by=last.actor if last else None,
        move_action=last.action if last else None,
        move_reason=last.reason if last else "",
        verdict=str(decision.verdict) if decision else None,
        decision_id=decision.decision_id if decision else None,
        decided_at=decision.created_at if decision else None,
        change_class=decision.change_class if decision else None,
        approved_by=tuple(a.approver for a in ApprovalRepo(conn).list(vid, env)),
        paused_reason=pause.reason if pause else None,
        paused_by=pause.by if pause else None,
        paused_at=pause.at if pause else None,
        rollout=rollout,
        rollback_to=target,
        rollback_to_reason=(
            (target_version.reason if target_version else "")
            if target
            else "no earlier version passed the gate into this environment"
        ),
    )


def build_runbook(store: Store, workflow: str, *, now: datetime | None = None) -> Runbook:
    """The runbook of ``workflow`` as the store has it now."""
    now = now or datetime.now(UTC)
    got: Gathered = gather(store, workflow, now=now)
    wf, env = got.workflow, got.env
    start, end = (now - RUNS_PERIOD).timestamp(), now.timestamp()
    with store.read() as conn:
        environments = tuple(_environment(conn, workflow, e) for e in wf.environments)
        runs = RunRepo(conn)
        example = runs.latest_ok_example(workflow, env, max(start, end - 86400 * 2), end)
        failures = tuple(
            FailureFacts(f.reason, f.runs, f.last_run_id)
            for f in runs.failure_reasons(workflow, env, start, end)
        )
        escalated = tuple(runs.latest_ids(workflow, env, start, end, IS_ESCALATED))
        edited = tuple(runs.latest_ids(workflow, env, start, end, IS_EDITED))
        negative = tuple(runs.latest_ids(workflow, env, start, end, IS_NEGATIVE_FEEDBACK))
        alerts = AlertRepo(conn).between(workflow, EPOCH, now)[-RECENT_ALERTS:]
    ok = example or (None, None)
    monitor = got.monitor
    model = got.running.manifest.get("model", {}) if got.running else {}
    model_text = (
        " ".join(str(model[k]) for k in ("provider", "name", "revision", "digest") if model.get(k))
        if isinstance(model, dict)
        else ""
    )
    owners = wf.owners
    return Runbook(
        workflow=workflow,
        description=wf.description,
        stakes=wf.stakes,
        generated_at=now,
        stage=got.stage,
        change_owner=owners.get("change"),
        care_owner=owners.get("care"),
        approvers=tuple(owners.get("approvers") or ()),
        business=tuple(owners.get("business") or ()),
        responders=tuple(owners.get("responders") or ()),
        main_env=env,
        model=model_text,
        runs_per_day=got.runs_per_day,
        example_input=_clip(ok[0]),
        example_output=_clip(ok[1]),
        top_labels=got.labels,
        tracked=got.facts.tracked,
        error_rate=got.ranges["error_rate"],
        escalation_rate=got.ranges["escalation_rate"],
        escalations=got.facts.escalations,
        pause_rules=_pause_rules(got.pause_on),
        monitor_window=_duration(monitor.window.total_seconds()),
        min_sample=monitor.min_sample,
        cooldown=_duration(monitor.cooldown.total_seconds()),
        drift_alerts=monitor.drift_alerts,
        rules=_rules(monitor),
        routes=tuple(r.label for r in monitor.routes),
        recent_alerts=tuple(
            RecentAlert(a.created_at, a.env, a.signal, a.severity, a.message, a.status)
            for a in reversed(alerts)
        ),
        environments=environments,
        rehearsal=got.facts.rehearsal,
        failures=failures,
        escalated_runs=escalated,
        edited_runs=edited,
        negative_runs=negative,
        suite=got.decision.report.suite.name
        if got.decision and got.decision.report.suite
        else None,
        readiness=readiness(got.facts),
        review=review_numbers(store, workflow, env, now - RUNS_PERIOD, now),
    )


def _clip(text: str | None) -> str | None:
    if text is None:
        return None
    return text if len(text) <= EXAMPLE_CHARS else text[: EXAMPLE_CHARS - 1] + "…"


def write_runbook(runbook: Runbook, path: Path, fmt: str) -> Path:
    """Write the runbook as ``fmt`` (``md`` or ``html``) to ``path``; returns the path."""
    from releasegate.reports.runbook import render_html, render_markdown

    text = render_markdown(runbook) if fmt == "md" else render_html(runbook)
    path.write_text(text, encoding="utf-8")
    return path
