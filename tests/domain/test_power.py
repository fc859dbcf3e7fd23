from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from releasegate.domain.calibration import exact_binary_rates
from releasegate.domain.power import (
    MAX_RECOMMENDED_EPOCHS,
    PASS_POWER,
    RARE_CASES,
    EpochAdvice,
    SuitePlan,
    clustered_mean_interval,
    decision_size,
    epochs_needed,
    flaky_cases,
    metric_interval,
    operating_characteristics,
    plan_suite,
    wilson_rate_interval,
)
from releasegate.domain.stats import (
    CONTINUITY,
    is_binary,
    minimum_detectable_effect,
    paired_compare,
    wilson_interval,
)

finite = st.floats(min_value=-100, max_value=100, allow_nan=False, allow_infinity=False)


# -- clustered_mean_interval ---------------------------------------------------------------


def test_clustered_se_matches_hand_computation() -> None:
    # mean 3.5; residuals -2.5 -1.5 | -0.5 0.5 | 1.5 2.5; cluster sums -4, 0, 4 -> 32.
    # V = G/(G-1) * 32 / n**2 = 3/2 * 32/36 = 4/3; t(0.975, df=2) = 4.302652729911275.
    iv = clustered_mean_interval([1, 2, 3, 4, 5, 6], ["a", "a", "b", "b", "c", "c"])
    se = math.sqrt(4.0 / 3.0)
    half = 4.302652729911275 * se
    assert iv.method == "clustered"
    assert iv.n == 6
    assert iv.estimate == pytest.approx(3.5)
    assert iv.se == pytest.approx(se)
    assert iv.low == pytest.approx(3.5 - half)
    assert iv.high == pytest.approx(3.5 + half)
    naive = math.sqrt(3.5 / 6)  # std(ddof=1)**2 = 17.5 / 5
    assert iv.se > naive


def test_cluster_labels_need_not_be_contiguous_or_strings() -> None:
    a = clustered_mean_interval([1, 2, 3, 4, 5, 6], ["a", "a", "b", "b", "c", "c"])
    b = clustered_mean_interval([5, 1, 3, 6, 2, 4], [3, 1, 2, 3, 1, 2])
    assert (a.estimate, a.se, a.low, a.high) == pytest.approx((b.estimate, b.se, b.low, b.high))


@settings(max_examples=60, deadline=None)
@given(st.lists(finite, min_size=2, max_size=40))
def test_singleton_clusters_equal_the_ordinary_t_interval(xs: list[float]) -> None:
    x = np.array(xs)
    iv = clustered_mean_interval(x, list(range(x.size)))
    se = float(x.std(ddof=1)) / math.sqrt(x.size)
    assert iv.se == pytest.approx(se, rel=1e-9, abs=1e-12)
    half = scipy_stats.t.ppf(0.975, x.size - 1) * se
    assert iv.low == pytest.approx(x.mean() - half, rel=1e-9, abs=1e-9)
    assert iv.high == pytest.approx(x.mean() + half, rel=1e-9, abs=1e-9)


def test_clustered_is_wider_than_naive_when_clusters_move_together() -> None:
    rng = np.random.default_rng(7)
    groups, size = 12, 8
    effects = rng.normal(0.0, 1.0, groups)  # strong shared effect per incident
    values = np.repeat(effects, size) + rng.normal(0.0, 0.2, groups * size)
    clusters = np.repeat(np.arange(groups), size).tolist()
    naive = float(values.std(ddof=1)) / math.sqrt(values.size)
    iv = clustered_mean_interval(values, clusters)
    assert iv.se > 2.0 * naive  # design effect ~ 1 + 7 * 0.96: se about 2.7x
    assert iv.high - iv.low > 2.0 * (2 * 1.96 * naive)


def test_clustered_degenerate_inputs() -> None:
    empty = clustered_mean_interval([], [])
    assert empty.n == 0 and math.isnan(empty.estimate)
    one = clustered_mean_interval([0.2, 0.4], ["x", "x"])
    assert one.estimate == pytest.approx(0.3)
    assert math.isnan(one.se) and math.isnan(one.low) and math.isnan(one.high)
    with pytest.raises(ValueError, match="labels"):
        clustered_mean_interval([1.0, 2.0], ["a"])
    with pytest.raises(ValueError, match="NaN"):
        clustered_mean_interval([1.0, math.nan], ["a", "b"])
    with pytest.raises(ValueError, match="confidence"):
        clustered_mean_interval([1.0, 2.0], ["a", "b"], confidence=1.0)


# -- epochs_needed -------------------------------------------------------------------------


def test_deterministic_model_needs_one_epoch() -> None:
    case_scores = np.array([0.0, 1.0, 1.0, 0.5, 0.25])
    matrix = np.tile(case_scores[:, np.newaxis], (1, 4))
    advice = epochs_needed(matrix)
    assert isinstance(advice, EpochAdvice)
    assert advice.epochs == 1
    assert advice.within_var == 0.0
    assert advice.between_var == pytest.approx(float(np.var(case_scores, ddof=1)))
    assert advice.se_now == pytest.approx(advice.se_floor)
    assert advice.text.startswith("run 1 epoch ")


def test_variance_components_match_anova_by_hand() -> None:
    # case means 1, 3, 5; within = (1 + 1 + 0 + 0 + 4 + 4) / (3 * 1) = 10 / 3
    # between = var([1, 3, 5], ddof=1) - within / 2 = 4 - 5/3 = 7/3
    matrix = [[0.0, 2.0], [3.0, 3.0], [3.0, 7.0]]
    advice = epochs_needed(matrix)
    assert advice.within_var == pytest.approx(10 / 3)
    assert advice.between_var == pytest.approx(7 / 3)
    # first k with within / k <= 0.1 * between: k >= 10 * (10/3) / (7/3) = 14.3 -> capped
    assert advice.epochs == MAX_RECOMMENDED_EPOCHS
    assert advice.se_now == pytest.approx(math.sqrt((7 / 3 + 10 / 6) / 3))


def test_noisy_matrix_needs_more_epochs_than_quiet_one() -> None:
    rng = np.random.default_rng(3)
    difficulty = rng.normal(0.0, 1.0, 200)[:, np.newaxis]
    quiet = epochs_needed(difficulty + rng.normal(0.0, 0.1, (200, 5)))
    noisy = epochs_needed(difficulty + rng.normal(0.0, 0.8, (200, 5)))
    assert quiet.epochs == 1  # within 0.01 <= 0.1 * between 1
    assert 5 <= noisy.epochs <= 8  # 10 * 0.64 / 1 = 6.4 give or take sampling
    assert noisy.within_var == pytest.approx(0.64, rel=0.15)
    assert noisy.between_var == pytest.approx(1.0, rel=0.25)
    assert noisy.se_recommended < noisy.se_now * 1.2
    assert noisy.se_floor <= noisy.se_recommended <= math.sqrt(1.1) * noisy.se_floor + 1e-12


def test_pure_epoch_noise_is_capped() -> None:
    rng = np.random.default_rng(5)
    advice = epochs_needed(rng.normal(0.0, 1.0, (50, 4)))  # no case-to-case spread at all
    assert advice.epochs == MAX_RECOMMENDED_EPOCHS
    assert "more cases" in advice.text


def test_target_se_lowers_epochs_or_asks_for_cases() -> None:
    matrix = [[0.0, 2.0], [3.0, 3.0], [3.0, 7.0]]  # within 10/3, between 7/3, n 3
    generous = epochs_needed(matrix, target_se=10.0)
    assert generous.epochs == 1
    assert generous.se_recommended <= 10.0
    strict = epochs_needed(matrix, target_se=0.1)
    assert strict.epochs == MAX_RECOMMENDED_EPOCHS
    k = MAX_RECOMMENDED_EPOCHS
    assert strict.cases_for_target == math.ceil((7 / 3 + 10 / 3 / k) / 0.01)
    assert "cases" in strict.text
    via_margin = epochs_needed(matrix, margin=0.1)
    assert via_margin.target_se == pytest.approx(0.1 / minimum_detectable_effect(1.0))


def test_epochs_needed_errors_are_counted_out() -> None:
    with_nan = epochs_needed([[0.0, 2.0, math.nan], [3.0, 3.0, 3.0], [3.0, 7.0, math.nan]])
    assert with_nan.within_var == pytest.approx(10 / 4)  # dof 1 + 2 + 1
    with pytest.raises(ValueError, match="2 epochs"):
        epochs_needed([[1.0], [0.0]])
    with pytest.raises(ValueError, match="2 cases"):
        epochs_needed([[1.0, 0.0]])
    with pytest.raises(ValueError, match="target_se"):
        epochs_needed([[1.0, 0.0], [1.0, 1.0]], target_se=0.0)


@settings(max_examples=50, deadline=None)
@given(st.lists(finite, min_size=2, max_size=30), st.integers(2, 6))
def test_identical_epochs_always_recommend_one(xs: list[float], k: int) -> None:
    matrix = np.tile(np.array(xs)[:, np.newaxis], (1, k))
    assert epochs_needed(matrix).epochs == 1


# -- flaky_cases ---------------------------------------------------------------------------


def test_flaky_cases_in_suite_order() -> None:
    matrix = [
        [1.0, 1.0, 1.0],
        [1.0, 0.0, 1.0],
        [0.0, 0.0, 0.0],
        [0.0, math.nan, 0.0],
        [math.nan, math.nan, math.nan],
        [0.5, 0.5, 0.75],
    ]
    ids = ["steady", "flips", "fails", "errored", "all-errored", "partial"]
    assert flaky_cases(matrix, ids) == ["flips", "errored", "partial"]
    assert flaky_cases(np.ones((3, 1)), ["a", "b", "c"]) == []
    with pytest.raises(ValueError, match="case ids"):
        flaky_cases(matrix, ids[:2])


# -- plan_suite ----------------------------------------------------------------------------


def test_plan_suite_binary_pilot() -> None:
    n = 100
    cand = np.ones(n)
    base = np.ones(n)
    base[:6] = 0.0  # 6 better
    cand[6:10] = 0.0  # 4 worse
    plan = plan_suite(cand, base, margin=0.02, exact_sizes=False)
    assert isinstance(plan, SuitePlan)
    assert plan.n_pilot == n
    assert plan.discordance == pytest.approx(0.10)
    assert plan.delta == pytest.approx(0.02)
    assert plan.sd_diff == pytest.approx(math.sqrt(0.10 - 0.02**2))
    se = plan.sd_diff / math.sqrt(n)
    assert plan.mde_pilot == pytest.approx(minimum_detectable_effect(se, power=PASS_POWER))
    # the size pays the score test's continuity correction: mde(n) + 0.5 / n <= margin
    without = math.ceil(n * (plan.mde_pilot / 0.02) ** 2 - 1e-9)
    assert plan.n_needed > without
    at = plan.n_needed
    assert plan.mde_pilot * math.sqrt(n / at) + CONTINUITY / at <= 0.02
    assert plan.mde_pilot * math.sqrt(n / (at - 1)) + CONTINUITY / (at - 1) > 0.02
    assert plan.n_needed == paired_compare(cand, base, power=0.9).cases_needed(0.02)
    assert str(plan.n_needed) in plan.text
    assert plan.pass_if_equal == pytest.approx(0.9, abs=0.002)
    assert plan.pass_if_equal >= 0.9
    assert 0.02 < plan.pass_if_worse < 0.025  # the half case also pulls this under 2.5%
    assert "an equal-quality candidate passes 90% of the time" in plan.text
    assert plan.text.endswith("(normal approximation)")


def test_plan_suite_checks_a_binary_size_with_the_gates_exact_pass_rate() -> None:
    cand, base = np.ones(100), np.ones(100)
    base[:5] = 0.0  # 5 better, 5 worse: discordance 10%, delta 0, sd**2 0.1
    cand[5:10] = 0.0
    normal = plan_suite(cand, base, margin=0.05, exact_sizes=False)
    exact = plan_suite(cand, base, margin=0.05)
    (at_normal,) = exact_binary_rates(normal.n_needed, (0.05,), 0.05, 0.05)
    assert at_normal.passes < 0.9  # what the approximation promised as 90% is short
    assert exact.n_needed > normal.n_needed
    (equal,) = exact_binary_rates(exact.n_needed, (0.05,), 0.05, 0.05)
    (worse,) = exact_binary_rates(exact.n_needed, (0.05,), 0.075, 0.025)
    assert exact.pass_if_equal == pytest.approx(equal.passes) and equal.passes >= 0.9
    assert exact.pass_if_worse == pytest.approx(worse.passes) and worse.passes <= 0.025
    assert exact.text.endswith("(exact)") and str(exact.n_needed) in exact.text


def test_plan_suite_uses_the_floor_for_a_quiet_pilot() -> None:
    same = np.ones(20)
    plan = plan_suite(same, same, margin=0.05, exact_sizes=False)
    assert plan.discordance == 0.0 and plan.sd_diff == 0.0
    floor_mde = minimum_detectable_effect(math.sqrt(3.0) / 20, power=PASS_POWER)
    assert plan.mde_pilot == pytest.approx(floor_mde)
    at = plan.n_needed  # the smallest size where mde + the continuity half case fit the margin
    assert floor_mde * math.sqrt(20 / at) + CONTINUITY / at <= 0.05
    assert floor_mde * math.sqrt(20 / (at - 1)) + CONTINUITY / (at - 1) > 0.05


def test_plan_suite_never_below_pilot_and_rejects_bad_margin() -> None:
    rng = np.random.default_rng(1)
    base = rng.uniform(0, 1, 500)
    plan = plan_suite(base + 0.01, base, margin=0.5)
    assert plan.n_needed == 500
    assert plan.discordance is None
    assert "already met" in plan.text
    with pytest.raises(ValueError, match="margin"):
        plan_suite(base, base, margin=0.0)
    with pytest.raises(ValueError, match="cases"):
        plan_suite(base, base[:10], margin=0.1)


pilot = st.integers(2, 60).flatmap(
    lambda n: st.tuples(
        st.lists(st.sampled_from([0.0, 1.0]), min_size=n, max_size=n)
        | st.lists(st.floats(0, 1, allow_nan=False), min_size=n, max_size=n),
        st.lists(st.sampled_from([0.0, 1.0]), min_size=n, max_size=n)
        | st.lists(st.floats(0, 1, allow_nan=False), min_size=n, max_size=n),
    )
)


@settings(max_examples=80, deadline=None)
@given(pilot, st.floats(0.005, 0.5))
def test_plan_suite_agrees_with_cases_needed(
    pair: tuple[list[float], list[float]], margin: float
) -> None:
    cand, base = np.array(pair[0]), np.array(pair[1])
    plan = plan_suite(cand, base, margin=margin, exact_sizes=False)
    comparison = paired_compare(cand, base, resamples=10, power=PASS_POWER)
    if is_binary(cand) and is_binary(base):
        assert abs(plan.n_needed - comparison.cases_needed(margin)) <= 1  # ceil at float edges
    else:  # the gate's small-sample bound adds RARE_CASES / n**2 to the variance
        sd = comparison.se * math.sqrt(comparison.n)
        sized = decision_size(sd, margin, rare_cases=RARE_CASES).n
        assert plan.n_needed == max(plan.n_pilot, sized)
        assert plan.n_needed >= comparison.cases_needed(margin) - 1
    assert plan.mde_pilot == pytest.approx(comparison.mde)
    assert plan.n_needed >= plan.n_pilot


@settings(max_examples=40, deadline=None)
@given(pilot, st.floats(0.005, 0.2), st.floats(1.01, 4.0))
def test_plan_suite_shrinks_as_margin_grows(
    pair: tuple[list[float], list[float]], margin: float, factor: float
) -> None:
    cand, base = np.array(pair[0]), np.array(pair[1])
    tight = plan_suite(cand, base, margin=margin)
    loose = plan_suite(cand, base, margin=margin * factor)
    assert loose.n_needed <= tight.n_needed


def test_plan_suite_strictly_decreasing_over_margins() -> None:
    rng = np.random.default_rng(2)
    base = (rng.uniform(size=200) < 0.7).astype(float)
    cand = np.where(rng.uniform(size=200) < 0.15, 1.0 - base, base)
    sizes = [plan_suite(cand, base, margin=m).n_needed for m in (0.01, 0.02, 0.04)]
    assert sizes[0] > sizes[1] > sizes[2]


# -- metric_interval: which interval an eval reports ---------------------------------------

T11 = 2.200985160091639  # scipy.stats.t.ppf(0.975, 11)


def _twelve_incidents(failing: int) -> tuple[np.ndarray, list[str]]:
    """12 clusters of 4 cases; the first ``failing`` clusters fail every case."""
    values = np.repeat([0.0] * failing + [1.0] * (12 - failing), 4)
    return values, [f"incident-{i // 4}" for i in range(48)]


def test_clustered_rate_is_wider_than_wilson_and_names_its_clusters() -> None:
    values, clusters = _twelve_incidents(6)  # p 0.5; each cluster sum of residuals is +-2
    naive = metric_interval(values, is_rate=True)
    assert naive.method == "wilson"
    iv = metric_interval(values, clusters=clusters, is_rate=True)
    se = math.sqrt(12 / 11 * (12 * 2.0**2) / 48**2)
    assert iv.method == "clustered (12 clusters, CR1, t_11)"
    assert iv.n == 48
    assert iv.se == pytest.approx(se)
    assert (iv.low, iv.high) == pytest.approx((0.5 - T11 * se, 0.5 + T11 * se))
    assert iv.se > 2 * naive.se
    assert iv.high - iv.low > 2 * (naive.high - naive.low)


def test_clustered_rate_near_one_is_widened_to_wilson_on_the_clusters() -> None:
    everything = metric_interval(np.ones(48), clusters=_twelve_incidents(0)[1], is_rate=True)
    low, high = wilson_rate_interval(1.0, 12)
    assert (everything.low, everything.high) == pytest.approx((low, high))
    assert low == pytest.approx(0.7575, abs=1e-4)  # 12 independent passes, not 48
    assert everything.method == (
        "clustered (12 clusters, CR1, t_11), widened to Wilson on 12 clusters"
    )
    # 3 of 12 clusters fail: CR1 already wider than Wilson on 12, so no widening is claimed
    values, clusters = _twelve_incidents(3)
    iv = metric_interval(values, clusters=clusters, is_rate=True)
    se = math.sqrt(12 / 11 * (3 * 3.0**2 + 9 * 1.0**2) / 48**2)
    assert iv.method == "clustered (12 clusters, CR1, t_11)"
    assert iv.low == pytest.approx(0.75 - T11 * se)
    assert iv.high == 1.0  # 0.75 + 0.287 clipped: a rate cannot pass 1


def test_clustered_scores_are_not_clipped_or_widened() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    iv = metric_interval(values, clusters=["a", "a", "b", "b", "c", "c"])
    assert iv.method == "clustered (3 clusters, CR1, t_2)"
    assert iv.se == pytest.approx(math.sqrt(4.0 / 3.0))  # as in the hand computation above


def test_no_shared_cluster_means_no_clustering() -> None:
    values = np.array([1.0, 0.0, 1.0, 1.0])
    assert metric_interval(values, clusters=["a", "b", "c", "d"], is_rate=True).method == "wilson"
    one = metric_interval(values, clusters=["x"] * 4, is_rate=True)
    assert one.method == (
        "clustered (1 cluster: no spread between clusters to estimate), Wilson on 1 cluster"
    )
    assert (one.low, one.high) == pytest.approx(wilson_rate_interval(0.75, 1))
    with pytest.raises(ValueError, match="labels"):
        metric_interval(values, clusters=["a"])


def test_epoch_averaged_rate_gets_wilson_when_small_or_extreme() -> None:
    small = np.array([1.0, 0.5, 1.0, 1.0, 0.5, 1.0, 1.0, 1.0])  # n 8 < 30, mean 0.875
    iv = metric_interval(small, is_rate=True)
    assert iv.method == "wilson"
    assert (iv.low, iv.high) == pytest.approx(wilson_rate_interval(0.875, 8))
    assert iv.se == pytest.approx(math.sqrt(0.875 * 0.125 / 8))
    # the bootstrap would collapse here: the whole resampling range is [0.75, 1]
    assert metric_interval(small).method == "bootstrap"
    near_one = np.array([1.0] * 98 + [0.5, 0.5])  # n 100, failures worth 1 case < 5
    assert metric_interval(near_one, is_rate=True).method == "wilson"
    middle = np.tile([1.0, 0.5, 0.0, 0.5], 25)  # n 100, p 0.5: the bootstrap is fine
    assert metric_interval(middle, is_rate=True).method == "bootstrap"
    assert metric_interval(np.array([0.9, 0.95, 0.97])).method == "bootstrap"  # not a rate


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 60).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))))
def test_wilson_rate_interval_equals_wilson_on_whole_counts(pair: tuple[int, int]) -> None:
    n, successes = pair
    got = wilson_rate_interval(successes / n, n)
    assert got == pytest.approx(wilson_interval(successes, n), abs=1e-12)


def test_wilson_rate_interval_rejects_bad_input() -> None:
    assert wilson_rate_interval(0.3, 0) == (0.0, 1.0)
    with pytest.raises(ValueError, match="rate"):
        wilson_rate_interval(1.5, 10)
    with pytest.raises(ValueError, match="rate"):
        wilson_rate_interval(0.5, -1)


# -- decision_size: suites sized for the gate's three verdicts ------------------------------


def test_decision_size_known_answer() -> None:
    # n = ((z_0.975 + z_0.9) * sd / margin)**2 = (3.2415 * 0.3 / 0.02)**2 = 2364.1 -> 2365
    size = decision_size(0.3, 0.02)
    assert size.n == 2365
    assert size.pass_if_equal == pytest.approx(0.9, abs=1e-3)
    assert size.pass_if_worse == pytest.approx(0.025)
    assert size.fail_if_equal == pytest.approx(0.025)
    assert decision_size(0.3, 0.02, pass_power=0.8).n < size.n
    assert "at 2365 cases an equal-quality candidate passes 90% of the time" in size.describe()


def test_decision_size_uses_the_rule_of_three_floor() -> None:
    # sd 0: se = sqrt(3) / n, so n = ceil(3.2415 * sqrt(3) / 0.05) = 113
    assert decision_size(0.0, 0.05).n == 113
    with pytest.raises(ValueError, match="margin"):
        decision_size(0.3, 0.0)


def test_operating_characteristics_sum_to_one_and_fail_better_candidates_rarely() -> None:
    for delta in (-0.04, -0.02, 0.0, 0.02):
        oc = operating_characteristics(0.3, 500, 0.02, delta)
        assert oc.passes + oc.holds + oc.fails == pytest.approx(1.0)
    assert operating_characteristics(0.3, 500, 0.02, 0.0).fails == pytest.approx(0.025)
    assert operating_characteristics(0.3, 500, 0.02, 0.02).fails < 0.025
    assert operating_characteristics(0.3, 50, 0.02, -0.02).passes == pytest.approx(0.025)
