"""The simulation harness's core, seeded and small: the gate's stated error rates hold."""

from __future__ import annotations

import numpy as np
import pytest

from releasegate.domain.calibration import Rate, flip_to_delta, rate_of, simulate_gate
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
