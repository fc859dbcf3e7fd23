from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from releasegate.domain.stats import (
    Interval,
    PairedComparison,
    _fill_uniform_indices,
    _indices_from_bits,
    aggregate_interval,
    average_epochs,
    bootstrap_means,
    mean_interval,
    minimum_detectable_effect,
    paired_compare,
    paired_compare_aggregate,
    wilson_interval,
)

Z95 = 1.959963984540054


def binary_pair(b: int, c: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Candidate/baseline arrays with b worse, c better and the rest agreeing."""
    candidate = np.zeros(n)
    baseline = np.zeros(n)
    baseline[:b] = 1.0
    candidate[b : b + c] = 1.0
    return candidate, baseline


def t_interval(x: np.ndarray) -> tuple[float, float]:
    half = scipy_stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    return float(x.mean() - half), float(x.mean() + half)


# --- Wilson and per-version intervals -------------------------------------------------


def test_wilson_matches_textbook_values() -> None:
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_wilson_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError):
        wilson_interval(11, 10)
    with pytest.raises(ValueError):
        wilson_interval(1, 10, confidence=1.0)


def test_mean_interval_of_binary_values_is_wilson() -> None:
    values = [1.0] * 8 + [0.0] * 2
    interval = mean_interval(values)
    assert interval.method == "wilson"
    assert interval.estimate == pytest.approx(0.8)
    assert (interval.low, interval.high) == pytest.approx(wilson_interval(8, 10))
    assert interval.se == pytest.approx(math.sqrt(0.8 * 0.2 / 10))


def test_bootstrap_interval_matches_t_interval_for_a_large_normal_sample() -> None:
    x = np.random.default_rng(7).normal(0.6, 0.2, size=2000)
    interval = mean_interval(x)
    low, high = t_interval(x)
    half = (high - low) / 2
    assert interval.method == "bootstrap"
    assert interval.estimate == pytest.approx(x.mean())
    assert interval.low == pytest.approx(low, abs=0.05 * half)
    assert interval.high == pytest.approx(high, abs=0.05 * half)
    assert interval.se == pytest.approx(x.std(ddof=1) / math.sqrt(x.size))


def test_mean_interval_edge_sizes() -> None:
    empty = mean_interval([])
    assert empty.n == 0 and math.isnan(empty.estimate) and math.isnan(empty.low)
    one = mean_interval([0.4])
    assert (one.estimate, one.low, one.high, one.se, one.n) == (0.4, 0.4, 0.4, 0.0, 1)
    constant = mean_interval([0.7] * 30)
    assert constant.low == pytest.approx(0.7) and constant.high == pytest.approx(0.7)


def test_mean_interval_rejects_epoch_matrices_and_nan() -> None:
    with pytest.raises(ValueError, match="average_epochs"):
        mean_interval(np.ones((3, 2)))
    with pytest.raises(ValueError, match="NaN"):
        mean_interval([0.5, math.nan])


def test_average_epochs_ignores_errored_epochs_and_zeroes_dead_cases() -> None:
    values = [[1.0, math.nan, 0.0], [math.nan, math.nan, math.nan], [0.5, 0.5, 1.0]]
    assert average_epochs(values).tolist() == pytest.approx([0.5, 0.0, 2 / 3])
    assert average_epochs([1.0, math.nan]).tolist() == [1.0, 0.0]


# --- bootstrap kernel ------------------------------------------------------------------


@pytest.mark.parametrize("distinct", [5, 64, 65, 500])
def test_bootstrap_means_have_the_sampling_distribution_of_the_mean(distinct: int) -> None:
    # Both kernels (multinomial up to 64 distinct values, gather above) must agree with
    # the known answer: mean of the sample, sd = population sd / sqrt(n).
    x = np.repeat(np.linspace(0.0, 1.0, distinct), 2000 // distinct + 1)[:2000]
    means = bootstrap_means(x, 10_000, seed=1)
    assert means.shape == (10_000,)
    assert means.mean() == pytest.approx(x.mean(), abs=4 * x.std() / math.sqrt(x.size * 1e4))
    assert means.std() == pytest.approx(x.std() / math.sqrt(x.size), rel=0.03)


def test_bootstrap_means_cover_every_case_exactly_uniformly() -> None:
    # 0..n-1: a sampler biased against the top indices (or overrunning them) shifts the mean.
    n = 1000
    means = bootstrap_means(np.arange(n, dtype=float), 4000, seed=3)
    sd = math.sqrt((n * n - 1) / 12) / math.sqrt(n)
    assert means.mean() == pytest.approx((n - 1) / 2, abs=4 * sd / math.sqrt(4000))
    assert means.min() >= 0 and means.max() <= n - 1


@pytest.mark.parametrize("n", [1, 3, 1000, 10_000, 65_537])
def test_index_sampler_maps_raw_bits_exactly(n: int) -> None:
    # A bias of n / 2**32 is invisible to any sampling test, so check the mapping itself:
    # every index has q = 2**32 // n preimages and the words past n * q are redrawn.
    q = 2**32 // n
    raw = np.array([0, q - 1, q, (n - 1) * q, n * q - 1, n * q, 2**32 - 1], dtype=np.uint64)
    raw = raw[raw < 2**32]
    out = np.full(raw.size, -1, dtype=np.intp)
    rejected = _indices_from_bits(raw.astype(np.uint32), n, out)
    accepted = np.setdiff1d(np.arange(raw.size), rejected)
    assert np.array_equal(raw[rejected], raw[raw >= n * q])
    assert out[accepted].tolist() == (raw[accepted] // q).tolist()
    assert out[accepted].max() == n - 1 and out[accepted].min() == 0


def test_index_sampler_redraws_rejected_words_uniformly() -> None:
    # n = 2**23 + 1 rejects about 1 word in 512: a fix-up that is not a fresh uniform draw
    # would pile up on one index.
    n = 2**23 + 1
    out = np.full(200_000, -1, dtype=np.intp)
    _fill_uniform_indices(np.random.default_rng(0), n, out)
    assert out.min() >= 0 and out.max() < n
    assert np.unique(out, return_counts=True)[1].max() <= 3


def test_bootstrap_is_deterministic_per_seed() -> None:
    x = np.random.default_rng(0).random(300)
    assert np.array_equal(bootstrap_means(x, 500, seed=4), bootstrap_means(x, 500, seed=4))
    assert not np.array_equal(bootstrap_means(x, 500, seed=4), bootstrap_means(x, 500, seed=5))


# --- McNemar ---------------------------------------------------------------------------


def test_mcnemar_exact_p_value_for_a_known_table() -> None:
    candidate, baseline = binary_pair(b=1, c=9, n=1000)
    result = paired_compare(candidate, baseline)
    assert result.method == "mcnemar-exact"
    assert (result.worse, result.better) == (1, 9)
    assert result.delta == pytest.approx(0.008)
    assert result.p_value == pytest.approx(22 / 1024)  # 0.0215


def test_mcnemar_exact_interval_is_clopper_pearson_mapped_to_delta() -> None:
    # 12 worse, 12 better: Clopper-Pearson for 12/24 is (0.2912, 0.7088); mapped by
    # (m/n)(2p-1) it is wider than the Wald width, so it is reported as is.
    candidate, baseline = binary_pair(b=12, c=12, n=1000)
    result = paired_compare(candidate, baseline)
    assert result.method == "mcnemar-exact"
    assert result.delta == 0.0
    assert result.low == pytest.approx(0.024 * (2 * 0.29124 - 1), abs=1e-6)
    assert result.high == pytest.approx(0.024 * (2 * 0.70876 - 1), abs=1e-6)
    assert result.p_value == 1.0


def test_mcnemar_wald_case_for_many_discordant_pairs() -> None:
    # b=20, c=40, n=200: var = (60 - 20**2/200) / 200**2 = 0.00145.
    candidate, baseline = binary_pair(b=20, c=40, n=200)
    result = paired_compare(candidate, baseline)
    assert result.method == "mcnemar"
    assert result.delta == pytest.approx(0.1)
    assert result.se == pytest.approx(math.sqrt(0.00145))
    assert (result.low, result.high) == pytest.approx((0.025367, 0.174633), abs=1e-6)
    assert result.p_value == pytest.approx(0.014171, abs=1e-6)  # chi2 = 19**2 / 60


def test_exact_below_25_discordant_pairs_and_wald_from_25() -> None:
    assert paired_compare(*binary_pair(b=10, c=14, n=500)).method == "mcnemar-exact"
    assert paired_compare(*binary_pair(b=10, c=15, n=500)).method == "mcnemar"


def test_no_discordant_pairs_means_no_change_but_not_certainty() -> None:
    candidate, baseline = binary_pair(b=0, c=0, n=50)
    candidate[:30] = baseline[:30] = 1.0
    result = paired_compare(candidate, baseline)
    assert (result.delta, result.p_value, result.worse, result.better) == (0.0, 1.0, 0, 0)
    assert result.se == pytest.approx(math.sqrt(3) / 50)
    assert result.high == pytest.approx(Z95 * math.sqrt(3) / 50)


# --- paired bootstrap --------------------------------------------------------------------


def test_paired_bootstrap_matches_paired_t_interval() -> None:
    rng = np.random.default_rng(11)
    baseline = rng.uniform(0.3, 0.9, size=3000)
    candidate = np.clip(baseline + rng.normal(0.02, 0.1, size=3000), 0.0, 1.0)
    result = paired_compare(candidate, baseline)
    d = candidate - baseline
    low, high = t_interval(d)
    half = (high - low) / 2
    assert result.method == "paired-bootstrap"
    assert result.delta == pytest.approx(d.mean())
    assert result.low == pytest.approx(low, abs=0.05 * half)
    assert result.high == pytest.approx(high, abs=0.05 * half)
    assert result.se == pytest.approx(d.std(ddof=1) / math.sqrt(d.size))
    assert result.p_value < 0.001
    assert (result.worse, result.better) == (int((d < 0).sum()), int((d > 0).sum()))


def test_paired_bootstrap_p_value_is_large_without_an_effect() -> None:
    rng = np.random.default_rng(12)
    baseline = rng.random(400)
    candidate = baseline + rng.normal(0.0, 0.05, size=400)
    candidate -= (candidate - baseline).mean()  # exactly no mean change
    assert paired_compare(candidate, baseline).p_value > 0.8


def test_same_inputs_same_decision() -> None:
    rng = np.random.default_rng(2)
    candidate, baseline = rng.random(500), rng.random(500)
    first = paired_compare(candidate, baseline, seed=9)
    assert paired_compare(candidate, baseline, seed=9) == first
    assert paired_compare(candidate, baseline, seed=10) != first


# --- the SE floor and suite sizing -----------------------------------------------------


@pytest.mark.parametrize("values", [[1.0] * 12 + [0.0] * 8, [0.25, 0.5, 0.75, 1.0] * 5])
def test_a_tiny_suite_where_nothing_changed_never_looks_precise(values: list[float]) -> None:
    result = paired_compare(values, values)
    assert result.n == 20 and result.delta == 0.0
    assert result.high - result.low > 0.3
    assert result.mde > 0.1
    assert result.se == pytest.approx(math.sqrt(3) / 20)


def test_a_large_suite_where_nothing_changed_is_precise() -> None:
    values = np.tile([0.0, 1.0], 5000)
    result = paired_compare(values, values)
    assert result.mde < 0.001
    assert result.high == pytest.approx(Z95 * math.sqrt(3) / 10_000)


def test_minimum_detectable_effect() -> None:
    assert minimum_detectable_effect(0.01) == pytest.approx((1.959964 + 0.841621) * 0.01)
    assert minimum_detectable_effect(0.01, confidence=0.9, power=0.5) == pytest.approx(
        1.644854 * 0.01
    )


def comparison(n: int, mde: float) -> PairedComparison:
    return PairedComparison(0.0, -0.1, 0.1, 0.05, mde, n, "paired-bootstrap", 1.0, 0, 0)


def test_cases_needed_scales_with_the_square_of_the_precision_gap() -> None:
    assert comparison(100, 0.1).cases_needed(0.05) == 400
    assert comparison(100, 0.1).cases_needed(0.1) == 100
    assert comparison(100, 0.03).cases_needed(0.1) == 100  # already precise enough
    assert comparison(100, 0.1).cases_needed(0.03) == 1112
    with pytest.raises(ValueError):
        comparison(100, 0.1).cases_needed(0.0)


def test_cases_needed_for_pass_fail_data_pays_the_continuity_correction() -> None:
    # mde 0.1 at 100 cases is 1.0 at one case: 1 / sqrt(n) + 0.5 / n <= 0.05 from n = 420
    mcnemar = PairedComparison(0.0, -0.1, 0.1, 0.05, 0.1, 100, "mcnemar-exact", 1.0, 5, 5)
    assert mcnemar.cases_needed(0.05) == 420
    assert 1 / math.sqrt(420) + 0.5 / 420 <= 0.05 < 1 / math.sqrt(419) + 0.5 / 419
    assert comparison(100, 0.1).cases_needed(0.05) == 400  # scores: no correction


def test_paired_compare_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="empty suite"):
        paired_compare([], [])
    with pytest.raises(ValueError, match="cases"):
        paired_compare([1.0, 0.0], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        paired_compare([math.nan], [1.0])


# --- corpus metrics --------------------------------------------------------------------


def macro_f1(gold: np.ndarray, predicted: np.ndarray, classes: int) -> float:
    tp = np.bincount(gold[gold == predicted], minlength=classes)
    fp = np.bincount(predicted, minlength=classes) - tp
    fn = np.bincount(gold, minlength=classes) - tp
    denom = 2 * tp + fp + fn
    present = denom > 0
    return float(np.mean(2 * tp[present] / denom[present]))


def test_aggregate_interval_of_a_mean_matches_the_t_interval() -> None:
    x = np.random.default_rng(5).normal(size=1500)
    interval = aggregate_interval(lambda idx: float(x[idx].mean()), x.size, resamples=4000)
    low, high = t_interval(x)
    half = (high - low) / 2
    assert interval.method == "bootstrap"
    assert interval.estimate == pytest.approx(x.mean())
    assert interval.low == pytest.approx(low, abs=0.07 * half)
    assert interval.high == pytest.approx(high, abs=0.07 * half)
    assert interval.se == pytest.approx(x.std(ddof=1) / math.sqrt(x.size), rel=0.07)


def test_aggregate_interval_of_macro_f1() -> None:
    rng = np.random.default_rng(6)
    gold = rng.integers(0, 5, size=400)
    predicted = np.where(rng.random(400) < 0.8, gold, rng.integers(0, 5, size=400))
    interval = aggregate_interval(lambda idx: macro_f1(gold[idx], predicted[idx], 5), 400)
    assert interval.estimate == pytest.approx(macro_f1(gold, predicted, 5))
    assert interval.low < interval.estimate < interval.high
    assert 0.01 < interval.se < 0.05


def test_aggregate_interval_edge_sizes() -> None:
    empty = aggregate_interval(lambda idx: 1.0, 0)
    assert empty.n == 0 and math.isnan(empty.estimate) and math.isnan(empty.high)
    assert aggregate_interval(lambda idx: 0.3, 1) == Interval(0.3, 0.3, 0.3, 0.0, 1, "mean")


def test_paired_aggregate_of_a_mean_matches_paired_compare() -> None:
    rng = np.random.default_rng(8)
    baseline = rng.random(1000)
    candidate = np.clip(baseline + rng.normal(0.03, 0.1, size=1000), 0, 1)
    scores = {"candidate": candidate, "baseline": baseline}

    def fn(idx: np.ndarray, which: str) -> float:
        return float(scores[which][idx].mean())

    aggregate = paired_compare_aggregate(fn, 1000, resamples=4000)
    direct = paired_compare(candidate, baseline)
    assert aggregate.method == "paired-bootstrap"
    assert aggregate.delta == pytest.approx(direct.delta)
    assert aggregate.low == pytest.approx(direct.low, abs=0.1 * (direct.high - direct.low))
    assert aggregate.high == pytest.approx(direct.high, abs=0.1 * (direct.high - direct.low))
    assert aggregate.se == pytest.approx(direct.se, rel=0.1)
    assert (aggregate.worse, aggregate.better) == (0, 0)


def test_paired_aggregate_resamples_the_same_cases_for_both_versions() -> None:
    # Candidate = baseline + 0.1 on every case: pairing makes every resampled delta 0.1.
    # Unpaired resampling would scatter it by the spread of the scores.
    base = np.random.default_rng(4).random(200)

    def fn(idx: np.ndarray, which: str) -> float:
        return float((base[idx] + (0.1 if which == "candidate" else 0.0)).mean())

    result = paired_compare_aggregate(fn, 200, resamples=300)
    assert result.delta == pytest.approx(0.1)
    assert result.se == pytest.approx(math.sqrt(3) / 200)  # floor: observed spread is ~0
    assert result.p_value == 0.0


# --- properties ------------------------------------------------------------------------

scores = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
binary = st.sampled_from([0.0, 1.0])
pairs = st.one_of(
    st.lists(st.tuples(binary, binary), min_size=1, max_size=60),
    st.lists(st.tuples(scores, scores), min_size=1, max_size=60),
    st.lists(st.tuples(st.sampled_from([0.0, 0.5, 1.0]), scores), min_size=1, max_size=60),
)


def split(rows: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    array = np.array(rows, dtype=float)
    return array[:, 0], array[:, 1]


@settings(max_examples=60, deadline=None)
@given(st.one_of(st.lists(binary, min_size=1, max_size=60), st.lists(scores, min_size=1)))
def test_a_version_against_itself_is_no_change(values: list[float]) -> None:
    result = paired_compare(values, values, resamples=200)
    assert result.delta == 0.0
    assert result.p_value == 1.0
    assert (result.worse, result.better) == (0, 0)
    assert result.low < 0.0 < result.high


@settings(max_examples=80, deadline=None)
@given(pairs)
def test_swapping_candidate_and_baseline_mirrors_the_comparison(
    rows: list[tuple[float, float]],
) -> None:
    candidate, baseline = split(rows)
    forward = paired_compare(candidate, baseline, resamples=200)
    backward = paired_compare(baseline, candidate, resamples=200)
    assert backward.delta == pytest.approx(-forward.delta, abs=1e-12)
    assert backward.low == pytest.approx(-forward.high, abs=1e-9)
    assert backward.high == pytest.approx(-forward.low, abs=1e-9)
    assert backward.p_value == pytest.approx(forward.p_value, abs=1e-9)
    assert (backward.worse, backward.better) == (forward.better, forward.worse)
    assert backward.method == forward.method


@settings(max_examples=80, deadline=None)
@given(pairs)
def test_the_interval_contains_delta_and_nothing_is_nan(rows: list[tuple[float, float]]) -> None:
    candidate, baseline = split(rows)
    result = paired_compare(candidate, baseline, resamples=200)
    assert result.low <= result.delta <= result.high
    assert result.high - result.low >= 2 * Z95 * math.sqrt(3) / result.n * (1 - 1e-9)
    fields = [result.delta, result.low, result.high, result.se, result.mde, result.p_value]
    assert all(math.isfinite(value) for value in fields)
    assert 0.0 <= result.p_value <= 1.0
    assert result.cases_needed(0.05) >= result.n
