"""Intervals and paired comparisons: the statistical contract of the gate.

A gate compares a candidate with the baseline on the same cases, so every comparison is
paired (``candidate[i]`` and ``baseline[i]`` are one case) and reported as a delta with an
interval, an effective standard error, a minimum detectable effect and a p-value. The rules:

- Binary paired metric (every value of both arrays in {0, 1}): McNemar. ``b`` = worse
  (baseline 1, candidate 0), ``c`` = better, ``m = b + c``, ``delta = (c - b) / n``,
  ``var = (b + c - (c - b)**2 / n) / n**2``. ``m < 25``: Clopper-Pearson on ``c / m`` mapped
  to delta by ``(m / n) * (2p - 1)``, exact binomial p-value. Otherwise Wald interval and
  chi-square with continuity correction. ``m == 0``: delta 0, p-value 1.
- Anything else: seeded percentile bootstrap of ``mean(candidate - baseline)``, p-value
  ``2 * min(P(d* <= 0), P(d* >= 0))`` clipped to 1; observed se ``std(d, ddof=1) / sqrt(n)``.
- SE floor (rule of three): ``se_eff = max(se_observed, sqrt(3) / n)``, because zero
  discordant cases out of n still allow a discordance rate of 3/n. The interval is widened to
  at least ``delta +- z * se_eff`` (never clipped, so it may leave [-1, 1] on tiny suites) and
  ``mde = (z_{1-alpha/2} + z_power) * se_eff``. A tiny suite can never look precise.
- Corpus metrics (macro-F1) are bootstrapped over resampled case-index arrays; the paired
  version hands the same indices to candidate and baseline. Same floor and widening.
- One version's mean (``mean_interval``): Wilson if binary, else percentile bootstrap;
  n == 0 gives NaN, n == 1 the value itself (nothing to resample).
- Same inputs and seed, same numbers: every random draw comes from a generator seeded with
  ``seed`` (SFC64: the fastest of numpy's bit generators, and it passes BigCrush).
- An empty comparison raises ``ValueError``: a gate must never pass on nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from numpy.typing import ArrayLike

FloatArray = npt.NDArray[np.float64]
IndexArray = npt.NDArray[np.intp]

MAX_DISTINCT_FOR_MULTINOMIAL = 64
"""At most this many distinct values: bootstrap means drawn exactly from a multinomial."""
EXACT_MCNEMAR_BELOW = 25
"""Fewer discordant pairs than this: exact (binomial) McNemar; otherwise Wald/chi-square."""
_CHUNK_ELEMENTS = 1 << 17
"""Resampled indices per chunk in the gather kernel: about 2 MB, so it stays in cache."""
_MAX_FAST_GATHER = 1 << 24
"""Above this many cases the 32-bit index sampler rejects too often; use ``integers``."""


@dataclass(frozen=True)
class Interval:
    """A point estimate with its interval; ``method`` says how it was computed."""

    estimate: float
    low: float
    high: float
    se: float
    n: int
    method: str


CONTINUITY = 0.5
"""Pass/fail data: the non-inferiority score test's continuity correction, in cases
(``scoretest.paired_score_z``): without it a candidate worse by the margin passed up to
2.7% of the time at some suite sizes. Sizing charges it too (``cases_needed``,
``power.decision_size``)."""


@dataclass(frozen=True)
class PairedComparison:
    """Candidate minus baseline on the same cases, as the gate reads it."""

    delta: float
    low: float
    high: float
    se: float
    mde: float
    n: int
    method: str
    p_value: float
    worse: int
    better: int

    def cases_needed(self, margin: float) -> int:
        """Suite size at which the mde would shrink to ``margin`` (se scales as 1/sqrt(n)).

        Pass/fail data (a McNemar comparison) also pays the gate's continuity correction:
        the pass rule asks the lower bound to clear ``-margin + CONTINUITY / n``, so the
        size solves ``mde(n) + CONTINUITY / n <= margin``.
        """
        if not margin > 0:
            raise ValueError(f"margin must be > 0, got {margin}")
        if not math.isfinite(self.mde):
            raise ValueError("mde is not finite; cannot size a suite from it")
        continuity = CONTINUITY if self.method.startswith("mcnemar") else 0.0
        needed = _cases_for(self.mde * math.sqrt(self.n), continuity, margin)
        return max(self.n, needed)


def _cases_for(mde_at_one: float, continuity: float, margin: float) -> int:
    """Smallest n with ``mde_at_one / sqrt(n) + continuity / n <= margin``."""
    if continuity <= 0:
        return math.ceil((mde_at_one / margin) ** 2 - 1e-9)
    # with x = 1 / sqrt(n): continuity * x**2 + mde_at_one * x - margin <= 0
    root = (-mde_at_one + math.sqrt(mde_at_one**2 + 4 * continuity * margin)) / (2 * continuity)
    return math.ceil(1.0 / root**2 - 1e-9)


class _Paired(NamedTuple):
    delta: float
    low: float
    high: float
    se: float
    method: str
    p_value: float
    worse: int
    better: int


def z_value(confidence: float) -> float:
    """Two-sided normal quantile for ``confidence`` (1.96 at 0.95)."""
    _check_level(confidence, "confidence")
    return NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)


def minimum_detectable_effect(se: float, confidence: float = 0.95, power: float = 0.8) -> float:
    """Smallest true delta the test would detect with probability ``power``."""
    _check_level(power, "power")
    return (z_value(confidence) + NormalDist().inv_cdf(power)) * se


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval: honest near 0 and 1, where the Wald interval collapses.

    ``n == 0`` gives ``(0.0, 1.0)``: nothing observed, nothing excluded.
    """
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    z = z_value(confidence)
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    z2n = z * z / n
    centre = (p + z2n / 2.0) / (1.0 + z2n)
    half = z * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / (1.0 + z2n)
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return (low, high)


def average_epochs(values: ArrayLike) -> FloatArray:
    """Per-case mean over epochs, ignoring errored (NaN) epochs; an all-NaN case scores 0.0.

    A case whose every epoch errored counts as a failure, not as a missing case, so errors
    cannot make a version look better. A 1-D input is one epoch per case.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, np.newaxis]
    if arr.ndim != 2:
        raise ValueError(f"expected (cases, epochs), got shape {arr.shape}")
    ok = ~np.isnan(arr)
    counts = ok.sum(axis=1)
    sums = np.where(ok, arr, 0.0).sum(axis=1)
    means: FloatArray = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
    return means


def bootstrap_means(values: ArrayLike, resamples: int, seed: int) -> FloatArray:
    """``resamples`` means of with-replacement resamples of ``values``, deterministically.

    Few distinct values: the resample mean is exactly ``multinomial(n, freqs) @ uniq / n``.
    Categories are ordered by first occurrence, so negating the data negates every mean
    exactly (swapping candidate and baseline mirrors the interval). Otherwise indices are
    gathered in cache-sized chunks.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    n = x.size
    if n == 0:
        raise ValueError("cannot bootstrap an empty sample")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    rng = generator(seed)
    uniq, first, counts = np.unique(x, return_index=True, return_counts=True)
    if uniq.size <= MAX_DISTINCT_FOR_MULTINOMIAL:
        order = np.argsort(first)
        draws = rng.multinomial(n, counts[order] / n, size=resamples)
        means: FloatArray = (draws @ uniq[order]) / n
        return means
    return _gather_means(x, resamples, rng)


def _gather_means(x: FloatArray, resamples: int, rng: np.random.Generator) -> FloatArray:
    """Bootstrap means by gathering resampled case indices, in cache-sized chunks."""
    n = x.size
    out = np.empty(resamples, dtype=np.float64)
    rows = max(1, _CHUNK_ELEMENTS // n)
    flat = np.empty(rows * n, dtype=np.intp)
    for lo in range(0, resamples, rows):
        hi = min(lo + rows, resamples)
        chunk = flat[: (hi - lo) * n]
        _fill_uniform_indices(rng, n, chunk)
        out[lo:hi] = x[chunk.reshape(hi - lo, n)].sum(axis=1) / n
    return out


def _fill_uniform_indices(rng: np.random.Generator, n: int, out: IndexArray) -> None:
    """Fill ``out`` with independent uniform draws from [0, n): exact, about 2x ``integers``.

    Raw 32-bit words map to indices in ``_indices_from_bits``; the rare rejected words
    (probability < n / 2**32) are redrawn with ``rng.integers``, so nothing is biased.
    """
    if n > _MAX_FAST_GATHER:
        out[:] = rng.integers(0, n, size=out.size)
        return
    raw = rng.bit_generator.random_raw((out.size + 1) // 2).view(np.uint32)[: out.size]
    rejected = _indices_from_bits(raw, n, out)
    if rejected.size:
        out[rejected] = rng.integers(0, n, size=rejected.size)


def _indices_from_bits(raw: npt.NDArray[np.uint32], n: int, out: IndexArray) -> IndexArray:
    """Write ``r // q`` (``q = 2**32 // n``) to ``out``; return positions where ``r >= n * q``.

    Below ``n * q`` every index has exactly ``q`` preimages, so accepted draws are uniform.
    """
    if n == 1:
        out[:] = 0
        return np.empty(0, dtype=np.intp)
    q = (1 << 32) // n
    np.floor_divide(raw, np.uint32(q), out=out, casting="unsafe")
    if int(raw.max()) < n * q:
        return np.empty(0, dtype=np.intp)
    return np.flatnonzero(raw >= n * q)


def mean_interval(
    values: ArrayLike, *, confidence: float = 0.95, resamples: int = 10_000, seed: int = 0
) -> Interval:
    """Interval for a per-case mean (epochs already averaged).

    Binary values get Wilson (exact enough and free); anything else a percentile bootstrap.
    ``n == 0`` is all NaN; ``n == 1`` is the value itself (method ``"mean"``).
    """
    x = _as_cases(values, "values")
    n = x.size
    _check_level(confidence, "confidence")
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, math.nan, 0, "mean")
    estimate = float(x.mean())
    if n == 1:
        return Interval(estimate, estimate, estimate, 0.0, 1, "mean")
    if is_binary(x):
        successes = int(x.sum())
        low, high = wilson_interval(successes, n, confidence)
        se = math.sqrt(estimate * (1.0 - estimate) / n)
        return Interval(estimate, low, high, se, n, "wilson")
    boot = bootstrap_means(x, resamples, seed)
    low, high = _percentiles(boot, confidence)
    se = float(np.std(x, ddof=1)) / math.sqrt(n)
    return Interval(estimate, low, high, se, n, "bootstrap")


def aggregate_interval(
    fn: Callable[[IndexArray], float],
    n: int,
    *,
    confidence: float = 0.95,
    resamples: int = 2_000,
    seed: int = 0,
) -> Interval:
    """Interval for a corpus metric (macro-F1) that is not a mean of per-case values.

    ``fn(indices)`` computes the metric on those cases; the bootstrap resamples case
    indices. Resamples where the metric is undefined (NaN) are dropped.
    """
    _check_level(confidence, "confidence")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, math.nan, 0, "mean")
    estimate = float(fn(np.arange(n)))
    if n == 1:
        return Interval(estimate, estimate, estimate, 0.0, 1, "mean")
    rng = generator(seed)
    reps = np.array([fn(rng.integers(0, n, size=n)) for _ in range(resamples)], dtype=float)
    reps = reps[np.isfinite(reps)]
    if reps.size < 2:
        return Interval(estimate, math.nan, math.nan, math.nan, n, "bootstrap")
    low, high = _percentiles(reps, confidence)
    return Interval(estimate, low, high, float(np.std(reps, ddof=1)), n, "bootstrap")


def paired_compare(
    candidate: ArrayLike,
    baseline: ArrayLike,
    *,
    confidence: float = 0.95,
    power: float = 0.8,
    resamples: int = 10_000,
    seed: int = 0,
) -> PairedComparison:
    """Candidate versus baseline on the same cases: McNemar if binary, else paired bootstrap."""
    cand = _as_cases(candidate, "candidate")
    base = _as_cases(baseline, "baseline")
    if cand.shape != base.shape:
        raise ValueError(f"candidate has {cand.size} cases but baseline has {base.size}")
    n = cand.size
    if n == 0:
        raise ValueError("no cases to compare: a gate cannot decide on an empty suite")
    _check_level(confidence, "confidence")
    _check_level(power, "power")
    if is_binary(cand) and is_binary(base):
        raw = _mcnemar(cand, base, confidence)
    else:
        raw = _paired_bootstrap(cand - base, confidence, resamples, seed)
    return _with_floor(raw, n, confidence, power)


def paired_compare_aggregate(
    fn: Callable[[IndexArray, str], float],
    n: int,
    *,
    confidence: float = 0.95,
    power: float = 0.8,
    resamples: int = 2_000,
    seed: int = 0,
) -> PairedComparison:
    """Paired bootstrap of a corpus metric: both versions see the same resampled cases.

    ``fn(indices, which)`` with ``which`` in {"candidate", "baseline"}. A corpus metric has
    no per-case direction, so ``worse`` and ``better`` are 0.
    """
    if n < 1:
        raise ValueError("no cases to compare: a gate cannot decide on an empty suite")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    _check_level(confidence, "confidence")
    _check_level(power, "power")

    def diff(indices: IndexArray) -> float:
        return float(fn(indices, "candidate")) - float(fn(indices, "baseline"))

    delta = diff(np.arange(n))
    if not math.isfinite(delta):
        raise ValueError("the metric is not finite on the full suite")
    rng = generator(seed)
    reps = np.array([diff(rng.integers(0, n, size=n)) for _ in range(resamples)], dtype=float)
    reps = reps[np.isfinite(reps)]
    if reps.size == 0:
        raise ValueError("the metric is not finite on any bootstrap resample")
    low, high = _percentiles(reps, confidence)
    se = float(np.std(reps, ddof=1)) if reps.size > 1 else 0.0
    raw = _Paired(delta, low, high, se, "paired-bootstrap", _bootstrap_p(reps), 0, 0)
    return _with_floor(raw, n, confidence, power)


def _mcnemar(cand: FloatArray, base: FloatArray, confidence: float) -> _Paired:
    n = cand.size
    b = int(np.count_nonzero((base == 1.0) & (cand == 0.0)))
    c = int(np.count_nonzero((base == 0.0) & (cand == 1.0)))
    m = b + c
    delta = (c - b) / n
    var = max(0.0, (b + c - (c - b) ** 2 / n) / n**2)
    se = math.sqrt(var)
    if m == 0:
        return _Paired(0.0, 0.0, 0.0, 0.0, "mcnemar-exact", 1.0, 0, 0)
    if m < EXACT_MCNEMAR_BELOW:
        alpha = 1.0 - confidence
        from scipy import stats as _scipy_stats  # slow to import: only when needed

        beta = _scipy_stats.beta
        p_low = 0.0 if c == 0 else float(beta.ppf(alpha / 2.0, c, m - c + 1))
        p_high = 1.0 if c == m else float(beta.ppf(1.0 - alpha / 2.0, c + 1, m - c))
        scale = m / n
        p_value = float(_scipy_stats.binomtest(c, m, 0.5).pvalue)
        low, high = scale * (2.0 * p_low - 1.0), scale * (2.0 * p_high - 1.0)
        return _Paired(delta, low, high, se, "mcnemar-exact", min(1.0, p_value), b, c)
    z = z_value(confidence)
    chi2 = max(abs(c - b) - 1, 0) ** 2 / m
    p_value = math.erfc(math.sqrt(chi2 / 2.0))  # chi-square with 1 df: P(X > x)
    return _Paired(delta, delta - z * se, delta + z * se, se, "mcnemar", p_value, b, c)


def _paired_bootstrap(d: FloatArray, confidence: float, resamples: int, seed: int) -> _Paired:
    n = d.size
    boot = bootstrap_means(d, resamples, seed)
    low, high = _percentiles(boot, confidence)
    se = float(np.std(d, ddof=1)) / math.sqrt(n) if n > 1 else 0.0
    worse = int(np.count_nonzero(d < 0))
    better = int(np.count_nonzero(d > 0))
    delta = float(d.mean())
    return _Paired(delta, low, high, se, "paired-bootstrap", _bootstrap_p(boot), worse, better)


def _with_floor(raw: _Paired, n: int, confidence: float, power: float) -> PairedComparison:
    """Apply the rule-of-three SE floor and widen the interval to match it."""
    z = z_value(confidence)
    se_eff = max(raw.se, math.sqrt(3.0) / n)
    return PairedComparison(
        delta=raw.delta,
        low=min(raw.low, raw.delta - z * se_eff),
        high=max(raw.high, raw.delta + z * se_eff),
        se=se_eff,
        mde=minimum_detectable_effect(se_eff, confidence, power),
        n=n,
        method=raw.method,
        p_value=raw.p_value,
        worse=raw.worse,
        better=raw.better,
    )


def _bootstrap_p(boot: FloatArray) -> float:
    below = float(np.mean(boot <= 0.0))
    above = float(np.mean(boot >= 0.0))
    return min(1.0, 2.0 * min(below, above))


def _percentiles(boot: FloatArray, confidence: float) -> tuple[float, float]:
    alpha = 1.0 - confidence
    low, high = np.quantile(boot, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def _as_cases(values: ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be one value per case (shape (cases,)), got shape {arr.shape}; "
            "average epochs first with average_epochs()"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def is_binary(x: FloatArray) -> bool:
    return bool(np.all((x == 0.0) | (x == 1.0)))


def generator(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.SFC64(seed))


def _check_level(level: float, name: str) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {level}")
