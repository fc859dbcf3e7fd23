"""Suite plan: how many cases the policy's margin needs, read from a pilot eval.

The pilot is an eval already stored (``releasegate eval``); nothing here calls a model or
writes to the store. For each metric the policy gates with a non-inferiority margin, the
plan is ``domain.power.plan_suite`` on the pilot's per-case values: paired against the
baseline (what runs in the environment, or ``--baseline``) when that version has an eval
on the same suite, else against the candidate's own variance. The own-variance plan reads
the candidate's per-case spread as the spread of the paired differences, which is exact
when the two versions' per-case scores correlate at 0.5 (``var(d) = 2 var (1 - rho)``);
versions that agree more need fewer cases, so evaluate the baseline for a sharper plan.
Epoch advice comes from the same pilot: the per-epoch differences with a baseline that
ran at least two epochs too, else the candidate's own epochs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from releasegate.domain.policy import Policy
from releasegate.domain.power import (
    PASS_POWER,
    RARE_CASES,
    EpochAdvice,
    SuitePlan,
    decision_size,
    epochs_needed,
    operating_characteristics,
    plan_suite,
)
from releasegate.domain.results import Score
from releasegate.domain.stats import PairedComparison, paired_compare_aggregate
from releasegate.domain.suite import Suite
from releasegate.errors import InputError, PrerequisiteError
from releasegate.release.evaluate import (
    CaseTable,
    advice_dict,
    build_scorers,
    case_table,
    find_suite_version,
    read_suite,
)
from releasegate.release.gate import current_policy
from releasegate.release.refs import check_env, find_version
from releasegate.runner.engine import CaseRun
from releasegate.runner.scorers import failed_output
from releasegate.store.engine import Conn, Store
from releasegate.store.environments import EnvironmentRepo
from releasegate.store.evals import EvalRecord, EvalRepo, OutputRepo, ScoreRepo
from releasegate.store.versions import VersionRecord, VersionRepo
from releasegate.store.workflows import WorkflowRepo

CONFIDENCE = 0.95
AGGREGATE_RESAMPLES = 1_000


@dataclass(frozen=True)
class MetricPlan:
    """One gated metric: what the pilot shows and how many cases the margin needs.

    ``sd`` is the standard deviation of the per-case differences (paired) or of the
    candidate's per-case scores (own variance); None for a corpus metric (macro-F1).
    """

    metric: str
    margin: float
    n_pilot: int
    sd: float | None
    mde: float
    n_needed: int
    text: str
    advice: EpochAdvice | None = None
    advice_basis: str | None = None
    pass_if_equal: float | None = None
    """Chance an equal-quality candidate passes at ``n_needed`` cases."""
    pass_if_worse: float | None = None
    """Chance a candidate worse by the margin passes at ``n_needed`` cases."""

    @property
    def n_more(self) -> int:
        return max(0, self.n_needed - self.n_pilot)

    @property
    def verdict(self) -> str:
        return "enough" if self.n_more == 0 else f"add {self.n_more} cases"


@dataclass(frozen=True)
class PlanOutcome:
    version_id: str
    workflow: str
    suite_id: str
    suite_name: str
    env: str | None
    policy_id: str | None
    baseline_id: str | None
    basis: str
    """``paired`` (against the baseline's eval) or ``candidate`` (its own variance)."""
    pilot_eval_id: str
    baseline_eval_id: str | None
    epochs: int
    power: float
    clusters: int | None
    metrics: tuple[MetricPlan, ...]
    notes: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version_id": self.version_id,
            "workflow": self.workflow,
            "suite_id": self.suite_id,
            "suite": self.suite_name,
            "env": self.env,
            "policy_id": self.policy_id,
            "baseline_id": self.baseline_id,
            "basis": self.basis,
            "pilot_eval_id": self.pilot_eval_id,
            "baseline_eval_id": self.baseline_eval_id,
            "epochs": self.epochs,
            "confidence": CONFIDENCE,
            "power": self.power,
            "clusters": self.clusters,
            "metrics": [
                {
                    "metric": m.metric,
                    "margin": m.margin,
                    "pilot_n": m.n_pilot,
                    "sd": None if m.sd is None else round(m.sd, 6),
                    "mde": round(m.mde, 6),
                    "cases_needed": m.n_needed,
                    "add": m.n_more,
                    "verdict": m.verdict,
                    "text": m.text,
                    "epoch_advice": None if m.advice is None else advice_dict(m.advice),
                    "epoch_advice_basis": m.advice_basis,
                    "pass_if_equal": None if m.pass_if_equal is None else round(m.pass_if_equal, 4),
                    "pass_if_worse": None if m.pass_if_worse is None else round(m.pass_if_worse, 4),
                }
                for m in self.metrics
            ],
            "notes": list(self.notes),
        }


def plan(
    store: Store,
    version_ref: str,
    suite_path: Path,
    *,
    env: str | None = None,
    baseline_ref: str | None = None,
    margin: float | None = None,
    power: float = PASS_POWER,
    suite: Suite | None = None,
) -> PlanOutcome:
    """Cases each gated metric needs, from the version's latest eval on the suite file
    (``suite``: that file already parsed, e.g. sent to the server; ``suite_path`` then only
    names it in messages)."""
    if margin is not None and not 0.0 < margin < 1.0:
        raise InputError(f"must be more than 0 and less than 1, got {margin}", field="--margin")
    if not 0.0 < power < 1.0:
        raise InputError(f"must be more than 0 and less than 1, got {power}", field="--power")
    suite = suite or read_suite(suite_path)
    notes: list[str] = []
    with store.read() as conn:
        version = find_suite_version(conn, version_ref, suite, suite_path)
        policy = None
        baseline: VersionRecord | None = None
        if env is not None:
            wf = WorkflowRepo(conn).get(version.workflow)
            check_env(wf, env)
            policy = current_policy(conn, wf.name, env)
            current = EnvironmentRepo(conn).current(wf.name, env)
            if current is not None and current[0] != version.version_id:
                baseline = VersionRepo(conn).find(current[0])
        if baseline_ref is not None:
            baseline = _baseline(conn, baseline_ref, version)
        pilot = EvalRepo(conn).latest(version.version_id, suite.suite_id)
        base_eval: EvalRecord | None = None
        if baseline is not None:
            base_eval = EvalRepo(conn).latest(baseline.version_id, suite.suite_id)
    cand_gated = _gated(policy, margin, env)  # bad options fail before a missing pilot
    short = version.version_id[:12]
    if pilot is None:
        raise PrerequisiteError(
            f"{short} has no eval on suite '{suite.name}' ({suite.suite_id[:12]}) to plan from",
            hint=f"run `releasegate eval {short} --suite {suite_path}` first",
        )
    cand = stored_table(store, version, suite, pilot.epochs, suite_path)
    base: CaseTable | None = None
    if baseline is not None and base_eval is not None:
        base = stored_table(store, baseline, suite, base_eval.epochs, suite_path)
    elif baseline is not None:
        b = baseline.version_id[:12]
        notes.append(
            f"baseline {b} has no eval on this suite, so the plan uses the candidate's own "
            f"variance; run `releasegate eval {b} --suite {suite_path}` for a paired plan"
        )
    else:
        where = f"nothing else runs in {env}" if env is not None else "no --env or --baseline"
        notes.append(f"no baseline ({where}): the plan uses the candidate's own variance")

    # None: the policy gates nothing, so every metric is planned at --margin (then given)
    gated = cand_gated if cand_gated is not None else dict.fromkeys(cand.values, margin or 0.0)
    metrics: list[MetricPlan] = []
    for name, m in gated.items():
        if name not in cand.values:
            notes.append(f"the policy gates '{name}', which this suite does not measure")
            continue
        metrics.append(_plan_metric(name, m, cand, base, power))
    if not metrics:
        raise InputError(
            "none of the metrics the policy gates is measured by this suite",
            field="--margin",
            hint="give --margin to plan every metric the suite measures",
        )
    if pilot.epochs < 2:
        notes.append(
            f"the pilot ran 1 epoch: `releasegate eval {short} --suite {suite_path} --epochs 3` "
            "shows how many epochs the model's noise calls for"
        )
    n_clusters = suite.n_clusters
    if n_clusters is not None:
        notes.append(
            f"the {len(suite.cases)} cases form {n_clusters} clusters, and the paired "
            "comparison counts cases as independent: grow the suite with new clusters "
            "(new incidents), not more variants of existing ones"
        )
    return PlanOutcome(
        version_id=version.version_id,
        workflow=version.workflow,
        suite_id=suite.suite_id,
        suite_name=suite.name,
        env=env,
        policy_id=policy.policy_id if policy is not None else None,
        baseline_id=baseline.version_id if baseline is not None else None,
        basis="paired" if base is not None else "candidate",
        pilot_eval_id=pilot.eval_id,
        baseline_eval_id=base_eval.eval_id if base is not None and base_eval else None,
        epochs=pilot.epochs,
        power=power,
        clusters=n_clusters,
        metrics=tuple(metrics),
        notes=tuple(notes),
    )


def _baseline(conn: Conn, ref: str, version: VersionRecord) -> VersionRecord:
    found = find_version(conn, ref)
    if found.workflow != version.workflow:
        raise InputError(
            f"{found.version_id[:12]} is a version of '{found.workflow}', not of "
            f"'{version.workflow}'",
            field="--baseline",
        )
    if found.version_id == version.version_id:
        raise InputError("is the version being planned; name another one", field="--baseline")
    return found


def _gated(policy: Policy | None, margin: float | None, env: str | None) -> dict[str, float] | None:
    """Metric -> margin from the policy (``--margin`` overriding); None: every metric, at
    ``--margin`` (given when the policy gates nothing)."""
    if policy is not None and policy.regressions:
        return {r.metric: margin if margin is not None else r.margin for r in policy.regressions}
    if margin is not None:
        return None
    if env is None:
        raise InputError(
            "no margin to plan for",
            field="--margin",
            hint="give --env to read the margin from that environment's policy, or --margin",
        )
    raise InputError(
        f"the policy for {env} has no max_regression margin",
        field="--margin",
        hint="give --margin, e.g. --margin 0.02",
    )


def _plan_metric(
    name: str,
    margin: float,
    cand: CaseTable,
    base: CaseTable | None,
    power: float,
) -> MetricPlan:
    n = len(cand.cases)
    if name in cand.aggregates:
        comp = _aggregate_comparison(name, cand, base, power)
        size = decision_size(comp.se * np.sqrt(n), margin, pass_power=power, rare_cases=RARE_CASES)
        needed = max(n, size.n)
        at_zero = operating_characteristics(size.sd, needed, margin, 0.0, rare_cases=RARE_CASES)
        at_worse = operating_characteristics(
            size.sd, needed, margin, -margin, rare_cases=RARE_CASES
        )
        verdict = f"needs {needed} cases" if needed > n else f"is already met by {n} cases"
        text = (
            f"pilot of {n} cases (corpus metric, mde {comp.mde:.4g}): a margin of "
            f"{margin:.4g} {verdict}; at {needed} cases an equal-quality candidate passes "
            f"{at_zero.passes:.0%} of the time, one worse by {margin:.3g} passes "
            f"{at_worse.passes:.1%}"
        )
        return MetricPlan(
            name,
            margin,
            n,
            None,
            comp.mde,
            needed,
            text,
            pass_if_equal=at_zero.passes,
            pass_if_worse=at_worse.passes,
        )
    cand_values = cand.values[name]
    paired = base is not None and name in base.values
    base_values = base.values[name] if base is not None and paired else np.zeros_like(cand_values)
    sp: SuitePlan = plan_suite(
        cand_values, base_values, margin=margin, confidence=CONFIDENCE, power=power
    )
    advice, basis = _advice(name, margin, cand, base if paired else None)
    text = sp.text
    if not paired:  # plan_suite's wording is about differences; here they are the scores
        met = (
            f"needs {sp.n_needed} cases"
            if sp.n_needed > n
            else f"is already met by {n} cases or fewer (the plan never goes below the pilot)"
        )
        text = (
            f"pilot of {n} cases (sd of scores {sp.sd_diff:.4g}, mde {sp.mde_pilot:.4g}): "
            f"a margin of {margin:.4g} {met}; " + sp.text.split("; ", 1)[1]
        )
    return MetricPlan(
        name,
        margin,
        n,
        sp.sd_diff,
        sp.mde_pilot,
        sp.n_needed,
        text,
        advice,
        basis,
        pass_if_equal=sp.pass_if_equal,
        pass_if_worse=sp.pass_if_worse,
    )


def _aggregate_comparison(
    name: str, cand: CaseTable, base: CaseTable | None, power: float
) -> PairedComparison:
    cand_fn = cand.aggregates[name]
    base_fn = base.aggregates.get(name) if base is not None else None

    def both(idx: npt.NDArray[np.intp], which: str) -> float:
        if which == "candidate":
            return float(cand_fn(idx))
        return float(base_fn(idx)) if base_fn is not None else 0.0

    return paired_compare_aggregate(
        both, len(cand.cases), confidence=CONFIDENCE, power=power, resamples=AGGREGATE_RESAMPLES
    )


def _advice(
    name: str, margin: float, cand: CaseTable, base: CaseTable | None
) -> tuple[EpochAdvice | None, str | None]:
    """Epochs the noise calls for: on per-epoch differences when both ran 2+ epochs."""
    c = cand.matrices.get(name)
    if c is None or c.shape[0] < 2:
        return None, None
    b = base.matrices.get(name) if base is not None else None
    if b is not None and min(c.shape[1], b.shape[1]) >= 2:
        k = min(c.shape[1], b.shape[1])
        return epochs_needed(c[:, :k] - b[:, :k], margin=margin), "differences"
    if c.shape[1] >= 2:
        return epochs_needed(c, margin=margin), "candidate"
    return None, None


def stored_table(
    store: Store, version: VersionRecord, suite: Suite, epochs: int, suite_path: Path
) -> CaseTable:
    """The per-case table of a stored eval, from cached outputs and scores: no model call.

    An errored output scores 0 on every scorer, as in the eval (``failed_output``). A score
    missing from the cache (a scorer added since) is computed from the stored output when
    the scorer is a rule; a judge's verdict is a model call, so its absence is an error
    that asks for the eval, which caches it.
    """
    scorers = build_scorers(suite)
    with store.read() as conn:
        outputs = OutputRepo(conn).get_many(version.version_id, {c.case_hash for c in suite.cases})
        scores = ScoreRepo(conn).get_many(version.version_id)
    short = version.version_id[:12]
    rerun = f"run `releasegate eval {short} --suite {suite_path} --epochs {epochs}`"
    runs: list[CaseRun] = []
    for case in suite.cases:
        for epoch in range(epochs):
            out = outputs.get((case.case_hash, epoch))
            if out is None:
                raise PrerequisiteError(
                    f"{short} has no stored output for case '{case.case_id}' epoch {epoch}",
                    hint=rerun,
                )
            by_name: dict[str, Score] = {}
            for scorer_id, scorer in scorers:
                cached = scores.get((case.case_hash, epoch, scorer_id))
                if (failed := failed_output(out)) is not None:
                    by_name[scorer.name] = failed
                elif cached is not None:
                    by_name[scorer.name] = cached
                elif hasattr(scorer, "ascore"):  # a judge: the engine awaits its model call
                    raise PrerequisiteError(
                        f"{short} has no cached '{scorer.name}' verdict for case "
                        f"'{case.case_id}' epoch {epoch}, and a plan calls no model",
                        hint=f"{rerun}: it asks the judge only for the missing verdicts",
                    )
                else:
                    by_name[scorer.name] = scorer.score(case, out)
            runs.append(CaseRun(case, epoch, out, by_name, cached=True))
    return case_table(suite, [s for _, s in scorers], runs, epochs)
