"""The simulation harness's core, seeded and small: the gate's stated error rates hold."""

from __future__ import annotations

import numpy as np
import pytest

from releasegate.domain.calibration import (
    Rate,
    exact_binary_rates,
    flip_to_delta,
    rate_of,
    simulate_gate,
)
from releasegate.domain.power import decision_size
from releasegate.domain.stats import generator

MARGIN = 0.05


def pools() -> tuple[np.ndarray, np.ndarray]:
    """Two versions of equal quality: 85% correct each, disagreeing on 12% of cases."""
    rng = np.random.default_rng(11)
    base = (rng.random(4000) < 0.85).astype(float)
    cand = base.copy()
    wrong, right = np.flatnonzero(base == 0), np.flatnonzero(base == 1)
    cand[rng.choice(right, 240, replace=False)] = 0.0
    cand[rng.choice(wrong, 240, replace=False)] = 1.0
    return cand, base


def test_flip_to_delta_hits_the_target_in_expectation() -> None:
    cand, base = pools()
    rng = generator(3)
    means = [flip_to_delta(cand, float(base.mean()), -0.1, rng).mean() for _ in range(200)]
    assert np.mean(means) == pytest.approx(base.mean() - 0.1, abs=0.002)
    up = flip_to_delta(cand, float(base.mean()), 0.05, rng)
    assert set(np.unique(up)) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="cannot flip"):
        flip_to_delta(cand, float(base.mean()), 0.5, rng)


def test_a_suite_sized_by_decision_size_has_the_stated_operating_characteristics() -> None:
    cand, base = pools()
    n = decision_size(float(np.std(cand - base)), MARGIN).n
    equal = simulate_gate(cand, base, n=n, margin=MARGIN, true_delta=0.0, repetitions=300, seed=1)
    worse = simulate_gate(
        cand, base, n=n, margin=MARGIN, true_delta=-MARGIN, repetitions=300, seed=2
    )
    better = simulate_gate(
        cand, base, n=n, margin=MARGIN, true_delta=MARGIN, repetitions=100, seed=3
    )
    # targets, with room for 300 repetitions' noise (the benchmark runs 500+ per cell)
    assert equal.fails.value <= 0.05
    assert equal.passes.value >= 0.85
    assert worse.passes.value <= 0.045
    assert better.fails.hits == 0
    assert equal.passes.hits + equal.holds.hits + equal.fails.hits == 300


def test_rate_reports_a_wilson_interval() -> None:
    rate = rate_of(lambda rng: rng.random() < 0.2, trials=500, seed=0)
    assert isinstance(rate, Rate) and rate.trials == 500
    low, high = rate.interval
    assert low < 0.2 < high
    assert str(rate).startswith(f"{rate.value:.1%} [")


def test_a_candidate_worse_by_the_margin_passes_at_most_2_5_percent_computed_exactly() -> None:
    """Pass/fail data at the worst point found (50 cases, half of them discordant): the
    score test without its continuity correction passed 2.68%; with it 1.85%."""
    margin, discordant = 0.05, 0.5
    worse = exact_binary_rates(50, (margin,), (discordant + margin) / 2, (discordant - margin) / 2)
    equal = exact_binary_rates(50, (margin,), discordant / 2, discordant / 2)
    assert worse[0].passes <= 0.025
    assert worse[0].passes + worse[0].holds + worse[0].fails == pytest.approx(1.0, abs=1e-6)
    assert equal[0].fails <= 0.05


def test_skewed_scores_worse_by_the_margin_pass_at_most_2_5_percent_on_100_cases() -> None:
    """A regression that zeroes a few cases' scores (the benchmark's flipping) on a small
    suite: the percentile bootstrap's bound passed 13 of these 400 suites (3.2%); the
    small-sample bound (t, rule-of-three variance, skew) passes 3 (0.8%)."""
    rng = np.random.default_rng(5)
    base = rng.beta(6, 1, 3000)
    cand = np.clip(base + rng.normal(0.0, 0.2, 3000), 0.0, 1.0)
    worse = simulate_gate(
        cand, base, n=100, margin=MARGIN, true_delta=-MARGIN, repetitions=400, seed=8,
        resamples=1000,
    )  # fmt: skip
    assert worse.passes.value <= 0.025, worse.passes
