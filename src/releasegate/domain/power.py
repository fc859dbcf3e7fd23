"""Planning the precision of an eval: clustered cases, epochs, flaky cases and suite size.

``stats`` says how precise one eval *is*; this module says how to make the next one precise
enough. Everything here is pure (no I/O) and deterministic; it reads the same per-case values
the gate reads (``release.evaluate.case_table``) or the raw ``(cases, epochs)`` matrices they
are averaged from.

- ``clustered_mean_interval``: the mean's interval when cases are not independent. Use it
  when several cases are variants of one underlying item (paraphrases of one incident, turns
  of one conversation, cases generated from one template, cases sharing a tag that names
  their source). Such cases succeed or fail together, so the ordinary standard error, which
  treats them as independent, is too small: by a factor of about ``sqrt(1 + (m - 1) * rho)``
  for clusters of ``m`` cases with intra-cluster correlation ``rho``. The cluster-robust
  (CR1) variance sums residuals within a cluster before squaring, ``V = G / (G - 1) *
  sum_g (sum_{i in g} (x_i - mean))**2 / n**2``, and the interval uses Student's t with
  ``G - 1`` degrees of freedom. With every case its own cluster this is exactly
  ``std(x, ddof=1) / sqrt(n)``. It is a Wald-type interval, so it wants a handful of
  clusters (ten or more); with one cluster nothing is known about the spread and the
  interval is NaN.
- ``epochs_needed``: one-way random-effects decomposition of a score matrix. ``within`` is
  the pooled variance of a case's epochs around its own mean (the model's sampling noise),
  ``between`` the variance of the case means minus ``within / k`` (how much cases differ in
  difficulty). With ``k`` epochs, ``SE(mean)**2 = (between + within / k) / n``; beyond the
  first ``k`` with ``within / k <= 0.1 * between`` more epochs barely help (at most about
  5 % of the SE is left to gain) and more cases are the better spend.
- ``flaky_cases``: cases whose epochs disagree (an errored epoch, NaN, disagrees with a
  scored one).
- ``decision_size``: the suite size the gate's three verdicts need. The gate passes when the
  one-sided 97.5% lower bound ``delta - z * se`` clears ``-margin`` and fails when the upper
  bound ``delta + z * se`` lies below 0 (``z = z_0.975``). With ``sd`` the standard
  deviation of per-case differences and ``se(n) = max(sd / sqrt(n), sqrt(3) / n)`` (the
  gate's rule-of-three floor), an equal-quality candidate passes with probability
  ``Phi(margin / se(n) - z)``; ``decision_size`` is the smallest ``n`` where that reaches
  ``PASS_POWER`` (0.9), about ``((z_0.975 + z_0.9) * sd / margin)**2``. A candidate worse
  by the margin passes with probability ``Phi(-z) = 2.5%`` at every ``n``, so it fails or
  holds at least 97.5% of the time; ``operating_characteristics`` gives pass/hold/fail for
  any true delta (normal approximation; ``benchmarks/bench_decisions.py`` measures them).
- ``plan_suite``: suite size from a pilot comparison: ``decision_size`` on the pilot's
  standard deviation of differences, never fewer than the pilot's ``n``. The floor makes a
  pilot with no discordant cases plan as if ``3 / n`` of them were discordant.
- ``metric_interval``: the interval an eval reports for one per-case metric, choosing between
  the above and ``stats.mean_interval``. A *rate* is a metric whose every epoch scored 0 or 1
  (``pass_rate``, ``label_accuracy``), so each case's value is the share of its epochs that
  passed. Cases sharing a cluster label (fewer clusters than cases): CR1 with t on ``G - 1``
  df, method ``"clustered (G clusters, CR1, t_{G-1})"``. Otherwise binary values get Wilson;
  an epoch-averaged rate gets Wilson on ``n`` cases when ``n < 30`` or fewer than 5 cases'
  worth of passes or failures (``n * min(p, 1 - p) < 5``), where the percentile bootstrap
  collapses onto the boundary; anything else the bootstrap. A clustered rate near 0 or 1
  (``G * min(p, 1 - p) < 5``) is widened to at least Wilson on ``G`` units, since CR1 also
  collapses there (every case passing gives se 0). Wilson on a mean of values in [0, 1] is
  conservative: such values have a variance of at most ``p * (1 - p)``. Rate bounds are
  clipped to [0, 1].
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from releasegate.domain.stats import (
    CONTINUITY,
    FloatArray,
    Interval,
    average_epochs,
    is_binary,
    mean_interval,
    minimum_detectable_effect,
    paired_compare,
    z_value,
)

WITHIN_SHARE = 0.1
"""More epochs barely help once ``within / k`` is at most this share of ``between``."""
MAX_RECOMMENDED_EPOCHS = 10
"""Cap on recommended epochs: past it, spend the budget on cases instead."""
RATE_SMALL_N = 30
"""Fewer independent units than this: a rate's interval is Wilson, not the bootstrap."""
RATE_MIN_COUNT = 5
"""Fewer expected passes or failures than this (``n * min(p, 1 - p)``): Wilson as well."""
PASS_POWER = 0.9
"""A suite sized by ``decision_size`` passes an equal-quality candidate this often."""
RARE_CASES = 3.0
"""Scores that are not pass/fail: the gate adds ``3 / n**2`` to the variance of a mean (the
rule of three: a suite where no case dropped still allows 3 in ``n`` that would, by up to 1)."""
_MAX_DECISION_SIZE = 1 << 40


@dataclass(frozen=True)
class EpochAdvice:
    """How many epochs a suite needs, from a ``(cases, epochs)`` pilot matrix.

    ``se_now`` is the mean's standard error at the observed epochs, ``se_floor`` its limit
    with infinitely many epochs (``sqrt(between / n)``), ``se_recommended`` at ``epochs``.
    ``cases_for_target`` is the suite size that reaches ``target_se`` at ``epochs`` (None
    without a target).
    """

    epochs: int
    observed_epochs: int
    n_cases: int
    within_var: float
    between_var: float
    se_now: float
    se_recommended: float
    se_floor: float
    target_se: float | None
    cases_for_target: int | None
    text: str


@dataclass(frozen=True)
class SuitePlan:
    """Suite size a paired comparison needs so its mde is at most ``margin``.

    ``sd_diff`` is the observed standard deviation of per-case differences as the gate
    computes it (population form for binary McNemar data, ``ddof=1`` otherwise);
    ``discordance`` is the share of cases where binary pass/fail differs (None when the data
    are not binary).
    """

    n_needed: int
    n_pilot: int
    margin: float
    delta: float
    sd_diff: float
    discordance: float | None
    mde_pilot: float
    confidence: float
    power: float
    text: str
    pass_if_equal: float = math.nan
    """Chance an equal-quality candidate passes at ``n_needed`` (exact for pass/fail pilots
    up to 5,000 cases, else the normal approximation)."""
    pass_if_worse: float = math.nan
    """Chance a candidate worse by ``margin`` passes at ``n_needed`` (at most 2.5%)."""


class OperatingCharacteristics(NamedTuple):
    """Chances of each verdict of the paired regression check at one true delta."""

    passes: float
    holds: float
    fails: float


@dataclass(frozen=True)
class DecisionSize:
    """Cases the gate needs so an equal candidate passes ``pass_power`` of the time.

    ``sd`` is the standard deviation of per-case differences it was computed from (the pilot
    variance); ``pass_if_equal`` and ``pass_if_worse`` are the operating characteristics at
    ``n`` for a true delta of 0 and of ``-margin``; ``fail_if_equal`` is the false-fail rate.
    """

    n: int
    sd: float
    margin: float
    confidence: float
    pass_power: float
    pass_if_equal: float
    pass_if_worse: float
    fail_if_equal: float

    def describe(self) -> str:
        """One clause for a hold message or a plan: both operating characteristics."""
        return (
            f"at {self.n} cases an equal-quality candidate passes "
            f"{self.pass_if_equal:.0%} of the time and one worse by {self.margin:.3g} "
            f"passes {self.pass_if_worse:.1%} (sd of differences {self.sd:.3g})"
        )


def decision_se(sd: float, n: int, rare_cases: float = 0.0) -> float:
    """The gate's standard error at ``n`` cases: ``max(sd / sqrt(n), sqrt(3) / n)``.

    ``rare_cases`` (``RARE_CASES`` for scores that are not pass/fail) adds
    ``rare_cases / n**2`` to the variance first, as the gate's small-sample bound does.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return max(math.sqrt(sd * sd / n + rare_cases / (n * n)), math.sqrt(3.0) / n)


def operating_characteristics(
    sd: float,
    n: int,
    margin: float,
    true_delta: float,
    *,
    confidence: float = 0.95,
    rare_cases: float = 0.0,
    continuity: float = 0.0,
) -> OperatingCharacteristics:
    """Pass/hold/fail chances of the regression check (normal approximation).

    Pass: ``delta - z * se >= -margin + continuity / n``; fail: ``delta + z * se < 0``; else
    hold (``z`` two-sided at ``confidence``, so each bound is one-sided at
    ``(1 - confidence) / 2``). ``continuity``: ``CONTINUITY`` for pass/fail data, the cases
    the gate's score test gives away (without it a plan promised 90% and delivered 89.8%).
    """
    if not sd >= 0:
        raise ValueError(f"sd must be >= 0, got {sd}")
    z = z_value(confidence)
    se = decision_se(sd, n, rare_cases)
    norm = NormalDist()
    passes = norm.cdf((true_delta + margin - continuity / n) / se - z)
    fails = norm.cdf(-true_delta / se - z)
    if margin <= 0:  # both rules can hold at once only with a zero margin and then pass wins
        fails = max(0.0, fails - max(0.0, passes + fails - 1.0))
    return OperatingCharacteristics(passes, max(0.0, 1.0 - passes - fails), fails)


def decision_size(
    sd: float,
    margin: float,
    *,
    confidence: float = 0.95,
    pass_power: float = PASS_POWER,
    rare_cases: float = 0.0,
    continuity: float = 0.0,
) -> DecisionSize:
    """Smallest suite at which an equal-quality candidate passes ``pass_power`` of the time.

    ``rare_cases``: ``RARE_CASES`` when the scores are not pass/fail (``decision_se``);
    ``continuity``: ``CONTINUITY`` when they are (``operating_characteristics``).
    """
    if not margin > 0:
        raise ValueError(f"margin must be > 0, got {margin}")
    if not sd >= 0 or not math.isfinite(sd):
        raise ValueError(f"sd must be finite and >= 0, got {sd}")
    z_value(confidence)
    if not 0.0 < pass_power < 1.0:
        raise ValueError(f"pass_power must be in (0, 1), got {pass_power}")

    def ok(n: int) -> bool:
        oc = operating_characteristics(
            sd, n, margin, 0.0, confidence=confidence, rare_cases=rare_cases, continuity=continuity
        )
        return oc.passes >= pass_power

    hi = 1
    while not ok(hi):
        hi *= 2
        if hi > _MAX_DECISION_SIZE:
            raise ValueError("no suite size reaches the pass power")
    lo = hi // 2
    while hi - lo > 1:  # ok(hi) and (lo == 0 or not ok(lo))
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    oc = {"confidence": confidence, "rare_cases": rare_cases, "continuity": continuity}
    at_zero = operating_characteristics(sd, hi, margin, 0.0, **oc)
    at_worse = operating_characteristics(sd, hi, margin, -margin, **oc)
    return DecisionSize(
        n=hi,
        sd=sd,
        margin=margin,
        confidence=confidence,
        pass_power=pass_power,
        pass_if_equal=at_zero.passes,
        pass_if_worse=at_worse.passes,
        fail_if_equal=at_zero.fails,
    )


def clustered_mean_interval(
    values: ArrayLike, clusters: Sequence[Hashable], *, confidence: float = 0.95
) -> Interval:
    """Mean with a cluster-robust (CR1) standard error and a t interval on ``G - 1`` df.

    ``clusters[i]`` labels case ``i``; cases sharing a label are treated as one
    independent unit. ``n == 0`` or a single cluster gives NaN bounds and se (the estimate
    is still the mean when there is one).
    """
    x = _as_cases(values, "values")
    n = x.size
    if len(clusters) != n:
        raise ValueError(f"values has {n} cases but clusters has {len(clusters)} labels")
    z_value(confidence)  # validates the level
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, math.nan, 0, "clustered")
    estimate = float(x.mean())
    codes: dict[Hashable, int] = {}
    group = np.fromiter((codes.setdefault(c, len(codes)) for c in clusters), np.intp, n)
    g = len(codes)
    if g < 2:
        return Interval(estimate, math.nan, math.nan, math.nan, n, "clustered")
    sums = np.bincount(group, weights=x - estimate, minlength=g)
    variance = g / (g - 1) * float(np.sum(sums * sums)) / (n * n)
    se = math.sqrt(variance)
    half = _t_quantile(confidence, g - 1) * se
    return Interval(estimate, estimate - half, estimate + half, se, n, "clustered")


def epochs_needed(
    matrix: ArrayLike, *, target_se: float | None = None, margin: float | None = None
) -> EpochAdvice:
    """Epochs past which more barely shrink the mean's SE; fewer if a target allows.

    ``matrix`` is ``(cases, epochs)`` of scores; NaN marks an errored epoch, which is left
    out of the within-case variance (case means follow ``average_epochs``). ``margin``
    converts to a target SE as ``margin / (z_0.975 + z_0.8)``: the SE at which the mean's
    minimum detectable effect equals the margin. With both, the smaller target wins. A
    reachable target needing fewer epochs than the diminishing-returns point lowers the
    advice; an unreachable one (the between-case variance alone exceeds it) is reported
    with the number of cases that would reach it. Needs at least 2 cases and 2 epochs.
    """
    arr = _as_matrix(matrix)
    n, k = arr.shape
    if n < 2 or k < 2:
        raise ValueError(
            f"need at least 2 cases and 2 epochs to split the variance, got shape {arr.shape}"
        )
    target = _target_se(target_se, margin)
    ok = ~np.isnan(arr)
    counts = ok.sum(axis=1)
    means = average_epochs(arr)
    # centre each row on its first scored epoch first: identical epochs give exact zeros
    first = np.where(counts > 0, arr[np.arange(n), ok.argmax(axis=1)], 0.0)
    shifted = np.where(ok, arr - first[:, np.newaxis], 0.0)
    shifted_means = shifted.sum(axis=1) / np.maximum(counts, 1)
    dev = np.where(ok, shifted - shifted_means[:, np.newaxis], 0.0)
    dof = int(np.sum(np.maximum(counts - 1, 0)))
    within = float(np.sum(dev * dev)) / dof if dof > 0 else 0.0
    k_eff = float(counts.size / np.sum(1.0 / np.maximum(counts, 1)))  # harmonic mean
    between = max(0.0, float(np.var(means, ddof=1)) - within / k_eff)

    def se_at(epochs: float) -> float:
        return math.sqrt((between + within / epochs) / n)

    if within == 0.0:
        best, reason = 1, "every case scores the same in every epoch"
    elif between == 0.0 or within / (WITHIN_SHARE * between) > MAX_RECOMMENDED_EPOCHS:
        best = MAX_RECOMMENDED_EPOCHS
        reason = "epoch noise dominates case-to-case spread; more cases help as much"
    else:
        best = max(1, math.ceil(within / (WITHIN_SHARE * between) - 1e-9))
        reason = f"past {best}, epoch noise is under {WITHIN_SHARE:.0%} of case spread"
    cases_for_target: int | None = None
    if target is not None:
        reachable = n * target * target > between
        if reachable and within > 0.0:
            k_target = max(1, math.ceil(within / (n * target * target - between) - 1e-9))
            if k_target < best:
                best, reason = k_target, f"{k_target} already reach the target SE {target:.4g}"
        cases_for_target = max(1, math.ceil((between + within / best) / (target * target) - 1e-9))
        if se_at(best) > target:
            reason += f"; the target SE {target:.4g} needs {cases_for_target} cases"
    text = (
        f"run {best} epoch{'s' if best != 1 else ''} "
        f"(SE {se_at(best):.4g}, now {se_at(k):.4g} at {k}): {reason}"
    )
    return EpochAdvice(
        epochs=best,
        observed_epochs=k,
        n_cases=n,
        within_var=within,
        between_var=between,
        se_now=se_at(k),
        se_recommended=se_at(best),
        se_floor=math.sqrt(between / n),
        target_se=target,
        cases_for_target=cases_for_target,
        text=text,
    )


def flaky_cases(matrix: ArrayLike, case_ids: Sequence[str]) -> list[str]:
    """Ids of cases whose epochs disagree, in suite order; NaN (errored) counts as a value."""
    arr = _as_matrix(matrix)
    if arr.shape[0] != len(case_ids):
        raise ValueError(f"matrix has {arr.shape[0]} cases but {len(case_ids)} case ids")
    if arr.shape[1] == 0:
        return []
    first = arr[:, :1]
    same = (arr == first) | (np.isnan(arr) & np.isnan(first))
    return [cid for cid, row_same in zip(case_ids, same.all(axis=1), strict=True) if not row_same]


def plan_suite(
    pilot_candidate: ArrayLike,
    pilot_baseline: ArrayLike,
    *,
    margin: float,
    confidence: float = 0.95,
    power: float = PASS_POWER,
    exact_sizes: bool = True,
) -> SuitePlan:
    """Cases needed so an equal-quality candidate passes the gate ``power`` of the time.

    Pass/fail pilots: the size the normal approximation gives is then checked, and grown,
    with the gate's exact pass rate (``calibration.exact_binary_size``, up to 5,000 cases)
    unless ``exact_sizes`` is False; the plan's text says which it is.

    The pilot is per-case values (epochs averaged) of both versions on the same cases. The
    answer is ``decision_size`` on the standard deviation of differences the gate itself
    computes on the pilot (``se * sqrt(n)``, floored), so the plan and the gate cannot drift
    apart; it equals ``paired_compare(..., power=power).cases_needed(margin)``.
    """
    if not margin > 0:
        raise ValueError(f"margin must be > 0, got {margin}")
    cand = _as_cases(pilot_candidate, "pilot_candidate")
    base = _as_cases(pilot_baseline, "pilot_baseline")
    comparison = paired_compare(cand, base, confidence=confidence, power=power, resamples=1)
    n = comparison.n
    binary = is_binary(cand) and is_binary(base)
    oc = {
        "confidence": confidence,
        "rare_cases": 0.0 if binary else RARE_CASES,
        "continuity": CONTINUITY if binary else 0.0,
    }
    size = decision_size(comparison.se * math.sqrt(n), margin, pass_power=power, **oc)
    n_needed = max(n, size.n)
    exact = None
    if binary and exact_sizes and n_needed > n:  # the gate's own score test, computed
        from releasegate.domain.calibration import exact_binary_size  # it imports this module

        # an equal-quality pair as noisy as the pilot: half of sd**2 discordant each way
        exact = exact_binary_size(size.sd**2, margin, n_needed, pass_power=power)
    at_zero = operating_characteristics(size.sd, n_needed, margin, 0.0, **oc)
    at_worse = operating_characteristics(size.sd, n_needed, margin, -margin, **oc)
    pass_equal, pass_worse, how = at_zero.passes, at_worse.passes, "normal approximation"
    if exact is not None:
        n_needed, pass_equal, pass_worse = exact[0].n, exact[0].passes, exact[1].passes
        how = "exact"
    d = cand - base
    discordance: float | None = None
    if is_binary(cand) and is_binary(base):
        discordance = float(np.count_nonzero(d)) / n
        sd = math.sqrt(max(0.0, discordance - comparison.delta**2))
        spread = f"{discordance:.1%} discordant"
    else:
        sd = float(np.std(d, ddof=1)) if n > 1 else 0.0
        spread = f"sd of differences {sd:.4g}"
    verdict = (
        f"needs {n_needed} cases"
        if n_needed > n
        else f"is already met by {n} cases or fewer (the plan never goes below the pilot)"
    )
    text = (
        f"pilot of {n} cases ({spread}, mde {comparison.mde:.4g}): "
        f"a margin of {margin:.4g} {verdict}; "
        + _oc_clause(n_needed, margin, pass_equal, pass_worse)
        + (f" ({how})" if binary else "")
    )
    return SuitePlan(
        n_needed=n_needed,
        n_pilot=n,
        margin=margin,
        delta=comparison.delta,
        sd_diff=sd,
        discordance=discordance,
        mde_pilot=comparison.mde,
        confidence=confidence,
        power=power,
        text=text,
        pass_if_equal=pass_equal,
        pass_if_worse=pass_worse,
    )


def _oc_clause(n: int, margin: float, pass_equal: float, pass_worse: float) -> str:
    return (
        f"at {n} cases an equal-quality candidate passes {pass_equal:.0%} of the time, "
        f"one worse by {margin:.3g} passes {pass_worse:.1%}"
    )


def wilson_rate_interval(rate: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for an observed share ``rate`` of ``n`` independent units.

    ``stats.wilson_interval`` for a share that need not be a whole count over ``n`` (an
    epoch-averaged pass rate, or the mean of cluster means); equal to it when it is. An
    observed 0 keeps the low bound at exactly 0, an observed 1 the high bound at exactly 1.
    ``n == 0`` gives ``(0.0, 1.0)``.
    """
    if n < 0 or not 0.0 <= rate <= 1.0:
        raise ValueError(f"need n >= 0 and 0 <= rate <= 1, got rate={rate}, n={n}")
    z = z_value(confidence)
    if n == 0:
        return (0.0, 1.0)
    z2n = z * z / n
    centre = (rate + z2n / 2.0) / (1.0 + z2n)
    half = z * math.sqrt(rate * (1.0 - rate) / n + z * z / (4.0 * n * n)) / (1.0 + z2n)
    low = 0.0 if rate == 0.0 else max(0.0, centre - half)
    high = 1.0 if rate == 1.0 else min(1.0, centre + half)
    return (low, high)


def rate_needs_wilson(rate: float, units: int) -> bool:
    """Few units, or a rate so near 0 or 1 that a bootstrap or Wald interval collapses."""
    return units < RATE_SMALL_N or units * min(rate, 1.0 - rate) < RATE_MIN_COUNT


def clustered_method(n_clusters: int) -> str:
    """The method name a clustered interval reports, e.g. ``clustered (12 clusters, CR1, t_11)``."""
    if n_clusters < 2:
        return "clustered (1 cluster: no spread between clusters to estimate)"
    return f"clustered ({n_clusters} clusters, CR1, t_{n_clusters - 1})"


def metric_interval(
    values: ArrayLike,
    *,
    clusters: Sequence[Hashable] | None = None,
    is_rate: bool = False,
    confidence: float = 0.95,
    resamples: int = 10_000,
    seed: int = 0,
) -> Interval:
    """The interval an eval reports for one per-case metric (epochs already averaged).

    ``clusters`` labels each case (None: every case independent); clustering applies when
    two or more cases share a label. ``is_rate``: every epoch of every case scored 0 or 1.
    The rules are in the module docstring.
    """
    x = _as_cases(values, "values")
    n = x.size
    z_value(confidence)  # validates the level
    if clusters is not None and len(clusters) != n:
        raise ValueError(f"values has {n} cases but clusters has {len(clusters)} labels")
    g = len(set(clusters)) if clusters is not None else n
    if n >= 2 and clusters is not None and g < n:
        iv = clustered_mean_interval(x, clusters, confidence=confidence)
        method = clustered_method(g)
        if not is_rate:
            return Interval(iv.estimate, iv.low, iv.high, iv.se, n, method)
        rate = min(1.0, max(0.0, iv.estimate))
        se_w = math.sqrt(rate * (1.0 - rate) / g)
        w_low, w_high = wilson_rate_interval(rate, g, confidence)
        if g < 2:  # CR1 knows nothing with one cluster; Wilson on one unit still does
            return Interval(iv.estimate, w_low, w_high, se_w, n, f"{method}, Wilson on 1 cluster")
        low, high, se = max(0.0, iv.low), min(1.0, iv.high), iv.se
        if g * min(rate, 1.0 - rate) < RATE_MIN_COUNT and (w_low < low or w_high > high):
            low, high, se = min(low, w_low), max(high, w_high), max(se, se_w)
            method += f", widened to Wilson on {g} clusters"
        return Interval(iv.estimate, low, high, se, n, method)
    if is_rate and n >= 2 and not is_binary(x):
        rate = min(1.0, max(0.0, float(x.mean())))
        if rate_needs_wilson(rate, n):
            low, high = wilson_rate_interval(rate, n, confidence)
            return Interval(
                float(x.mean()), low, high, math.sqrt(rate * (1.0 - rate) / n), n, "wilson"
            )
    return mean_interval(x, confidence=confidence, resamples=resamples, seed=seed)


def _target_se(target_se: float | None, margin: float | None) -> float | None:
    targets = []
    if target_se is not None:
        if not target_se > 0:
            raise ValueError(f"target_se must be > 0, got {target_se}")
        targets.append(target_se)
    if margin is not None:
        if not margin > 0:
            raise ValueError(f"margin must be > 0, got {margin}")
        targets.append(margin / minimum_detectable_effect(1.0))
    return min(targets) if targets else None


def _t_quantile(confidence: float, df: int) -> float:
    from scipy import stats as _scipy_stats  # slow to import: only when needed

    return float(_scipy_stats.t.ppf(1.0 - (1.0 - confidence) / 2.0, df))


def _as_cases(values: ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one value per case (shape (cases,)), got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def _as_matrix(matrix: ArrayLike) -> FloatArray:
    arr = np.asarray(matrix, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"expected (cases, epochs), got shape {arr.shape}")
    if np.any(np.isinf(arr)):
        raise ValueError("matrix contains infinite values")
    return arr
