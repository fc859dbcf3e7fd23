"""Governance review: gather the facts every check needs, in one snapshot, and run them.

The reads are ``store.review.ReviewRepo``'s set-based queries (workflows, environments
with their versions' manifests, moves, decisions, current suites, policy histories,
delivered alerts, runs grouped within the period), plus two lookups by id (the reports
of the decisions that admitted what runs now, and the manifests of versions seen in
runs). The checks are pure (``domain.review``, ``domain.ratchet``); this module only
turns rows into their facts. ``review(..., fix=True)`` applies the fixes a finding
marks ``fixable`` (none of the checks here is: each needs a person's decision).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from releasegate.domain.identity import content_hash
from releasegate.domain.policy import Policy, default_policy, gate_rules_id, policy_from_content
from releasegate.domain.ratchet import FloorFacts, ratchets
from releasegate.domain.review import (
    DEFAULT_PERIOD,
    AlertRuleFacts,
    Expired,
    Finding,
    LastRehearsal,
    Paused,
    Place,
    Reported,
    Review,
    RunningData,
    RunningModel,
    Seen,
    Serving,
    StoredPolicy,
    WorkflowOwners,
    admitted,
    alert_tests,
    data_class_violations,
    expired,
    missing_owners,
    model_problems,
    ordered,
    outside_gate,
    paused,
    rehearsals,
    reported_drift,
    stale_gates,
    unaudited_policies,
)
from releasegate.release.data_rules import load_rules
from releasegate.release.experiments import collect_expired, expired_experiments
from releasegate.release.refs import actor as default_actor
from releasegate.release.rehearse import is_production
from releasegate.store.engine import Store
from releasegate.store.policies import PolicyRepo, PolicyVersion
from releasegate.store.review import (
    DecisionRow,
    EnvRow,
    RehearsalRow,
    ReviewRepo,
    RunGroup,
)
from releasegate.store.workflows import WorkflowRepo


def review(
    store: Store,
    workflow: str | None = None,
    *,
    period: timedelta = DEFAULT_PERIOD,
    fix: bool = False,
    at: datetime | None = None,
    who: str | None = None,
) -> Review:
    """Every check over ``workflow`` (or every workflow). ``fix`` first applies the fixes
    review can make itself (collecting expired experiments, as ``gc`` does, audited), so
    the findings are what is left."""
    at = at or datetime.now(UTC)
    since = (at - period).timestamp()
    rules = load_rules()  # a bad rules file is exit 2 before anything is read
    fixed: list[str] = []
    if fix:
        done = collect_expired(store, workflow, now=at, who=who or default_actor())
        fixed += [
            f"collected experiment {e.version_id[:12]} of {e.workflow}: {e.outputs:,} "
            f"output(s), {e.scores:,} score(s) (`releasegate gc {e.workflow}`)"
            for e in done.collected
        ]
    with store.snapshot() as conn:
        if workflow is not None:
            WorkflowRepo(conn).get(workflow)  # an unknown name is bad input, named
        repo = ReviewRepo(conn)
        workflows = repo.workflows(workflow)
        envs = repo.environments(workflow)
        moves = repo.moves(workflow)
        candidates = repo.rollout_candidates(workflow)
        decisions = repo.decisions(workflow)
        suites = repo.current_suites(workflow)
        histories = (
            PolicyRepo(conn).history(workflow)
            if workflow is not None
            else PolicyRepo(conn).all_history()
        )
        delivered = repo.delivered_alerts(workflow)
        recorded = repo.recorded_policies(workflow)
        rehearsed = repo.last_rehearsals(workflow)
        groups = repo.run_groups(since, workflow)
        admitting = _admitting(decisions)
        reports = repo.reports(
            admitting[(e.workflow, e.env, e.version_id)].decision_id
            for e in envs
            if (e.workflow, e.env, e.version_id) in admitting
        )
        manifests = repo.manifests({g.version_id for g in groups})
        drift = reported_drift(_reported(groups), manifests)
        classes = {w.name: w.data_class for w in workflows}
        running_data = [
            RunningData(e.workflow, e.env, e.version_id, e.manifest, classes[e.workflow])
            for e in envs
            if e.manifest is not None and e.workflow in classes
        ]
        breaches = data_class_violations(running_data, rules)
        newest = repo.latest_versions(workflow)
        origins = repo.origins(
            {f.subject for f in drift}
            | {f.subject for f in breaches}
            | {e.version_id for e in envs}
            | set(newest.values())
        )
    policies = {key: _current(rows) for key, rows in histories.items()}

    def policy_of(wf: str, env: str) -> Policy:
        return policies.get((wf, env)) or default_policy(wf, env)

    latest: dict[Place, str] = {}
    for d in decisions:  # oldest first: the last one seen is the latest
        latest[(d.workflow, d.env, d.version_id)] = d.verdict
    findings: list[Finding] = []
    findings += outside_gate(_seen(groups, manifests), admitted(moves.keys() | candidates, latest))
    findings += reported_drift(_reported(groups), manifests, origins)
    findings += stale_gates(
        Serving(
            e.workflow,
            e.env,
            e.version_id,
            *_decided(admitting.get((e.workflow, e.env, e.version_id))),
            suites.get(e.workflow),
            policy_of(e.workflow, e.env).policy_id,
            *_gate_rules(
                histories.get((e.workflow, e.env), ()),
                admitting.get((e.workflow, e.env, e.version_id)),
            ),
        )
        for e in envs
    )
    findings += unaudited_policies(
        StoredPolicy(
            wf, env, rows[-1].policy_id, content_hash(rows[-1].content), recorded.get((wf, env))
        )
        for (wf, env), rows in sorted(histories.items())
    )
    files = {wf: origins[vid] for wf, vid in newest.items() if vid in origins}
    findings += missing_owners((WorkflowOwners(w.name, w.owners) for w in workflows), files)
    findings += model_problems(
        (
            RunningModel(e.workflow, e.env, e.version_id, e.manifest, policy_of(e.workflow, e.env))
            for e in envs
            if e.manifest is not None
        ),
        origins,
    )
    findings += data_class_violations(running_data, rules, origins)
    findings += alert_tests(
        AlertRuleFacts(w.name, rule, delivered.get((w.name, rule), 0), w.environments)
        for w in workflows
        for rule in _rules(w.monitor)
    )
    running = {e.workflow for e in envs}
    findings += rehearsals(
        (
            _last_rehearsal(w.name, w.environments, rehearsed.get(w.name))
            for w in workflows
            if w.name in running
        ),
        period=period,
        at=at,
    )
    findings += expired(
        Expired(x.workflow, x.version_id, x.expired_at, x.retention_days, x.outputs,
                x.scores, x.kept_because)
        for x in expired_experiments(store, workflow, now=at)
    )  # fmt: skip
    findings += paused(
        Paused(e.workflow, e.env, e.version_id, e.paused_reason, e.paused_by or "", e.paused_at)
        for e in envs
        if e.paused_reason is not None and e.paused_at is not None
    )
    findings += ratchets(_floors(envs, histories, admitting, reports, moves), period=period, at=at)
    counts = {
        "workflows": len(workflows),
        "environments": len(envs),
        "decisions": len(decisions),
        "run_groups": len(groups),
        "runs_in_period": sum(g.runs for g in groups),
    }
    return Review(
        workflows=tuple(w.name for w in workflows),
        period=period,
        at=at,
        findings=tuple(ordered(findings)),
        fixed=tuple(fixed),
        counts=counts,
    )


def _last_rehearsal(
    workflow: str, environments: Sequence[str], last: RehearsalRow | None
) -> LastRehearsal:
    staging = [e for e in environments if not is_production(environments, e)]
    env = staging[0] if staging else f"{environments[-1]} --allow-production"
    if last is None:
        return LastRehearsal(workflow, env)
    return LastRehearsal(
        workflow, env, last.rehearsal_id, last.env, last.result, last.finished_at,
        last.mutation_score,
    )  # fmt: skip


def _current(rows: Sequence[PolicyVersion]) -> Policy:
    return policy_from_content(rows[-1].content)


def _admitting(decisions: Sequence[DecisionRow]) -> dict[Place, DecisionRow]:
    """Per (workflow, env, version): its latest decision that cleared every check."""
    out: dict[Place, DecisionRow] = {}
    for d in decisions:
        if d.checks_passed:
            out[(d.workflow, d.env, d.version_id)] = d
    return out


def _gate_rules(
    history: Sequence[PolicyVersion], decided: DecisionRow | None
) -> tuple[str | None, str | None]:
    """``gate_rules_id`` of the decision's policy and of the current one (None: unknown)."""
    if not history or decided is None:
        return None, None
    content = {row.policy_id: row.content for row in history}
    then = content.get(decided.policy_id) if decided.policy_id else None
    return (None if then is None else gate_rules_id(then)), gate_rules_id(history[-1].content)


def _decided(d: DecisionRow | None) -> tuple[str | None, str | None, str | None]:
    return (None, None, None) if d is None else (d.decision_id, d.suite_id, d.policy_id)


def _seen(groups: Sequence[RunGroup], manifests: Mapping[str, Any]) -> list[Seen]:
    merged: dict[Place, list[Any]] = {}
    for g in groups:
        key = (g.workflow, g.env, g.version_id)
        got = merged.get(key)
        if got is None:
            merged[key] = [g.runs, g.first_at, g.last_at]
        else:
            got[0] += g.runs
            got[1] = min(got[1], g.first_at)
            got[2] = max(got[2], g.last_at)
    return [
        Seen(wf, env, vid, n, _at(first), _at(last), vid in manifests)
        for (wf, env, vid), (n, first, last) in sorted(merged.items())
    ]


def _reported(groups: Sequence[RunGroup]) -> list[Reported]:
    return [
        Reported(
            g.workflow,
            g.env,
            g.version_id,
            g.model,
            g.provider,
            g.prompt_digest,
            g.runs,
            g.example_run,
        )  # fmt: skip
        for g in groups
        if g.model is not None or g.provider is not None or g.prompt_digest is not None
    ]


def _rules(monitor: Mapping[str, Any] | None) -> list[str]:
    if not monitor:
        return []
    return sorted({str(r["signal"]) for r in monitor.get("rules") or [] if "signal" in r})


def _floors(
    envs: Sequence[EnvRow],
    histories: Mapping[tuple[str, str], Sequence[PolicyVersion]],
    admitting: Mapping[Place, DecisionRow],
    reports: Mapping[str, Mapping[str, Any]],
    moves: Mapping[Place, datetime],
) -> list[FloorFacts]:
    out = []
    for e in envs:
        rows = histories.get((e.workflow, e.env))
        if not rows:
            continue
        place = (e.workflow, e.env, e.version_id)
        decision = admitting.get(place)
        report = reports.get(decision.decision_id) if decision else None
        metrics = {m.get("name"): m for m in (report or {}).get("metrics") or []}
        floors = rows[-1].content.get("floors") or {}
        for metric, floor in sorted(floors.items()):
            since = rows[-1].created_at
            for older in reversed(rows[:-1]):
                if (older.content.get("floors") or {}).get(metric) != floor:
                    break
                since = older.created_at
            cand = (metrics.get(metric) or {}).get("candidate") or {}
            out.append(
                FloorFacts(
                    e.workflow,
                    e.env,
                    str(metric),
                    float(floor),
                    since,
                    e.version_id,
                    moves.get(place),
                    _num(cand.get("estimate")),
                    _num(cand.get("low")),
                    _num(cand.get("se")),
                    int(cand["n"]) if isinstance(cand.get("n"), int) else None,
                )
            )
    return out


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)
