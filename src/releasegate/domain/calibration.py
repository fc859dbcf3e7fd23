"""Operating characteristics by simulation: how often the gate passes, holds and fails.

The gate's error rates are claims; this module measures them. A simulation draws suites of
``n`` cases (with replacement) from a pool of paired per-case scores of two versions of equal
quality, moves the candidate to a chosen true delta by *flipping* cases, runs the gate's own
comparison (``stats.paired_compare``) and rule (``decision.regression_check``) on each suite,
and counts the verdicts, each with a Wilson interval. Pure and seeded: the same pool, settings
and seed give the same counts.

Flipping: a regression makes a random share ``q`` of the drawn candidate cases score 0 (a binary
correct answer becomes wrong, a probability drops to 0), which moves its mean by
``-q * mean``; an improvement makes a share score 1, moving it by ``q * (1 - mean)``. ``q`` is
chosen from the pool, after first absorbing the pool's own small gap between the versions,
so the candidate's expected mean over the pool is the baseline's plus ``true_delta`` exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from releasegate.domain.decision import Status, regression_check
from releasegate.domain.stats import FloatArray, generator, paired_compare, wilson_interval

RESAMPLES = 2_000
"""Bootstrap resamples per simulated comparison of continuous scores (the gate uses 10,000;
2,000 keeps a 500-repetition grid affordable and moves the 2.5% quantile by ~0.1 se)."""


@dataclass(frozen=True)
class Rate:
    """``hits`` of ``trials`` with its 95% Wilson interval."""

    hits: int
    trials: int

    @property
    def value(self) -> float:
        return self.hits / self.trials if self.trials else float("nan")

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.hits, self.trials)

    def __str__(self) -> str:
        low, high = self.interval
        return f"{self.value:.1%} [{low:.1%}, {high:.1%}]"


@dataclass(frozen=True)
class VerdictRates:
    """Pass/hold/fail counts of the regression check at one (n, margin, true delta)."""

    n: int
    margin: float
    true_delta: float
    passes: Rate
    holds: Rate
    fails: Rate


def flip_to_delta(
    candidate: ArrayLike,
    baseline_mean: float,
    true_delta: float,
    rng: np.random.Generator,
    *,
    pool_mean: float | None = None,
) -> FloatArray:
    """Candidate scores with cases flipped so the expected mean is ``baseline_mean + delta``.

    Scores lie in [0, 1]. Each case is flipped independently with the share ``q`` that
    moves the mean to the target: down to 0 when the target is below the candidate's mean,
    up to 1 when above. ``pool_mean`` is the candidate's mean over the whole pool when
    ``candidate`` is a suite drawn from it (flip each drawn case, so repeated draws of one
    case flip independently, as fresh cases would). A target outside what flipping can
    reach raises ``ValueError``.
    """
    x = np.asarray(candidate, dtype=np.float64)
    mean = float(x.mean()) if pool_mean is None else pool_mean
    target = baseline_mean + true_delta
    if np.isclose(target, mean, rtol=0.0, atol=1e-12):
        return x.copy()
    if target < mean:
        q, to = (mean - target) / mean, 0.0
    else:
        q, to = (target - mean) / (1.0 - mean), 1.0
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"cannot flip a mean of {mean:.4f} to {target:.4f}")
    flipped = rng.random(x.size) < q
    return np.where(flipped, to, x)


def simulate_gate(
    candidate: ArrayLike,
    baseline: ArrayLike,
    *,
    n: int,
    margin: float,
    true_delta: float,
    repetitions: int,
    seed: int,
    resamples: int = RESAMPLES,
) -> VerdictRates:
    """Verdict rates of the regression check on ``repetitions`` simulated suites of ``n``.

    ``candidate`` and ``baseline`` are paired per-case scores in [0, 1] over a pool of cases
    (two versions of equal quality, or near it: the pool's gap is absorbed by flipping).
    """
    return simulate_gate_grid(
        candidate,
        baseline,
        n=n,
        margins=(margin,),
        true_delta=true_delta,
        repetitions=repetitions,
        seed=seed,
        resamples=resamples,
    )[0]


def simulate_gate_grid(
    candidate: ArrayLike,
    baseline: ArrayLike,
    *,
    n: int,
    margins: tuple[float, ...],
    true_delta: float,
    repetitions: int,
    seed: int,
    resamples: int = RESAMPLES,
) -> list[VerdictRates]:
    """``simulate_gate`` for several margins at once: each suite is compared once."""
    cand = np.asarray(candidate, dtype=np.float64)
    base = np.asarray(baseline, dtype=np.float64)
    if cand.shape != base.shape or cand.ndim != 1 or cand.size == 0:
        raise ValueError("candidate and baseline must be equal-length 1-D pools")
    if repetitions < 1 or n < 1:
        raise ValueError("need n >= 1 and repetitions >= 1")
    rng = generator(seed)
    base_mean, cand_mean = float(base.mean()), float(cand.mean())
    flip_to_delta(cand, base_mean, true_delta, rng)  # refuse an unreachable target up front
    counts = {m: {Status.OK: 0, Status.HOLD: 0, Status.FAIL: 0} for m in margins}
    for _ in range(repetitions):
        idx = rng.integers(0, cand.size, size=n)
        moved = flip_to_delta(cand[idx], base_mean, true_delta, rng, pool_mean=cand_mean)
        comparison = paired_compare(
            moved, base[idx], resamples=resamples, seed=int(rng.integers(1 << 31))
        )
        for m in margins:
            counts[m][regression_check("regression", comparison, m).status] += 1
    return [
        VerdictRates(
            n=n,
            margin=m,
            true_delta=true_delta,
            passes=Rate(counts[m][Status.OK], repetitions),
            holds=Rate(counts[m][Status.HOLD], repetitions),
            fails=Rate(counts[m][Status.FAIL], repetitions),
        )
        for m in margins
    ]


def rate_of(event: Callable[[np.random.Generator], bool], *, trials: int, seed: int) -> Rate:
    """How often ``event(rng)`` is true over ``trials`` draws from one seeded generator."""
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    rng = generator(seed)
    return Rate(sum(bool(event(rng)) for _ in range(trials)), trials)


@dataclass(frozen=True)
class ExactRates:
    """Pass/hold/fail probabilities of the regression check, computed, not simulated."""

    n: int
    margin: float
    passes: float
    holds: float
    fails: float


def exact_binary_rates(
    n: int, margins: tuple[float, ...], p_worse: float, p_better: float, *, tail: float = 1e-10
) -> list[ExactRates]:
    """The regression check's verdict probabilities on pass/fail data, exactly.

    Cases are independent with chance ``p_worse`` that the candidate fails where the baseline
    passes and ``p_better`` the other way, so the counts (worse, better, same) are trinomial
    and the gate's comparison depends on nothing else. Every (worse, better) pair with
    probability above ``tail`` goes through the gate's own ``paired_compare`` and
    ``regression_check``; the probability left out is at most about ``2 * tail * n``.
    """
    if min(p_worse, p_better) < 0.0 or p_worse + p_better > 1.0 or n < 1:
        raise ValueError(f"need n >= 1 and a trinomial, got {n}, {p_worse}, {p_better}")
    from scipy import stats as _scipy_stats  # slow to import: only when needed

    discordant = p_worse + p_better
    share = p_better / discordant if discordant > 0 else 0.0
    m_all = np.arange(n + 1)
    p_m = _scipy_stats.binom.pmf(m_all, n, discordant)
    totals = {margin: dict.fromkeys(Status, 0.0) for margin in margins}
    for m in m_all[p_m > tail].tolist():
        better = np.arange(m + 1)
        p_c = _scipy_stats.binom.pmf(better, m, share) * p_m[m]
        for c, p in zip(better[p_c > tail].tolist(), p_c[p_c > tail].tolist(), strict=True):
            cand = np.ones(n)
            base = np.ones(n)
            cand[: m - c] = 0.0  # worse: the baseline passed, the candidate failed
            base[m - c : m] = 0.0  # better: the other way
            comparison = paired_compare(cand, base)
            for margin in margins:
                totals[margin][regression_check("regression", comparison, margin).status] += p
    return [
        ExactRates(n, margin, t[Status.OK], t[Status.HOLD], t[Status.FAIL])
        for margin, t in totals.items()
    ]


EXACT_SIZE_MAX = 5_000
"""``exact_binary_size`` works up to this many cases (about 1.5 s per look there); beyond it
the discreteness the exact rates correct is below a tenth of a point."""


def exact_binary_size(
    discordance: float,
    margin: float,
    start: int,
    *,
    pass_power: float,
    max_n: int = EXACT_SIZE_MAX,
    looks: int = 6,
) -> tuple[ExactRates, ExactRates] | None:
    """Pass/fail data: the suite size at which an equal-quality candidate passes, exactly.

    The normal approximation behind ``power.decision_size`` promises ``pass_power`` and the
    gate's own score test delivers less (measured on BANKING77's pool, discordance 10%:
    89.7% at M 0.02 and 88.0% at M 0.05 for a promised 90%). Starting from its answer
    ``start``, each look computes the exact rates (``exact_binary_rates``) and, while the
    pass rate is short, grows ``n`` by the normal quantile gap it shows, then bisects back
    to the smallest passing size above the last short one. Returns the rates of
    an equal candidate and of one worse by ``margin`` at the size found (``passes`` of the
    first is at least ``pass_power``), or None when the size passes ``max_n``, the pilot has
    fewer discordant cases than the margin, or ``looks`` were not enough.
    """
    if not 0 < margin <= discordance <= 1 or start < 1:
        return None
    from statistics import NormalDist

    norm = NormalDist()
    target = norm.inv_cdf(0.975) + norm.inv_cdf(pass_power)

    def at(n: int) -> ExactRates:
        return exact_binary_rates(n, (margin,), discordance / 2, discordance / 2)[0]

    short_at, n = start - 1, start
    for _ in range(looks):
        if n > max_n:
            return None
        equal = at(n)
        if equal.passes >= pass_power:
            break
        short = norm.inv_cdf(pass_power) - norm.inv_cdf(max(equal.passes, 1e-9))
        short_at, n = n, max(n + 1, math.ceil(n * ((target + short) / target) ** 2))
    else:
        return None
    while n - short_at > 1:  # the jump may overshoot: bisect back (only passing sizes kept)
        mid = (short_at + n) // 2
        mid_rates = at(mid)
        if mid_rates.passes >= pass_power:
            n, equal = mid, mid_rates
        else:
            short_at = mid
    half = (discordance + margin) / 2, (discordance - margin) / 2
    (worse,) = exact_binary_rates(n, (margin,), *half)
    return equal, worse


def flipped_trinomial(
    candidate: ArrayLike, baseline: ArrayLike, true_delta: float
) -> tuple[float, float]:
    """(p_worse, p_better) of one case after ``flip_to_delta``'s flipping of pass/fail pools."""
    cand = np.asarray(candidate, dtype=np.float64)
    base = np.asarray(baseline, dtype=np.float64)
    worse = float(np.mean((cand == 0) & (base == 1)))
    better = float(np.mean((cand == 1) & (base == 0)))
    mean, target = float(cand.mean()), float(base.mean()) + true_delta
    if target < mean:  # a share q of the candidate's passes become failures
        q = (mean - target) / mean
        return worse + q * float(np.mean((cand == 1) & (base == 1))), (1.0 - q) * better
    q = (target - mean) / (1.0 - mean)  # a share q of its failures become passes
    return (1.0 - q) * worse, better + q * float(np.mean((cand == 0) & (base == 0)))
