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
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from releasegate.domain.decision import (
    Approval,
    Evidence,
    GateDecision,
    MetricEvidence,
    data_check,
)
from releasegate.domain.decision import (
    decide_gate as decide,
)
from releasegate.domain.diff import ManifestDiff, diff_manifests, render_text_diff
from releasegate.domain.gate_report import (
    ApprovalsInfo,
    BaselineInfo,
    Budgets,
    ChangeInfo,
    EvalInfo,
    GateReport,
    MetricRow,
    ModelInfo,
    MustPassInfo,
    PolicyInfo,
    SuiteInfo,
    VersionInfo,
)
from releasegate.domain.pinning import pin_of
from releasegate.domain.policy import (
    ApprovalNeed,
    Policy,
    default_policy,
    policy_from_content,
    required_approvals,
)
from releasegate.domain.promotion import Owners
from releasegate.domain.stats import (
    Interval,
    PairedComparison,
    paired_compare,
    paired_compare_aggregate,
)
from releasegate.domain.suite import Suite
from releasegate.release.data_rules import load_rules
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
from releasegate.store.workflows import WorkflowRecord, WorkflowRepo


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


@dataclass(frozen=True)
class GateOutcome:
    decision: GateDecision
    report: GateReport

    @property
    def decision_id(self) -> str:
        return self.report.decision_id

    @property
    def verdict(self) -> str:
        return self.decision.verdict.value

    def reasons_text(self) -> str:
        return "; ".join(self.decision.reasons)


@dataclass(frozen=True)
class _Facts:
    """What the store says about the candidate and its environment, read in one transaction."""

    version: VersionRecord
    wf: WorkflowRecord
    env: str
    policy: Policy
    suite_id: str | None
    current: tuple[str, int] | None
    baseline: VersionRecord | None
    cand_eval: EvalRecord | None
    approvals: tuple[Approval, ...]


@dataclass(frozen=True)
class _Measured:
    """The evidence the gate computed (None, with what is missing, when it cannot)."""

    evidence: Evidence | None
    missing: str | None
    suite: Suite | None
    floors: dict[str, float]


def gate(
    store: Store,
    version_ref: str,
    env: str,
    *,
    who: str | None = None,
    progress: Progress | None = None,
) -> GateOutcome:
    """Gather the facts, measure the evidence, decide (pure), build the typed report, record."""
    who = who or default_actor()
    rules = load_rules()  # a bad rules file is exit 2 before anything runs or is recorded
    facts = _gather(store, version_ref, env)
    measured = _measure(store, facts, who=who, progress=progress)
    diff = diff_manifests(facts.baseline.manifest if facts.baseline else {}, facts.version.manifest)
    change_class = diff.change_class.value if diff.change_class else None
    need = required_approvals(facts.policy, facts.wf.stakes, change_class)
    decision = decide(
        policy=facts.policy,
        floors=measured.floors,
        evidence=measured.evidence,
        has_baseline=facts.baseline is not None,
        need=need,
        approvals=facts.approvals,
        missing_evidence=measured.missing,
        manifest=facts.version.manifest,
        data=data_check(facts.version.manifest, facts.wf.data_class, rules),
    )
    report = _report(facts, measured, decision, diff, need)
    _record(store, report, decision, suite_id=facts.suite_id, who=who)
    return GateOutcome(decision, report)


def evaluates_first(store: Store, version_ref: str, env: str) -> bool:
    """Would ``gate`` evaluate the baseline before it decides (minutes, calling its model),
    or decide from stored evals at once? An unknown version or environment raises here."""
    facts = _gather(store, version_ref, env)
    if facts.baseline is None or facts.suite_id is None or facts.cand_eval is None:
        return False
    with store.read() as conn:
        return EvalRepo(conn).latest(facts.baseline.version_id, facts.suite_id) is None


def _gather(store: Store, version_ref: str, env: str) -> _Facts:
    with store.read() as conn:
        version = find_version(conn, version_ref)
        wf = WorkflowRepo(conn).get(version.workflow)
        check_env(wf, env)
        suite_id = SuiteRepo(conn).current_id(wf.name)
        current = EnvironmentRepo(conn).current(wf.name, env)
        baseline = None
        if current is not None and current[0] != version.version_id:
            baseline = find_version(conn, current[0])
        return _Facts(
            version=version,
            wf=wf,
            env=env,
            policy=current_policy(conn, wf.name, env),
            suite_id=suite_id,
            current=current,
            baseline=baseline,
            cand_eval=EvalRepo(conn).latest(version.version_id, suite_id) if suite_id else None,
            approvals=Owners.of(wf.owners).counted(  # as promote counts them
                [Approval(a, r) for a, r in ApprovalRepo(conn).list(version.version_id, env)],
                version.owner,
            ),
        )


def _measure(store: Store, facts: _Facts, *, who: str, progress: Progress | None) -> _Measured:
    """The candidate's intervals and, against a baseline, the paired comparisons.

    The baseline is evaluated on the suite first if it never was (its cached outputs make
    that free the second time); both versions' pins are checked before anything runs.
    """
    version, baseline, suite_id, cand_eval = (
        facts.version,
        facts.baseline,
        facts.suite_id,
        facts.cand_eval,
    )
    floors = dict(facts.policy.floors)
    short = version.version_id[:12]
    if suite_id is None:
        missing = (
            f"workflow '{facts.wf.name}' has no suite yet: run "
            f"`releasegate eval {short} --suite FILE`"
        )
        return _Measured(None, missing, None, floors)
    if cand_eval is None:
        missing = (
            f"{short} was not evaluated on the current suite "
            f"({suite_id[:12]}): run `releasegate eval {short} --suite FILE`"
        )
        return _Measured(None, missing, None, floors)
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
    metrics = {
        name: MetricEvidence(name, iv, base_intervals.get(name), comparisons.get(name))
        for name, iv in intervals.items()
    }
    s = cand_eval.summary
    evidence = Evidence(
        metrics=metrics,
        must_pass_total=int(s["must_pass"]["total"]),
        must_pass_failures=MustPassInfo.from_json(s["must_pass"]).failures,
        latency_p95_ms=float(s["latency_ms"]["p95"]),
        cost_per_case_usd=float(s["cost_usd"]["per_case"]),
        n_cases=int(s["cases"]) * epochs,
        n_errors=int(s["errors"]["count"]),
    )
    return _Measured(evidence, None, suite, floors)


def _report(
    facts: _Facts,
    measured: _Measured,
    decision: GateDecision,
    diff: ManifestDiff,
    need: ApprovalNeed,
) -> GateReport:
    version, baseline, suite, ev = (
        facts.version,
        facts.baseline,
        measured.suite,
        measured.evidence,
    )
    cand_eval = facts.cand_eval if ev is not None else None
    pin = pin_of(version.manifest.get("model") or {})
    return GateReport(
        decision_id=uuid.uuid4().hex,
        created_at=now(),
        workflow=facts.wf.name,
        env=facts.env,
        stakes=facts.wf.stakes,
        verdict=decision.verdict,
        reasons=decision.reasons,
        checks=decision.checks,
        version=VersionInfo(
            version.version_id,
            version.owner,
            version.reason,
            version.parent_id,
            version.track,
            version.created_at.isoformat(),
        ),
        baseline=None
        if baseline is None
        else BaselineInfo(baseline.version_id, baseline.owner, baseline.reason),
        suite=None if suite is None else SuiteInfo(suite.suite_id, suite.name, len(suite.cases)),
        evaluation=None
        if cand_eval is None
        else EvalInfo.from_json(
            {
                "eval_id": cand_eval.eval_id,
                "epochs": cand_eval.epochs,
                **eval_precision(cand_eval.summary),
            }
        ),
        policy=PolicyInfo(facts.policy.policy_id, facts.policy.content()),
        model=ModelInfo(pin.runtime, pin.name, pin.digest, pin.revision, pin.is_pinned),
        change=ChangeInfo(
            diff.change_class.value if diff.change_class else None,
            facts.current is None,
            tuple(sorted(c.value for c in diff.classes)),
            tuple(render_text_diff(diff)) if baseline is not None else (),
        ),
        metrics=tuple(
            MetricRow(m.name, m.candidate, m.baseline, m.comparison, measured.floors.get(m.name))
            for m in (ev.metrics.values() if ev is not None else ())
        ),
        must_pass=None
        if ev is None
        else MustPassInfo(ev.must_pass_total, tuple(ev.must_pass_failures)),
        budgets=None if ev is None else Budgets(ev.latency_p95_ms, ev.cost_per_case_usd),
        approvals=ApprovalsInfo(need, decision.approvals),
    )


def _record(
    store: Store, report: GateReport, decision: GateDecision, *, suite_id: str | None, who: str
) -> None:
    """The decision row (with its report) and its audit event, in one write transaction."""
    with store.write() as conn:
        DecisionRepo(conn).add(
            DecisionRecord(
                decision_id=report.decision_id,
                version_id=report.version_id,
                workflow=report.workflow,
                env=report.env,
                suite_id=suite_id or "",
                policy_id=report.policy.policy_id,
                baseline_id=report.baseline_id,
                verdict=decision.verdict.value,
                checks_passed=decision.checks_passed,
                change_class=report.change.change_class,
                report=report,
                created_at=report.created_at,
            ),
        )
        AuditRepo(conn).append(
            kind="gate.decided",
            actor=who,
            workflow=report.workflow,
            subject=report.version_id,
            payload={
                "env": report.env,
                "decision_id": report.decision_id,
                "verdict": decision.verdict.value,
                "checks_passed": decision.checks_passed,
                "suite_id": suite_id,
                "policy_id": report.policy.policy_id,
                "baseline_id": report.baseline_id,
                "change_class": report.change.change_class,
            },
        )
