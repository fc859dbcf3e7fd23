"""The gate's rules: fail beats hold beats needs-approval beats pass, with reasons in words.

Evidence is built directly from ``Interval`` and ``PairedComparison`` values, so
each rule is exercised at its boundary without running an eval.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import pytest

from releasegate.domain.decision import (
    Approval,
    Evidence,
    GateDecision,
    MetricEvidence,
    MustPassFailure,
    Status,
    Verdict,
    decide_gate,
)
from releasegate.domain.policy import ApprovalNeed, Policy, Regression
from releasegate.domain.scoretest import paired_score_z
from releasegate.domain.stats import Interval, PairedComparison

POLICY = Policy(
    workflow="support-triage",
    env="production",
    floors={"accuracy": 0.8},
    regressions=(Regression("accuracy", 0.02),),
    latency_p95_ms=1000.0,
    cost_per_case_usd=0.01,
)
NO_APPROVALS = ApprovalNeed(named=0, business=False)
NAMED_AND_BUSINESS = ApprovalNeed(named=1, business=True)


def interval(estimate: float, low: float | None = None, high: float | None = None) -> Interval:
    low = estimate - 0.03 if low is None else low
    high = estimate + 0.03 if high is None else high
    return Interval(estimate=estimate, low=low, high=high, se=0.015, n=400, method="wilson")


def comparison(
    delta: float, low: float, high: float, *, mde: float = 0.015, n: int = 400
) -> PairedComparison:
    return PairedComparison(
        delta=delta,
        low=low,
        high=high,
        se=mde / 2.8,
        mde=mde,
        n=n,
        method="mcnemar",
        p_value=0.5,
        worse=5,
        better=5,
    )


STEADY = comparison(0.0, -0.01, 0.01)


def evidence(
    accuracy: float = 0.9,
    compared: PairedComparison | None = STEADY,
    *,
    failures: Sequence[str] = (),
    must_pass_total: int = 3,
    **changes: Any,
) -> Evidence:
    metrics = {
        "accuracy": MetricEvidence("accuracy", interval(accuracy), interval(0.9), compared),
    }
    ev = Evidence(
        metrics=metrics,
        must_pass_total=must_pass_total,
        must_pass_failures=tuple(
            MustPassFailure(case_id, "input", "expected", "output", "wrong label")
            for case_id in failures
        ),
        latency_p95_ms=640.0,
        cost_per_case_usd=0.004,
        n_cases=400,
    )
    return dataclasses.replace(ev, **changes)


def decide(
    ev: Evidence | None = None,
    *,
    policy: Policy = POLICY,
    floors: dict[str, float] | None = None,
    has_baseline: bool = True,
    need: ApprovalNeed = NO_APPROVALS,
    approvals: Sequence[Approval] = (),
    missing_evidence: str | None = None,
    no_evidence: bool = False,
) -> GateDecision:
    return decide_gate(
        policy=policy,
        floors=dict(policy.floors) if floors is None else floors,
        evidence=None if no_evidence else (ev or evidence()),
        has_baseline=has_baseline,
        need=need,
        approvals=approvals,
        missing_evidence=missing_evidence,
    )


def check(decision: GateDecision, name: str) -> tuple[Status, str]:
    found = [c for c in decision.checks if c.name == name]
    assert len(found) == 1, [c.name for c in decision.checks]
    return found[0].status, found[0].detail


def test_clean_evidence_passes_and_lists_every_check() -> None:
    decision = decide()
    assert decision.verdict is Verdict.PASS
    assert decision.passed and decision.checks_passed
    assert decision.reasons == ("every check passed",)
    assert [(c.name, c.status) for c in decision.checks] == [
        ("must-pass", Status.OK),
        ("floor accuracy", Status.OK),
        ("regression accuracy", Status.OK),
        ("budget latency p95", Status.OK),
        ("budget cost per case", Status.OK),
        ("approvals", Status.INFO),
    ]
    assert check(decision, "must-pass")[1] == "all 3 must-pass cases passed"
    assert check(decision, "floor accuracy")[1] == "0.900 [0.870, 0.930] >= floor 0.800"
    assert check(decision, "regression accuracy")[1] == (
        "delta +0.000 [-0.010, +0.010] (mcnemar, n=400): non-inferiority within 0.020 shown "
        "(lower bound -0.010 >= -0.020, score z 1.99 at -0.020, one-sided 2.5%)"
    )
    assert check(decision, "approvals") == (Status.INFO, "none required by the policy")


# -- failures ------------------------------------------------------------------------------


def test_a_must_pass_failure_fails_the_gate() -> None:
    decision = decide(evidence(failures=["lost-card"]))
    assert decision.verdict is Verdict.FAIL
    assert not decision.passed and not decision.checks_passed
    assert decision.reasons == ("must-pass: 1 of 3 must-pass cases failed: lost-card",)


def test_many_must_pass_failures_are_summarised() -> None:
    ids = [f"c{i}" for i in range(11)]
    decision = decide(evidence(failures=ids, must_pass_total=20))
    assert check(decision, "must-pass") == (
        Status.FAIL,
        "11 of 20 must-pass cases failed: c0, c1, c2, c3, c4, c5, c6, c7 and 3 more",
    )


def test_must_pass_off_in_the_policy_ignores_must_pass_failures() -> None:
    policy = dataclasses.replace(POLICY, must_pass=False)
    decision = decide(evidence(failures=["lost-card"]), policy=policy)
    assert decision.verdict is Verdict.PASS
    assert "must-pass" not in [c.name for c in decision.checks]


def test_a_metric_below_its_floor_fails() -> None:
    decision = decide(evidence(accuracy=0.79))
    assert decision.verdict is Verdict.FAIL
    assert decision.reasons == ("floor accuracy: 0.790 [0.760, 0.820] < floor 0.800",)


def test_a_metric_exactly_at_its_floor_passes() -> None:
    assert decide(evidence(accuracy=0.8)).verdict is Verdict.PASS


def test_a_floor_for_a_metric_the_suite_lacks_fails() -> None:
    decision = decide(floors={"accuracy": 0.8, "macro_f1": 0.7})
    assert decision.verdict is Verdict.FAIL
    assert decision.reasons == (
        "floor macro_f1: the suite has no metric 'macro_f1' (policy production)",
    )


def test_a_regression_beyond_the_margin_fails() -> None:
    decision = decide(evidence(compared=comparison(-0.05, -0.08, -0.02)))
    assert decision.verdict is Verdict.FAIL
    assert decision.reasons == (
        "regression accuracy: delta -0.050 [-0.080, -0.020] (mcnemar, n=400): "
        "regression shown (upper bound -0.020 < 0, one-sided 2.5%)",
    )


def test_a_clear_regression_fails_even_on_a_small_suite() -> None:
    compared = comparison(-0.2, -0.35, -0.05, mde=0.3, n=30)
    decision = decide(evidence(compared=compared))
    assert decision.verdict is Verdict.FAIL
    assert "regression shown (upper bound -0.050 < 0" in decision.reasons[0]


def test_a_point_estimate_beyond_the_margin_is_not_a_shown_regression() -> None:
    # the estimate is worse than the margin, but the interval reaches above 0: hold, not fail
    decision = decide(evidence(compared=comparison(-0.03, -0.07, 0.01, mde=0.05, n=100)))
    assert decision.verdict is Verdict.HOLD
    assert "neither shown" in decision.reasons[0]


def test_a_significant_regression_within_the_margin_still_passes() -> None:
    # non-inferiority within the margin is what the policy asks for; it is shown
    decision = decide(evidence(compared=comparison(-0.01, -0.015, -0.005, mde=0.005)))
    assert decision.verdict is Verdict.PASS


def test_a_comparison_that_shows_neither_holds() -> None:
    decision = decide(evidence(compared=comparison(-0.01, -0.03, 0.01, mde=0.015)))
    assert decision.verdict is Verdict.HOLD
    assert decision.reasons[0].startswith(
        "regression accuracy: delta -0.010 [-0.030, +0.010] (mcnemar, n=400): neither shown: "
        "non-inferiority within 0.020 needs the lower bound >= -0.020, a regression needs the "
        "upper bound < 0; 400 cases should suffice for an equal-quality candidate"
    )


def test_a_regression_within_the_margin_passes() -> None:
    decision = decide(evidence(compared=comparison(-0.01, -0.019, 0.0, mde=0.015)))
    assert decision.verdict is Verdict.PASS


@pytest.mark.parametrize(
    ("latency", "cost", "expected"),
    [
        (1200.0, 0.004, "budget latency p95: 1200.0 ms > 1000.0 ms"),
        (640.0, 0.0125, "budget cost per case: $0.012500 > $0.010000"),
    ],
)
def test_a_blown_budget_fails(latency: float, cost: float, expected: str) -> None:
    decision = decide(evidence(latency_p95_ms=latency, cost_per_case_usd=cost))
    assert decision.verdict is Verdict.FAIL
    assert decision.reasons == (expected,)


def test_budgets_are_inclusive_and_optional() -> None:
    at_limit = decide(evidence(latency_p95_ms=1000.0, cost_per_case_usd=0.01))
    assert at_limit.verdict is Verdict.PASS
    assert check(at_limit, "budget latency p95") == (Status.OK, "1000.0 ms <= 1000.0 ms")
    no_budgets = dataclasses.replace(POLICY, latency_p95_ms=None, cost_per_case_usd=None)
    decision = decide(evidence(latency_p95_ms=10_000.0, cost_per_case_usd=1.0), policy=no_budgets)
    assert decision.verdict is Verdict.PASS
    assert not [c for c in decision.checks if c.name.startswith("budget")]


def test_every_failed_check_is_a_reason() -> None:
    decision = decide(evidence(accuracy=0.5, failures=["lost-card"], latency_p95_ms=2000.0))
    assert decision.verdict is Verdict.FAIL
    assert [r.split(":")[0] for r in decision.reasons] == [
        "must-pass",
        "floor accuracy",
        "budget latency p95",
    ]


# -- holds ---------------------------------------------------------------------------------


def test_an_inconclusive_comparison_holds_and_says_how_many_cases_are_needed() -> None:
    compared = comparison(-0.01, -0.09, 0.07, mde=0.1, n=50)  # sd = 0.1 / 2.8 * sqrt(50)
    decision = decide(
        evidence(compared=compared),
        policy=dataclasses.replace(POLICY, regressions=(Regression("accuracy", 0.025),)),
    )
    assert decision.verdict is Verdict.HOLD
    assert not decision.passed and not decision.checks_passed
    assert decision.reasons == (
        "regression accuracy: delta -0.010 [-0.090, +0.070] (mcnemar, n=50): neither shown: "
        "non-inferiority within 0.025 needs the lower bound >= -0.025, a regression needs the "
        "upper bound < 0; about 1112 cases needed: at 1112 cases an equal-quality candidate "
        "passes 90% of the time and one worse by 0.025 passes 2.2% (sd of differences 0.253)",
    )  # pass/fail counts: the size pays the score test's half-case continuity correction
    # (1073 cases without it, where an equal candidate passed just under 90%)


def test_a_wide_interval_above_minus_the_margin_passes() -> None:
    decision = decide(evidence(compared=comparison(0.05, 0.0, 0.1, mde=0.05, n=100)))
    assert decision.verdict is Verdict.PASS


def test_a_better_candidate_on_a_small_suite_holds_never_fails() -> None:
    decision = decide(evidence(compared=comparison(0.02, -0.1, 0.14, mde=0.17, n=40)))
    assert decision.verdict is Verdict.HOLD


def test_significantly_better_on_a_small_suite_passes() -> None:
    decision = decide(evidence(compared=comparison(0.12, 0.02, 0.22, mde=0.1, n=50)))
    assert decision.verdict is Verdict.PASS
    assert check(decision, "regression accuracy") == (
        Status.OK,
        "delta +0.120 [+0.020, +0.220] (mcnemar, n=50): non-inferiority within 0.020 shown "
        "(lower bound +0.020 >= -0.020, one-sided 2.5%)",
    )


def test_no_evidence_holds_with_the_reason_given() -> None:
    decision = decide(no_evidence=True, missing_evidence="not evaluated on the current suite")
    assert decision.verdict is Verdict.HOLD
    assert decision.reasons == ("evaluation: not evaluated on the current suite",)
    assert decide(no_evidence=True).reasons == ("evaluation: no evaluation",)


def test_a_missing_comparison_against_an_existing_baseline_holds() -> None:
    decision = decide(evidence(compared=None))
    assert decision.verdict is Verdict.HOLD
    assert decision.reasons == (
        "regression accuracy: no paired comparison for 'accuracy' against the baseline",
    )


def test_without_a_baseline_regression_is_information_not_a_failure() -> None:
    decision = decide(evidence(compared=None), has_baseline=False)
    assert decision.verdict is Verdict.PASS
    assert check(decision, "regression accuracy") == (
        Status.INFO,
        "no baseline: nothing else runs in this environment yet",
    )


def test_fail_wins_over_hold() -> None:
    decision = decide(evidence(accuracy=0.5, compared=None))
    assert decision.verdict is Verdict.FAIL
    assert decision.reasons == ("floor accuracy: 0.500 [0.470, 0.530] < floor 0.800",)


def test_errored_case_runs_are_reported_without_deciding() -> None:
    decision = decide(evidence(n_errors=3))
    assert decision.verdict is Verdict.PASS
    assert check(decision, "errors") == (
        Status.INFO,
        "3 of 400 case runs errored and count as failures",
    )


# -- approvals -----------------------------------------------------------------------------


def test_missing_approvals_need_approval_when_every_check_is_ok() -> None:
    decision = decide(need=NAMED_AND_BUSINESS)
    assert decision.verdict is Verdict.NEEDS_APPROVAL
    assert not decision.passed
    assert decision.checks_passed
    assert decision.reasons == (
        "missing 1 more named approver(s)",
        "missing the business approver",
    )
    assert check(decision, "approvals") == (
        Status.HOLD,
        "needs 1 named approver(s) and the business approver; given: none yet",
    )


def test_fail_wins_over_needs_approval() -> None:
    decision = decide(evidence(accuracy=0.5), need=NAMED_AND_BUSINESS)
    assert decision.verdict is Verdict.FAIL
    assert decision.reasons == ("floor accuracy: 0.500 [0.470, 0.530] < floor 0.800",)


def test_hold_wins_over_needs_approval() -> None:
    decision = decide(no_evidence=True, need=NAMED_AND_BUSINESS)
    assert decision.verdict is Verdict.HOLD
    assert not decision.checks_passed
    assert decision.reasons == ("evaluation: no evaluation",)


@pytest.mark.parametrize(
    "approvals",
    [
        pytest.param([Approval("cho", "approver"), Approval("dee", "business")], id="two people"),
        pytest.param([Approval("cho", "approver,business")], id="one person, both roles"),
    ],
)
def test_given_approvals_satisfy_the_need(approvals: list[Approval]) -> None:
    decision = decide(need=NAMED_AND_BUSINESS, approvals=approvals)
    assert decision.verdict is Verdict.PASS
    assert decision.passed
    status, detail = check(decision, "approvals")
    assert status is Status.OK
    assert detail.endswith("given: " + ", ".join(f"{a.approver} ({a.role})" for a in approvals))


def test_a_business_approval_alone_is_not_a_named_approval() -> None:
    decision = decide(need=NAMED_AND_BUSINESS, approvals=[Approval("dee", "business")])
    assert decision.verdict is Verdict.NEEDS_APPROVAL
    assert decision.reasons == ("missing 1 more named approver(s)",)


def test_a_named_approval_alone_lacks_the_business_approver() -> None:
    decision = decide(need=NAMED_AND_BUSINESS, approvals=[Approval("cho", "approver")])
    assert decision.verdict is Verdict.NEEDS_APPROVAL
    assert decision.reasons == ("missing the business approver",)


def test_two_approvals_by_the_same_person_count_once() -> None:
    need = ApprovalNeed(named=2, business=False)
    same = [Approval("cho", "approver"), Approval("cho", "approver")]
    assert decide(need=need, approvals=same).reasons == ("missing 1 more named approver(s)",)
    two = [Approval("cho", "approver"), Approval("eve", "approver")]
    assert decide(need=need, approvals=two).verdict is Verdict.PASS


def test_a_zero_margin_still_gives_a_decision() -> None:
    policy = dataclasses.replace(POLICY, regressions=(Regression("accuracy", 0.0),))
    decision = decide(
        evidence(compared=comparison(0.0, -0.05, 0.05, mde=0.07, n=200)), policy=policy
    )
    assert decision.verdict in (Verdict.HOLD, Verdict.FAIL)


def test_pass_fail_data_use_the_score_test_at_the_margin() -> None:
    # 30 worse and 22 better of 400: the comparison's bound clears -0.04, but the score
    # test at delta0 = -0.04 (variance read at the hypothesis) gives z 1.09 < 1.96
    compared = dataclasses.replace(
        comparison(-0.02, -0.0383, -0.0017), worse=30, better=22, se=0.0093
    )
    policy = dataclasses.replace(POLICY, regressions=(Regression("accuracy", 0.04),))
    decision = decide(evidence(compared=compared), policy=policy)
    assert decision.verdict is Verdict.HOLD
    assert paired_score_z(30, 22, 400, -0.04) < 1.96


def test_paired_score_z_is_mcnemar_at_zero_and_zero_at_the_estimate() -> None:
    assert paired_score_z(10, 20, 100, 0.0) == pytest.approx(10 / math.sqrt(30))
    assert paired_score_z(30, 10, 400, -0.05) == pytest.approx(0.0)
    assert paired_score_z(0, 0, 100, -0.05) > 0
