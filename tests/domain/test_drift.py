"""Drift detectors: known answers, chance-adjusted thresholds, statuses, directions, and each
detector's false-alarm rate measured over seeded no-shift windows."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from releasegate.domain import drift
from releasegate.domain.drift import (
    Bins,
    DriftRules,
    Signal,
    Window,
    compare_windows,
    distribution_signal,
    embedding_drift_signal,
    label_counts,
    label_mix_signal,
    mean_signal,
    measure_false_alarms,
    psi,
    psi_chance,
    psi_from_counts,
    quantile_signal,
    rate_signal,
)
from releasegate.domain.mmd import mmd2, mmd_test

Pair = tuple[np.ndarray, np.ndarray]
Sampler = Callable[[np.random.Generator], tuple[Any, Any]]
TRIALS = 300

# --- known answers ----------------------------------------------------------------------


def test_psi_of_a_hand_computed_case() -> None:
    # (0.3 - 0.5) ln(0.3 / 0.5) + 0 + (0.4 - 0.2) ln(0.4 / 0.2)
    expected = 0.2 * math.log(0.5 / 0.3) + 0.2 * math.log(2.0)
    assert psi_from_counts([50, 30, 20], [30, 30, 40]) == pytest.approx(expected, rel=1e-12)
    assert psi_from_counts([5, 5], [5, 5]) == 0.0


def test_psi_bins_sit_at_reference_quantiles_and_are_reused() -> None:
    reference = np.arange(100.0)
    bins = Bins.from_reference(reference, 4)
    assert bins.edges == (24.75, 49.5, 74.25)
    assert bins.counts(reference).tolist() == [25, 25, 25, 25]
    current = np.concatenate([np.full(50, 10.0), np.full(50, 90.0)])  # half in bin 0, half in 3
    expected = 2 * (0.5 - 0.25) * math.log(2.0) + 2 * (0.5 / 100 - 0.25) * math.log(0.02)
    assert psi(reference, current, bins) == pytest.approx(expected)
    assert psi(reference, current, 4) == psi(reference, current, bins)
    later = np.arange(1000.0)  # a later window is binned by the reference's edges, not its own
    assert bins.counts(later).tolist() == [25, 25, 25, 925]


def test_bins_of_tied_data_never_leave_a_reference_bin_empty() -> None:
    reference = np.concatenate([np.zeros(60), np.arange(1.0, 41.0)])
    bins = Bins.from_reference(reference, 10)
    assert bins.k < 10
    assert np.all(bins.counts(reference) > 0)
    assert Bins.from_reference(np.ones(50)).k == 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=200))
def test_every_reference_bin_holds_reference_runs(values: list[float]) -> None:
    bins = Bins.from_reference(values, 10)
    assert np.all(bins.counts(values) > 0)
    assert list(bins.edges) == sorted(set(bins.edges))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=2, max_size=12))
def test_psi_is_zero_on_itself_and_never_negative(counts: list[int]) -> None:
    if sum(counts) == 0:
        return
    assert psi_from_counts(counts, counts) == pytest.approx(0.0, abs=1e-12)
    assert psi_from_counts(counts, counts[::-1]) >= 0.0


def test_label_mix_chi_square_matches_scipy() -> None:
    reference = {"card_arrival": 30, "top_up": 50, "refund": 20}
    current = {"card_arrival": 50, "top_up": 35, "refund": 15}
    signal = label_mix_signal(reference, current)
    table = [[30, 50, 20], [50, 35, 15]]
    expected = scipy_stats.chi2_contingency(table, correction=False)
    assert signal.statistic.name == "chi-square"
    assert signal.statistic.value == pytest.approx(expected.statistic)
    assert signal.p_value == pytest.approx(expected.pvalue)
    assert signal.value == pytest.approx(0.2)  # total variation: 20% of runs changed label
    assert "most moved: card_arrival 50.0% vs 30.0%" in signal.detail


def test_label_mix_tests_sparse_labels_by_permutation_without_folding() -> None:
    reference = {"a": 100, "b": 100, "rare1": 2, "rare2": 3, "rare3": 4}
    current = {"a": 100, "b": 100, "rare1": 3, "rare2": 2, "rare4": 3}
    signal = label_mix_signal(reference, current)
    table = [[100, 100, 2, 3, 4, 0], [100, 100, 3, 2, 0, 3]]  # every label its own column
    expected = scipy_stats.chi2_contingency(table, correction=False)
    assert signal.statistic.value == pytest.approx(expected.statistic)
    assert "999 permutations" in signal.detail
    assert 0.0 < signal.p_value < 1.0
    assert "new labels (1.4% of the window): rare4" in signal.detail
    assert signal.status == "ok"


def test_label_mix_sees_a_surge_on_a_few_of_77_sparse_labels() -> None:
    rng = np.random.default_rng(4)
    names = [f"intent_{i:02d}" for i in range(77)]
    reference = rng.choice(names, 1_000).tolist()
    current = rng.choice(names, 100).tolist()[:70] + ["intent_03"] * 15 + ["intent_40"] * 15
    signal = label_mix_signal(reference, current)
    assert signal.status == "alert", signal.detail
    assert signal.p_value < 0.01


def test_label_mix_catches_a_fifth_of_a_100_run_window_moved_onto_5_of_77_labels() -> None:
    """The monitor harness's intent shift on synthetic labels: chi-square alone caught about
    half; with the gain tests (min-p) about 72%, near the 74% of the most powerful test of
    that shift at alpha 0.01 (docs/production.md)."""
    rng = np.random.default_rng(21)
    names = np.array([f"intent_{i:02d}" for i in range(77)])
    caught = 0
    for trial in range(60):
        reference = rng.choice(names, 1_000).tolist()
        hot = rng.choice(names, 5, replace=False)
        current = rng.choice(names, 80).tolist() + rng.choice(hot, 20).tolist()
        caught += label_mix_signal(reference, current, seed=trial).is_alert
    assert caught >= 36, caught  # 60%; the 95% Wilson interval of 36/60 starts at 47%


def test_label_mix_alerts_on_a_new_label_and_names_it() -> None:
    signal = label_mix_signal(["a"] * 100 + ["b"] * 100, ["a"] * 80 + ["b"] * 80 + ["zz"] * 40)
    assert signal.status == "alert"
    assert "new labels (20.0% of the window): zz" in signal.detail
    assert "most moved: zz 20.0% vs 0.0%" in signal.detail


def test_label_counts_accepts_sequences_counts_and_integer_codes() -> None:
    assert label_counts(["a", "b", "a"]) == {"a": 2, "b": 1}
    assert label_counts({"a": 2, "b": 0}) == {"a": 2}
    assert label_counts(np.array([0, 2, 2])) == {"0": 1, "2": 2}
    assert label_counts(np.array(["x", "y", "x"])) == {"x": 2, "y": 1}


def test_mmd_is_zero_for_identical_samples_and_large_for_separated_ones() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 16))
    assert mmd2(x, x) == pytest.approx(0.0, abs=1e-6)
    same = mmd_test(x, x, permutations=99)
    assert same.mmd2 == pytest.approx(0.0, abs=1e-6)
    assert same.p_value == 1.0
    far = mmd_test(x, x + 2.0, permutations=99)
    assert far.mmd2 > 0.2
    assert far.p_value == pytest.approx(1 / 100)  # beyond every permutation


def brute_mmd2(x: np.ndarray, y: np.ndarray, sigma: float) -> float:
    """The textbook biased MMD^2 in float64, for comparison."""
    z = np.vstack([x, y]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    d2 = ((z[:, None, :] - z[None, :, :]) ** 2).sum(axis=2)
    k = np.exp(-d2 / (2 * sigma * sigma))
    n = x.shape[0]
    return float(k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean())


def test_mmd_matches_the_textbook_formula_and_its_null_mean_the_permutations() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(40, 8)), rng.normal(0.3, 1.0, size=(60, 8))
    assert mmd2(x, y, bandwidth=0.9) == pytest.approx(brute_mmd2(x, y, 0.9), rel=1e-4)
    test = mmd_test(x, y, bandwidth=0.9, permutations=50)
    assert test.mmd2 == pytest.approx(brute_mmd2(x, y, 0.9), rel=1e-4)
    pooled = np.vstack([x, y])
    shuffled = [rng.permutation(100) for _ in range(300)]
    null = [brute_mmd2(pooled[p[:40]], pooled[p[40:]], 0.9) for p in shuffled]
    assert test.null_mean == pytest.approx(np.mean(null), rel=0.05)


def test_mmd_caps_each_side_with_a_seeded_subsample() -> None:
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(300, 8)), rng.normal(size=(250, 8))
    capped = mmd_test(x, y, cap=100, permutations=20, seed=7)
    assert (capped.n_ref, capped.n) == (100, 100)
    assert capped == mmd_test(x, y, cap=100, permutations=20, seed=7)


def test_psi_chance_level_is_the_scaled_chi_square() -> None:
    chance = psi_chance(100, 100, 10, alpha=0.01)
    assert chance.scale == pytest.approx(0.02)
    assert chance.mean == pytest.approx(0.02 * 9)
    assert chance.quantile == pytest.approx(0.02 * scipy_stats.chi2.isf(0.01, 9))
    signal = distribution_signal("latency", np.arange(100.0), np.arange(100.0))
    assert signal.reference == pytest.approx(chance.mean)
    assert signal.threshold == pytest.approx(0.1 + chance.quantile - chance.mean)


# --- the chance level and measured false alarms -----------------------------------------


def normal_windows(n: int) -> Callable[[np.random.Generator], Pair]:
    def sample(rng: np.random.Generator) -> Pair:
        return rng.normal(size=n), rng.normal(size=n)

    return sample


def fixed_psi_rule(reference: np.ndarray, current: np.ndarray) -> Signal:
    """The folk rule: alert whenever PSI > 0.25, whatever the window sizes."""
    signal = distribution_signal("x", reference, current)
    return dataclasses.replace(signal, status="alert" if signal.value > 0.25 else "ok")


def test_a_fixed_psi_cut_false_alarms_on_small_windows_and_the_chance_level_does_not() -> None:
    sample = normal_windows(100)
    folk = measure_false_alarms(sample, fixed_psi_rule, trials=TRIALS, seed=1)
    ours = measure_false_alarms(
        sample, lambda r, c: distribution_signal("x", r, c), trials=TRIALS, seed=1
    )
    assert folk.low > 0.05, folk  # about one window in five alerts on nothing
    assert ours.high <= 0.05, ours
    big = measure_false_alarms(
        normal_windows(5_000), lambda r, c: distribution_signal("x", r, c), trials=50, seed=2
    )
    assert big.alerts == 0


def rates(n: int, p: float) -> Callable[[np.random.Generator], tuple[int, int]]:
    def sample(rng: np.random.Generator) -> tuple[int, int]:
        return int(rng.binomial(n, p)), int(rng.binomial(n, p))

    return sample


def labels(n: int) -> Callable[[np.random.Generator], tuple[list[str], list[str]]]:
    names = [f"intent_{i}" for i in range(15)]
    weights = np.array([20, 15, 12, 10, 8, 8, 6, 5, 5, 4, 3, 2, 1, 0.5, 0.5])
    probs = weights / weights.sum()

    def sample(rng: np.random.Generator) -> tuple[list[str], list[str]]:
        draw = rng.choice(len(names), size=(2, n), p=probs)
        return [names[i] for i in draw[0]], [names[i] for i in draw[1]]

    return sample


def lognormal(n: int) -> Callable[[np.random.Generator], Pair]:
    def sample(rng: np.random.Generator) -> Pair:
        return rng.lognormal(0.0, 1.0, size=n), rng.lognormal(0.0, 1.0, size=n)

    return sample


def gaussian_rows(n: int) -> Callable[[np.random.Generator], Pair]:
    def sample(rng: np.random.Generator) -> Pair:
        return rng.normal(size=(n, 24)), rng.normal(size=(n, 24))

    return sample


def rate_detector(n: int, **options: Any) -> Callable[[int, int], Signal]:
    return lambda k_ref, k: rate_signal("error_rate", k, n, k_ref, n, **options)


DETECTORS: dict[str, tuple[Sampler, Callable[..., Signal]]] = {
    "rate-fisher": (rates(100, 0.03), rate_detector(100)),
    "rate-z": (rates(2_000, 0.2), rate_detector(2_000)),
    "latency-p50": (lognormal(200), lambda r, c: quantile_signal("p50", r, c, q=0.5)),
    "latency-p95": (lognormal(200), lambda r, c: quantile_signal("p95", r, c, q=0.95)),
    "cost-mean": (lognormal(200), lambda r, c: mean_signal("cost", r, c)),
    "length-either": (
        lognormal(200),
        lambda r, c: quantile_signal("len", r, c, q=0.5, direction="either"),
    ),
    "distribution-psi": (normal_windows(100), lambda r, c: distribution_signal("x", r, c)),
    "label-mix": (labels(200), lambda r, c: label_mix_signal(r, c)),
    "embedding-mmd": (gaussian_rows(50), lambda r, c: embedding_drift_signal(r, c)),
}


@pytest.mark.parametrize("name", list(DETECTORS))
def test_each_detector_false_alarms_at_most_5_percent(name: str) -> None:
    sample, detect = DETECTORS[name]
    measured = measure_false_alarms(sample, detect, trials=TRIALS, seed=11)
    assert measured.insufficient == 0
    assert measured.high <= 0.05, measured  # the whole 95% Wilson interval is below 5%


def test_without_floors_the_tests_hold_their_alpha() -> None:
    """Significance alone, at alpha 0.05: the alert count is binomial-consistent with 5%."""
    options: dict[str, Any] = {"alpha": 0.05}
    cases: list[tuple[Sampler, Callable[..., Signal]]] = [
        (rates(2_000, 0.2), rate_detector(2_000, min_change=-1.0, **options)),
        (
            lognormal(200),
            lambda r, c: quantile_signal("p50", r, c, q=0.5, min_relative_change=-1, **options),
        ),
        (lognormal(200), lambda r, c: mean_signal("c", r, c, min_relative_change=-1, **options)),
        (normal_windows(100), lambda r, c: distribution_signal("x", r, c, floor=0.0, **options)),
        (labels(200), lambda r, c: label_mix_signal(r, c, floor=-1.0, **options)),
    ]
    ceiling = scipy_stats.binom.ppf(0.999, TRIALS, 0.05)  # fails only if clearly above 5%
    for sample, detect in cases:
        measured = measure_false_alarms(sample, detect, trials=TRIALS, seed=5)
        assert measured.alerts <= ceiling, measured
        assert measured.alerts > 0  # the test is not vacuous: it does fire by chance


def test_measured_false_alarms_are_reproducible() -> None:
    sample, detect = DETECTORS["latency-p95"]
    first = measure_false_alarms(sample, detect, trials=50, seed=3)
    assert first == measure_false_alarms(sample, detect, trials=50, seed=3)
    assert first.trials == 50
    assert first.low <= first.rate <= first.high


# --- statuses and directions ------------------------------------------------------------


def test_below_the_minimum_sample_a_signal_is_insufficient_whatever_it_sees() -> None:
    tiny = rate_signal("error_rate", 20, 30, 10, 1_000)
    assert tiny.status == "insufficient"
    assert "30 vs 1,000 runs, needs 50 in each to alert" in tiny.detail
    assert rate_signal("error_rate", 20, 30, 10, 1_000, min_sample=30).status == "alert"
    rng = np.random.default_rng(0)
    latency = rng.lognormal(size=80)
    p95 = quantile_signal("latency_p95", latency, latency * 3, q=0.95)
    assert p95.status == "insufficient"
    assert p95.min_sample == 100  # p95 needs 5 runs above it
    labels_ok = label_mix_signal(["a"] * 40, ["b"] * 40)
    assert labels_ok.status == "insufficient"
    drift = embedding_drift_signal(rng.normal(size=(20, 4)), rng.normal(3, 1, size=(20, 4)))
    assert drift.status == "insufficient"


def test_an_improvement_does_not_alert_and_a_regression_does() -> None:
    better = rate_signal("error_rate", 10, 1_000, 60, 1_000)
    worse = rate_signal("error_rate", 60, 1_000, 10, 1_000)
    assert (better.status, worse.status) == ("ok", "alert")
    assert better.p_value is not None and better.p_value > 0.99
    assert better.change == pytest.approx(-0.05)
    assert better.change_kind == "absolute"
    rng = np.random.default_rng(0)
    base = rng.lognormal(6.0, 0.3, size=2_000)
    faster = quantile_signal("latency_p95", base, base * 0.7, q=0.95)
    slower = quantile_signal("latency_p95", base, base * 1.3, q=0.95)
    assert (faster.status, slower.status) == ("ok", "alert")
    assert slower.change == pytest.approx(0.3, rel=0.01)
    assert slower.change_kind == "relative"
    quality_drop = rate_signal("quality", 150, 200, 180, 200, direction="decrease")
    assert quality_drop.status == "alert"
    shorter = quantile_signal("output_length_p50", base, base * 0.7, q=0.5, direction="either")
    assert shorter.status == "alert"


def test_huge_windows_do_not_alert_on_trivia() -> None:
    n = 1_000_000
    trivial = rate_signal("error_rate", 10_400, n, 10_000, n)  # 1.04% vs 1.00%
    assert trivial.p_value is not None and trivial.p_value < 0.01
    assert trivial.status == "ok"
    rng = np.random.default_rng(4)
    base = rng.lognormal(6.0, 0.3, size=200_000)
    slightly = quantile_signal("latency_p50", base, base * 1.03, q=0.5)
    assert slightly.p_value is not None and slightly.p_value < 1e-6
    assert slightly.status == "ok"


def test_inputs_are_checked() -> None:
    with pytest.raises(ValueError, match="events"):
        rate_signal("error_rate", 11, 10, 0, 10)
    with pytest.raises(ValueError, match="q must be"):
        quantile_signal("x", [1.0], [1.0], q=1.0)
    with pytest.raises(ValueError, match="alpha"):
        rate_signal("error_rate", 1, 10, 1, 10, alpha=0.0)
    with pytest.raises(ValueError, match="embeddings"):
        mmd_test(np.zeros(5), np.zeros(5))


# --- all windows at once ----------------------------------------------------------------


def window(rng: np.random.Generator, n: int, *, slow: float = 1.0, errors: float = 0.01) -> Window:
    return Window(
        errors=rng.random(n) < errors,
        latency=rng.lognormal(6.0, 0.4, size=n) * slow,
        cost=rng.gamma(2.0, 0.002, size=n),
        escalated=rng.random(n) < 0.05,
        edited=rng.random(n) < 0.1,
        negative_feedback=np.where(rng.random(n) < 0.3, rng.random(n) < 0.1, np.nan),
        output_length=rng.poisson(120, size=n).astype(float),
        labels=rng.choice(["a", "b", "c", "d"], size=n, p=[0.4, 0.3, 0.2, 0.1]),
        quality=(rng.random(200) < 0.9).astype(float),
    )


def test_compare_windows_reports_every_signal_and_alerts_only_on_what_moved() -> None:
    rng = np.random.default_rng(8)
    reference = window(rng, 5_000)
    calm = compare_windows(reference, window(rng, 5_000))
    assert [s.name for s in calm] == [
        "error_rate",
        "escalation_rate",
        "edit_rate",
        "negative_feedback_rate",
        "latency_p50",
        "latency_p95",
        "cost_per_task",
        "output_length_p50",
        "output_length_distribution",
        "label_mix",
        "quality",
    ]
    assert [s.name for s in calm if s.is_alert] == []
    feedback = calm[3]
    assert 1_200 < feedback.n < 1_800  # runs without feedback are not counted
    bad = compare_windows(reference, window(rng, 5_000, slow=1.5, errors=0.04))
    assert [s.name for s in bad if s.is_alert] == ["error_rate", "latency_p50", "latency_p95"]
    assert bad[0].detail.startswith("error rate 3.8% vs 0.7% (+3.1 pts; two-proportion z-test")


def test_empty_windows_are_insufficient_not_errors() -> None:
    empty = np.zeros(0)
    nothing = Window(errors=empty, latency=empty, cost=empty, output_length=empty, labels=[])
    some = window(np.random.default_rng(3), 500)
    for reference, current in ((nothing, some), (some, nothing), (nothing, nothing)):
        signals = compare_windows(reference, current)
        # the columns only one window has (escalations, edits...) are untested, not dropped
        assert len(signals) == (7 if reference is current else 11)
        assert {s.status for s in signals} == {"insufficient"}
    kept = Bins.from_reference(np.asarray(some.output_length), 10)
    alone = distribution_signal("length", empty, np.asarray(some.output_length), bins=kept)
    assert alone.status == "insufficient" and math.isnan(alone.value)


def test_compare_windows_takes_rules_directions_and_kept_bins() -> None:
    rng = np.random.default_rng(9)
    reference, current = window(rng, 3_000), window(rng, 3_000, slow=0.6)
    quiet = compare_windows(reference, current)
    assert not any(s.is_alert for s in quiet)
    either = DriftRules(directions={"latency_p50": "either"}, min_sample=10_000)
    flagged = compare_windows(reference, current, either)
    assert {s.status for s in flagged} == {"insufficient"}
    both_ways = compare_windows(
        reference, current, DriftRules(directions={"latency_p50": "either"})
    )
    assert [s.name for s in both_ways if s.is_alert] == ["latency_p50"]
    kept = Bins.from_reference(np.asarray(reference.output_length), 5)
    with_bins = compare_windows(reference, current, bins={"output_length": kept})
    dist = next(s for s in with_bins if s.name == "output_length_distribution")
    assert "5 reference-quantile bins" in dist.detail


def test_compare_windows_checks_input_and_output_embeddings_with_the_rules_knobs() -> None:
    rng = np.random.default_rng(10)
    shift = np.zeros(16)
    shift[:4] = 1.5  # the current inputs moved; the outputs did not

    def embedded(n: int, moved: bool) -> Window:
        inputs = rng.normal(size=(n, 16)) + (shift if moved else 0.0)
        return Window(input_embeddings=inputs, output_embeddings=rng.normal(size=(n, 16)))

    reference, current = embedded(300, False), embedded(300, True)
    rules = DriftRules(embedding_cap=200, permutations=199, seed=4)
    signals = compare_windows(reference, current, rules)
    assert [(s.name, s.status) for s in signals][:2] == [
        ("input_drift", "alert"),
        ("output_drift", "ok"),
    ]
    assert signals[2].name == "novel_inputs"
    drift = signals[0]
    assert drift.p_value == pytest.approx(1 / 200)  # beyond every one of the permutations
    assert "199 permutations, 200 vs 200 sampled" in drift.detail
    assert signals == compare_windows(reference, current, rules)  # seeded: same answer
    few = compare_windows(embedded(1, False), current)
    assert {s.status for s in few} == {"insufficient"}
    assert "MMD^2 needs 2 runs per window" in few[0].detail
    with pytest.raises(ValueError, match="99 permutations can never give p < alpha=0.01; use 100"):
        compare_windows(reference, current, dataclasses.replace(rules, permutations=99))


# -- the tests behind the signals (scipy), pinned to known values -------------------------------

WELCH_A = [27.5, 21.0, 19.0, 23.6, 17.0, 17.9, 16.9, 20.1, 21.9, 22.6, 23.1, 19.6, 19.0, 21.7, 21.4]
WELCH_B = [27.1, 22.0, 20.8, 23.4, 23.4, 23.5, 25.8, 22.0, 24.8, 20.2, 21.9, 22.1, 22.9, 20.5, 24.4]


@pytest.mark.parametrize(
    ("direction", "p_value"),
    [("increase", 0.9893109992685665), ("decrease", 0.010689000731433496),
     ("either", 0.021378001462866992)],
)  # fmt: skip
def test_welch_gives_the_textbook_values(direction: str, p_value: float) -> None:
    # Welch (1947) as worked on Wikipedia, example 1: t = -2.46, df = 24.9, p = 0.021
    t, p = drift._welch(np.array(WELCH_A), np.array(WELCH_B), direction)  # type: ignore[arg-type]
    assert t == pytest.approx(-2.455356398286006, rel=1e-12)
    assert p == pytest.approx(p_value, rel=1e-12)


def test_chi_square_gives_the_values_the_hand_formula_gave() -> None:
    ref, cur = np.array([30.0, 25, 45, 0, 12]), np.array([50.0, 20, 30, 0, 9])
    chi2, df, p = drift._chi_square(ref, cur)
    assert (df, chi2) == (3, pytest.approx(8.945051319457443, rel=1e-12))
    assert p == pytest.approx(0.030030450840497123, rel=1e-12)
    chi2, df, p = drift._chi_square(np.array([10.0, 0]), np.array([0.0, 10]))
    assert (chi2, df, p) == (pytest.approx(20.0), 1, pytest.approx(7.744216431044088e-06))
    assert drift._chi_square(np.array([5.0, 0]), np.array([7.0, 0])) == (0.0, 0, 1.0)


def test_a_signal_can_have_its_own_alpha() -> None:
    reference = Window(labels={"a": 500, "b": 500})
    current = Window(labels={"a": 118, "b": 82})  # 59% vs 50%: p about 0.02
    (default,) = compare_windows(reference, current)  # label_mix is tested at 0.05
    assert default.name == "label_mix" and 0.01 < default.p_value < 0.05  # type: ignore[operator]
    assert default.is_alert and default.alpha == 0.05
    strict = DriftRules(alphas={})  # every test at 0.01
    (mix,) = compare_windows(reference, current, strict)
    assert not mix.is_alert and mix.alpha == 0.01 and mix.p_value == default.p_value
    assert DriftRules().alpha_for("error_rate") == 0.01  # the others keep 0.01
