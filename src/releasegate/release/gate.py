"""Gate: gather the evidence for one version and one environment, decide, record.

The evidence is the candidate's eval on the workflow's current suite and, when
something already runs in the environment, the same suite on that baseline
(evaluated here if it never was: cached outputs make that free the second
time). Both versions' pins are checked against this machine first
(``release.pins``), so an edited module never produces results under an old
id. The decision itself is ``domain.decision.decide_gate`` (which also checks the
version's own manifest: its model pinned and blessed, its tools within the
policy's boundary); this module only fetches, computes statistics, and writes
the decision with its full report.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from releasegate.domain.decision import (
    Approval,
    Evidence,
    GateDecision,
    MetricEvidence,
    MustPassFailure,
)
from releasegate.domain.decision import (
    decide_gate as decide,
)
from releasegate.domain.diff import diff_manifests, render_text_diff
from releasegate.domain.pinning import pin_of
from releasegate.domain.policy import (
    Policy,
    default_policy,
    policy_from_content,
    required_approvals,
)
from releasegate.domain.stats import (
    Interval,
    PairedComparison,
    paired_compare,
    paired_compare_aggregate,
)
from releasegate.domain.suite import Suite
from releasegate.release.evaluate import (
    CaseTable,
    build_scorers,
    case_table,
    eval_precision,
    evaluate_suite,
    make_provider,
    metric_intervals,
    stored_suite,
)
from releasegate.release.pins import check_pins
from releasegate.release.refs import actor as default_actor
from releasegate.release.refs import check_env, find_version
from releasegate.runner.engine import Progress, run_suite
from releasegate.store.audit import AuditRepo
from releasegate.store.decisions import ApprovalRepo, DecisionRecord, DecisionRepo
from releasegate.store.engine import Store
from releasegate.store.environments import EnvironmentRepo
from releasegate.store.evals import EvalRecord, EvalRepo
from releasegate.store.policies import PolicyRepo
from releasegate.store.rows import now
from releasegate.store.suites import SuiteRepo
from releasegate.store.versions import VersionRecord
from releasegate.store.workflows import WorkflowRepo


@dataclass(frozen=True)
class GateOutcome:
    decision_id: str
    decision: GateDecision
    report: Mapping[str, Any]

    @property
    def verdict(self) -> str:
        return self.decision.verdict.value

    def reasons_text(self) -> str:
        return "; ".join(self.decision.reasons)


def current_policy(conn: Any, workflow: str, env: str) -> Policy:
    found = PolicyRepo(conn).current(workflow, env)
    return policy_from_content(found[1]) if found else default_policy(workflow, env)


def _table(store: Store, version: VersionRecord, suite: Suite, epochs: int) -> CaseTable:
    scorers = build_scorers(suite)
    result = run_suite(
        store,
        version_id=version.version_id,
        suite=suite,
        provider=make_provider(store, version.manifest),
        scorers=scorers,
        epochs=epochs,
    )
    return case_table(suite, [s for _, s in scorers], result.runs, epochs)


def _compare(cand: CaseTable, base: CaseTable) -> dict[str, PairedComparison]:
    out: dict[str, PairedComparison] = {}
    for name, values in cand.values.items():
        if name not in base.values:
            continue
        if name in cand.aggregates and name in base.aggregates:
            fns = {"candidate": cand.aggregates[name], "baseline": base.aggregates[name]}

            def both(idx: npt.NDArray[np.int64], which: str, f: Any = fns) -> float:
                return float(f[which](idx))

            out[name] = paired_compare_aggregate(both, len(cand.cases))
        else:
            out[name] = paired_compare(values, base.values[name])
    return out


def _iv(iv: Interval | None) -> dict[str, Any] | None:
    if iv is None:
        return None
    return {
        "estimate": iv.estimate,
        "low": iv.low,
        "high": iv.high,
        "se": iv.se,
        "n": iv.n,
        "method": iv.method,
    }


def gate(
    store: Store,
    version_ref: str,
    env: str,
    *,
    who: str | None = None,
    progress: Progress | None = None,
) -> GateOutcome:
    who = who or default_actor()
    with store.read() as conn:
        version = find_version(conn, version_ref)
        wf = WorkflowRepo(conn).get(version.workflow)
        check_env(wf, env)
        policy = current_policy(conn, wf.name, env)
        suite_id = SuiteRepo(conn).current_id(wf.name)
        current = EnvironmentRepo(conn).current(wf.name, env)
        baseline = None
        if current is not None and current[0] != version.version_id:
            baseline = find_version(conn, current[0])
        cand_eval: EvalRecord | None = (
            EvalRepo(conn).latest(version.version_id, suite_id) if suite_id else None
        )
        approvals = [Approval(a, r) for a, r in ApprovalRepo(conn).list(version.version_id, env)]

    floors = dict(policy.floors)
    evidence: Evidence | None = None
    missing: str | None = None
    metrics: dict[str, MetricEvidence] = {}
    suite: Suite | None = None
    if suite_id is None:
        missing = (
            f"workflow '{wf.name}' has no suite yet: run "
            f"`releasegate eval {version.version_id[:12]} --suite FILE`"
        )
    elif cand_eval is None:
        missing = (
            f"{version.version_id[:12]} was not evaluated on the current suite "
            f"({suite_id[:12]}): run `releasegate eval {version.version_id[:12]} --suite FILE`"
        )
    else:
        # before anything runs: what each version pinned is what this machine would run,
        # so no result (the baseline's above all) is stored under an id it is not
        check_pins(store, version)
        if baseline is not None:
            check_pins(store, baseline)
        suite = stored_suite(store, suite_id)
        for metric, floor in suite.thresholds.items():
            floors.setdefault(metric, floor)
        epochs = cand_eval.epochs
        cand_table = _table(store, version, suite, epochs)
        intervals = metric_intervals(cand_table)
        base_intervals: dict[str, Interval] = {}
        comparisons: dict[str, PairedComparison] = {}
        if baseline is not None:
            with store.read() as conn:
                has_base_eval = EvalRepo(conn).latest(baseline.version_id, suite_id) is not None
            if not has_base_eval:
                evaluate_suite(
                    store,
                    baseline,
                    suite,
                    epochs=epochs,
                    progress=progress,
                    who=who,
                    make_current=False,
                )
            base_table = _table(store, baseline, suite, epochs)
            base_intervals = metric_intervals(base_table)
            comparisons = _compare(cand_table, base_table)
        for name, iv in intervals.items():
            metrics[name] = MetricEvidence(
                name, iv, base_intervals.get(name), comparisons.get(name)
            )
        s = cand_eval.summary
        evidence = Evidence(
            metrics=metrics,
            must_pass_total=int(s["must_pass"]["total"]),
            must_pass_failures=tuple(
                MustPassFailure(f["case_id"], f["input"], f["expected"], f["output"], f["detail"])
                for f in s["must_pass"]["failures"]
            ),
            latency_p95_ms=float(s["latency_ms"]["p95"]),
            cost_per_case_usd=float(s["cost_usd"]["per_case"]),
            n_cases=int(s["cases"]) * epochs,
            n_errors=int(s["errors"]["count"]),
        )

    diff = diff_manifests(baseline.manifest if baseline else {}, version.manifest)
    change_class = diff.change_class.value if diff.change_class else None
    need = required_approvals(policy, wf.stakes, change_class)
    decision = decide(
        policy=policy,
        floors=floors,
        evidence=evidence,
        has_baseline=baseline is not None,
        need=need,
        approvals=approvals,
        missing_evidence=missing,
        manifest=version.manifest,
    )
    pin = pin_of(version.manifest.get("model") or {})

    decision_id = uuid.uuid4().hex
    created = now()
    report: dict[str, Any] = {
        "decision_id": decision_id,
        "created_at": created.isoformat(),
        "workflow": wf.name,
        "env": env,
        "stakes": wf.stakes,
        "verdict": decision.verdict.value,
        "reasons": list(decision.reasons),
        "checks": [
            {"name": c.name, "status": c.status.value, "detail": c.detail} for c in decision.checks
        ],
        "version": {
            "id": version.version_id,
            "owner": version.owner,
            "reason": version.reason,
            "parent_id": version.parent_id,
            "track": version.track,
            "created_at": version.created_at.isoformat(),
        },
        "baseline": None
        if baseline is None
        else {"id": baseline.version_id, "owner": baseline.owner, "reason": baseline.reason},
        "suite": None
        if suite is None
        else {"id": suite.suite_id, "name": suite.name, "cases": len(suite.cases)},
        "eval": None
        if cand_eval is None
        else {
            "eval_id": cand_eval.eval_id,
            "epochs": cand_eval.epochs,
            **eval_precision(cand_eval.summary),
        },
        "policy": {"id": policy.policy_id, **policy.content()},
        "model": {
            "runtime": pin.runtime,
            "name": pin.name,
            "digest": pin.digest,
            "revision": pin.revision,
            "pinned": pin.is_pinned,
        },
        "change": {
            "class": change_class,
            "first_release": current is None,
            "classes": sorted(c.value for c in diff.classes),
            "diff": render_text_diff(diff) if baseline is not None else [],
        },
        "metrics": [
            {
                "name": m.name,
                "candidate": _iv(m.candidate),
                "baseline": _iv(m.baseline),
                "comparison": None
                if m.comparison is None
                else {
                    "delta": m.comparison.delta,
                    "low": m.comparison.low,
                    "high": m.comparison.high,
                    "mde": m.comparison.mde,
                    "n": m.comparison.n,
                    "method": m.comparison.method,
                    "p_value": m.comparison.p_value,
                    "worse": m.comparison.worse,
                    "better": m.comparison.better,
                },
                "floor": floors.get(m.name),
            }
            for m in metrics.values()
        ],
        "must_pass": None if cand_eval is None else cand_eval.summary["must_pass"],
        "budgets": None
        if cand_eval is None
        else {
            "latency_p95_ms": cand_eval.summary["latency_ms"]["p95"],
            "cost_per_case_usd": cand_eval.summary["cost_usd"]["per_case"],
        },
        "approvals": {
            "needed": {"named": need.named, "business": need.business},
            "given": [{"approver": a.approver, "role": a.role} for a in approvals],
        },
    }
    with store.write() as conn:
        DecisionRepo(conn).add(
            DecisionRecord(
                decision_id=decision_id,
                version_id=version.version_id,
                workflow=wf.name,
                env=env,
                suite_id=suite_id or "",
                policy_id=policy.policy_id,
                baseline_id=baseline.version_id if baseline else None,
                verdict=decision.verdict.value,
                checks_passed=decision.checks_passed,
                change_class=change_class,
                report=report,
                created_at=created,
            ),
        )
        AuditRepo(conn).append(
            kind="gate.decided",
            actor=who,
            workflow=wf.name,
            subject=version.version_id,
            payload={
                "env": env,
                "decision_id": decision_id,
                "verdict": decision.verdict.value,
                "checks_passed": decision.checks_passed,
                "suite_id": suite_id,
                "policy_id": policy.policy_id,
                "baseline_id": baseline.version_id if baseline else None,
                "change_class": change_class,
            },
        )
    return GateOutcome(decision_id, decision, report)
