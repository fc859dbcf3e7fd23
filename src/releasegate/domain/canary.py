"""The canary comparison: stable against canary in the same window, valid however often checked.

Runs of the two arms are paired in arrival order (each run with the newest unpaired run of the
other arm; surplus runs of the busier arm beyond ``MAX_PENDING`` are dropped, oldest first,
without looking at their values). Each pair gives ``D = canary - stable`` in [-1, 1] (0/1
outcomes for rates; values clipped to ``[lower, upper]`` and scaled to [0, 1] for latency or
cost). Two betting e-processes run on the pairs: ``worse`` against "the canary is worse by at
most the margin" (E[D] <= m) and ``not_worse`` against "worse by at least the margin"
(E[D] >= m). Each wealth ``prod(1 + lam_i * x_i)`` is a nonnegative supermartingale under its
null for any predictable ``lam_i`` in [0, 1/2(1+m)] (chosen GRAPA-style from past pairs), so by
Ville's inequality it reaches ``1/alpha`` with probability at most ``alpha`` over all time:
checking every minute does not inflate false aborts. ``abort`` when the worse e-value reaches
``1/alpha``; ``pass`` when the not-worse e-value does and ``min_runs`` pairs are in; else
``hold``. The state is a small frozen, JSON-serialisable value updated incrementally
(``observe``); feeding the same runs in the same order gives the same state, in one batch or many.

``rollout check`` runs the blocked variant (``observe_blocks``): the runs are summed per block
of about ``BLOCK_RUNS`` and per arm (by the database), and an empirical-Bernstein e-process
bets on each block's difference of means; every run counts (no pairing drops the busier
arm's surplus), the same null, the same Ville bound, the same verdicts (``judge``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
from numpy.typing import ArrayLike

from releasegate.errors import InputError

FloatArray = npt.NDArray[np.float64]

ALPHA = 0.05
"""Default error rate: false abort (and false pass at the margin) at most 5%, under any looks."""
MIN_RUNS = 200
"""Default pairs before a step may pass."""
MAX_PENDING = 32
"""Unpaired runs of the busier arm kept for pairing; older ones are dropped unseen."""
BET_CAP = 0.5
"""Fraction of the largest safe bet ever staked (aGRAPA's c): keeps wealth away from ruin."""

Arm = Literal["stable", "canary"]
Outcome = Literal["abort", "pass", "hold"]


@dataclass(frozen=True)
class Bet:
    """One betting e-process: log wealth and the running sums that choose the next stake."""

    log_e: float = 0.0
    total: float = 0.0
    total_sq: float = 0.0


@dataclass(frozen=True)
class ArmTotals:
    """Runs seen on one arm (paired or not), in the signal's own units; ``total_sq`` is
    the sum of squares of the values scaled to [0, 1] (what the blocked test centres on)."""

    runs: int = 0
    total: float = 0.0
    total_sq: float = 0.0

    @property
    def mean(self) -> float:
        return self.total / self.runs if self.runs else math.nan


@dataclass(frozen=True)
class CanaryState:
    """Everything a resumed check needs, for one signal. ``margin`` is in the signal's units."""

    signal: str
    margin: float
    lower: float = 0.0
    upper: float = 1.0
    is_rate: bool = True
    stable: ArmTotals = ArmTotals()
    canary: ArmTotals = ArmTotals()
    pairs: int = 0
    worse: Bet = Bet()
    not_worse: Bet = Bet()
    pending_arm: Arm | None = None
    pending: tuple[float, ...] = ()

    @property
    def scaled_margin(self) -> float:
        return self.margin / (self.upper - self.lower)

    def to_dict(self) -> dict[str, Any]:
        return {
            "signal": self.signal,
            "margin": self.margin,
            "lower": self.lower,
            "upper": self.upper,
            "is_rate": self.is_rate,
            "stable": [self.stable.runs, self.stable.total, self.stable.total_sq],
            "canary": [self.canary.runs, self.canary.total, self.canary.total_sq],
            "pairs": self.pairs,
            "worse": [self.worse.log_e, self.worse.total, self.worse.total_sq],
            "not_worse": [self.not_worse.log_e, self.not_worse.total, self.not_worse.total_sq],
            "pending_arm": self.pending_arm,
            "pending": list(self.pending),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CanaryState:
        return cls(
            signal=str(data["signal"]),
            margin=float(data["margin"]),
            lower=float(data["lower"]),
            upper=float(data["upper"]),
            is_rate=bool(data["is_rate"]),
            stable=_totals(data["stable"]),
            canary=_totals(data["canary"]),
            pairs=int(data["pairs"]),
            worse=Bet(*(float(v) for v in data["worse"])),
            not_worse=Bet(*(float(v) for v in data["not_worse"])),
            pending_arm=data["pending_arm"],
            pending=tuple(float(v) for v in data["pending"]),
        )


def _totals(raw: Sequence[Any]) -> ArmTotals:
    return ArmTotals(int(raw[0]), float(raw[1]), float(raw[2]) if len(raw) > 2 else 0.0)


@dataclass(frozen=True)
class CanaryVerdict:
    """abort (worse shown), pass (not worse shown, enough runs) or hold, with the evidence."""

    outcome: Outcome
    signal: str
    stable_mean: float
    canary_mean: float
    stable_runs: int
    canary_runs: int
    pairs: int
    margin: float
    alpha: float
    e_worse: float
    e_not_worse: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """The verdict as ``rollout check --json`` and ``shadow-replay --json`` print it:
        an arm's mean is null when it had no runs."""
        return {
            "signal": self.signal,
            "outcome": self.outcome,
            "stable": None if self.stable_runs == 0 else self.stable_mean,
            "canary": None if self.canary_runs == 0 else self.canary_mean,
            "stable_runs": self.stable_runs,
            "canary_runs": self.canary_runs,
            "pairs": self.pairs,
            "margin": self.margin,
            "e_worse": self.e_worse,
            "e_not_worse": self.e_not_worse,
            "reason": self.reason,
        }


def rate_state(signal: str, margin: float) -> CanaryState:
    """A fresh comparison of a per-run 0/1 outcome (error, escalation, edit, negative feedback)."""
    _check_margin(margin, 1.0)
    return CanaryState(signal=signal, margin=margin)


def bounded_state(signal: str, margin: float, lower: float, upper: float) -> CanaryState:
    """A fresh comparison of a per-run value (latency, cost) clipped to ``[lower, upper]``.

    Means are of clipped values: a run above ``upper`` counts as ``upper``. Choose ``upper``
    near the stable arm's p99 or the budget, so the scale is not wasted on rare outliers.
    """
    if not (math.isfinite(lower) and math.isfinite(upper) and upper > lower):
        raise InputError(f"canary {signal}: need finite lower < upper, got {lower}, {upper}")
    _check_margin(margin, upper - lower)
    return CanaryState(signal=signal, margin=margin, lower=lower, upper=upper, is_rate=False)


def _check_margin(margin: float, span: float) -> None:
    if not (0.0 <= margin < span):
        raise InputError(f"canary margin must be in [0, {span:g}), got {margin}")


class Pairing(NamedTuple):
    """How runs pair up, from their arms alone (never their values): indices into the
    waiting values followed by the new ones, in the order the pairs formed."""

    canary_idx: npt.NDArray[np.intp]
    stable_idx: npt.NDArray[np.intp]
    is_canary: npt.NDArray[np.bool_]  # per new run
    pending_arm: Arm | None
    pending_idx: tuple[int, ...]


def pair_up(pending_arm: Arm | None, n_pending: int, arms: Sequence[str]) -> Pairing:
    """Pair runs in arrival order: each run with the newest waiting run of the other arm;
    beyond ``MAX_PENDING`` waiting runs the oldest is dropped. It reads only the arms, so
    signals fed the same runs share one pairing (``observe_paired``)."""
    pend = list(range(n_pending))
    arm: Arm | None = pending_arm
    canary_idx: list[int] = []
    stable_idx: list[int] = []
    flags: list[bool] = []
    for k, label in enumerate(arms, start=n_pending):
        if label == "canary":
            is_c = True
        elif label == "stable":
            is_c = False
        else:
            raise InputError(f"canary observe: arm must be 'stable' or 'canary', got {label!r}")
        flags.append(is_c)
        this: Arm = "canary" if is_c else "stable"
        if pend and arm != this:
            other = pend.pop()
            canary_idx.append(k if is_c else other)
            stable_idx.append(other if is_c else k)
            continue
        arm = this
        pend.append(k)
        if len(pend) > MAX_PENDING:
            del pend[0]
    return Pairing(
        np.asarray(canary_idx, dtype=np.intp),
        np.asarray(stable_idx, dtype=np.intp),
        np.asarray(flags, dtype=np.bool_),
        arm if pend else None,
        tuple(pend),
    )


def observe(state: CanaryState, arms: Sequence[str], values: ArrayLike) -> CanaryState:
    """Feed runs in arrival order (``arms[i]`` served run i, with value ``values[i]``)."""
    vals = np.asarray(values, dtype=np.float64)
    if vals.ndim != 1 or len(vals) != len(arms):
        raise InputError("canary observe: one value per arm label, in a flat sequence")
    return observe_paired(state, pair_up(state.pending_arm, len(state.pending), arms), vals)


def observe_paired(state: CanaryState, pairing: Pairing, values: ArrayLike) -> CanaryState:
    """``observe`` with the pairing already made (``pair_up`` from this state's waiting
    runs: the same ``pending_arm`` and as many waiting values)."""
    vals = np.asarray(values, dtype=np.float64)
    if vals.ndim != 1 or len(vals) != len(pairing.is_canary):
        raise InputError("canary observe: one value per arm label, in a flat sequence")
    scaled = _scaled(state, vals)
    every = np.concatenate([np.asarray(state.pending, dtype=np.float64), scaled])
    d = every[pairing.canary_idx] - every[pairing.stable_idx]
    is_c = pairing.is_canary
    n_canary = int(is_c.sum())
    stable = ArmTotals(
        state.stable.runs + len(vals) - n_canary, state.stable.total + float(vals[~is_c].sum())
    )
    canary = ArmTotals(state.canary.runs + n_canary, state.canary.total + float(vals[is_c].sum()))
    m = state.scaled_margin
    return replace(
        state,
        stable=stable,
        canary=canary,
        pairs=state.pairs + len(d),
        worse=_advance(state.worse, d - m, m),
        not_worse=_advance(state.not_worse, m - d, m),
        pending_arm=pairing.pending_arm,
        pending=tuple(every[list(pairing.pending_idx)].tolist()),
    )


def observe_matched(
    state: CanaryState, canary_values: ArrayLike, stable_values: ArrayLike
) -> CanaryState:
    """Feed pairs made elsewhere: ``canary_values[i]`` and ``stable_values[i]`` are one
    pair (in shadow, two runs of the same input). The pairing must not have looked at the
    values; the pairs are bet on in the order given."""
    c = np.asarray(canary_values, dtype=np.float64)
    s = np.asarray(stable_values, dtype=np.float64)
    if c.ndim != 1 or c.shape != s.shape:
        raise InputError("canary observe: one stable value per candidate value, flat")
    d = _scaled(state, c) - _scaled(state, s)
    m = state.scaled_margin
    return replace(
        state,
        stable=ArmTotals(state.stable.runs + len(s), state.stable.total + float(s.sum())),
        canary=ArmTotals(state.canary.runs + len(c), state.canary.total + float(c.sum())),
        pairs=state.pairs + len(d),
        worse=_advance(state.worse, d - m, m),
        not_worse=_advance(state.not_worse, m - d, m),
    )


def _scaled(state: CanaryState, vals: FloatArray) -> FloatArray:
    """Values checked (finite; 0/1 for a rate), clipped to the state's range, scaled to [0, 1]."""
    if not np.all(np.isfinite(vals)):
        raise InputError(f"canary {state.signal}: values must be finite")
    if state.is_rate and not np.all((vals == 0.0) | (vals == 1.0)):
        raise InputError(f"canary {state.signal}: a rate takes 0/1 outcomes per run")
    scaled: FloatArray = (np.clip(vals, state.lower, state.upper) - state.lower) / (
        state.upper - state.lower
    )
    return scaled


def _advance(bet: Bet, x: FloatArray, margin: float) -> Bet:
    if len(x) == 0:
        return bet
    log_e, s1, s2 = log_wealth(x[np.newaxis, :], margin, bet)
    return Bet(float(log_e[0, -1]), float(s1[0]), float(s2[0]))


def log_wealth(
    x: FloatArray, margin: float, start: Bet = Bet()
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Log wealth after each of the bets on ``x`` (shape reps x pairs), vectorised over reps.

    ``x`` has mean <= 0 under the null and is >= -(1 + margin). The stake on pair i is
    ``clip(S1 / (S2 + 1), 0, BET_CAP / (1 + margin))`` from the sums over earlier pairs, so it
    never sees the pair it bets on. Returns the log-wealth path and the final sums.
    """
    s1 = start.total + np.cumsum(x, axis=1)
    s2 = start.total_sq + np.cumsum(x * x, axis=1)
    prev1 = np.concatenate([np.full((x.shape[0], 1), start.total), s1[:, :-1]], axis=1)
    prev2 = np.concatenate([np.full((x.shape[0], 1), start.total_sq), s2[:, :-1]], axis=1)
    stake = np.clip(prev1 / (prev2 + 1.0), 0.0, BET_CAP / (1.0 + margin))
    path = start.log_e + np.cumsum(np.log1p(stake * x), axis=1)
    return path, s1[:, -1], s2[:, -1]


def judge(
    state: CanaryState, alpha: float = ALPHA, min_runs: int = MIN_RUNS, arm: str = "canary"
) -> CanaryVerdict:
    """The verdict for the runs seen so far; call it as often as you like. ``arm`` names
    the candidate's arm in the reason (``shadow`` under a shadow rollout)."""
    if not 0.0 < alpha < 1.0:
        raise InputError(f"canary alpha must be in (0, 1), got {alpha}")
    threshold = math.log(1.0 / alpha)
    e_worse, e_not = _exp(state.worse.log_e), _exp(state.not_worse.log_e)
    outcome: Outcome
    if state.worse.log_e >= threshold:
        outcome = "abort"
        shown = (
            f"worse by more than {_fmt(state.margin, state.is_rate, diff=True)} shown "
            f"(e-value {e_worse:.3g} >= {1 / alpha:g}; false-abort rate <= {alpha * 100:.2g}% "
            "however often checked)"
        )
    elif state.not_worse.log_e >= threshold and state.pairs >= min_runs:
        outcome = "pass"
        shown = (
            f"not worse by more than {_fmt(state.margin, state.is_rate, diff=True)} shown "
            f"(e-value {e_not:.3g} >= {1 / alpha:g}; a {arm} worse by the margin passes "
            f"<= {alpha * 100:.2g}%)"
        )
    else:
        outcome = "hold"
        if state.pairs < min_runs:
            shown = f"too few runs: {state.pairs} paired of {min_runs} needed"
        else:
            shown = "inconclusive"
        shown += f" (e-values worse {e_worse:.3g}, not worse {e_not:.3g}; need {1 / alpha:g})"
    reason = (
        f"{state.signal}: {arm} {_fmt(state.canary.mean, state.is_rate)} "
        f"({state.canary.runs} runs) vs stable {_fmt(state.stable.mean, state.is_rate)} "
        f"({state.stable.runs} runs), {state.pairs} pairs: {shown}"
    )
    return CanaryVerdict(
        outcome=outcome,
        signal=state.signal,
        stable_mean=state.stable.mean,
        canary_mean=state.canary.mean,
        stable_runs=state.stable.runs,
        canary_runs=state.canary.runs,
        pairs=state.pairs,
        margin=state.margin,
        alpha=alpha,
        e_worse=e_worse,
        e_not_worse=e_not,
        reason=reason,
    )


def _exp(log_e: float) -> float:
    return math.exp(min(log_e, 700.0))


def _fmt(value: float, is_rate: bool, diff: bool = False) -> str:
    if math.isnan(value):
        return "n/a"
    if is_rate:
        return f"{value * 100:.1f} pt" if diff else f"{value:.1%}"
    return f"{value:.4g}"


# -- the blocked test: what ``rollout check`` runs on sums the database computed ----------------

BLOCK_RUNS = 64
"""Runs per block (of this rollout's runs, about): the store sums each block per arm."""
STAKE_CAP = 0.5
"""Largest stake per run (``lambda / n`` of its arm in the block), as ``BET_CAP``."""

IntArray = npt.NDArray[np.int64]


class Blocks(NamedTuple):
    """One signal's runs summed per block, blocks in arrival order: per arm the runs, the
    sum and the sum of squares of the values scaled to [0, 1] (``(clip(v) - lower) / span``)."""

    n_stable: IntArray
    n_canary: IntArray
    sum_stable: FloatArray
    sum_canary: FloatArray
    sq_stable: FloatArray
    sq_canary: FloatArray


def blocks_of(is_canary: ArrayLike, scaled: ArrayLike, size: int = BLOCK_RUNS) -> Blocks:
    """Per-run values (already scaled) summed into consecutive blocks of ``size`` runs:
    what the store's GROUP BY returns, for runs held in memory (tests, simulations)."""
    c = np.asarray(is_canary, dtype=np.bool_)
    v = np.asarray(scaled, dtype=np.float64)
    block = np.arange(len(v)) // max(1, size)
    nb = int(block[-1]) + 1 if len(v) else 0

    def total(weights: FloatArray, arm: npt.NDArray[np.bool_]) -> FloatArray:
        return np.asarray(
            np.bincount(block[arm], weights=weights[arm], minlength=nb), dtype=np.float64
        )

    ones = np.ones(len(v))
    return Blocks(
        total(ones, ~c).astype(np.int64),
        total(ones, c).astype(np.int64),
        total(v, ~c),
        total(v, c),
        total(v * v, ~c),
        total(v * v, c),
    )


def _psi(gamma: FloatArray) -> FloatArray:
    return -np.log1p(-gamma) - gamma


def observe_blocks(state: CanaryState, b: Blocks) -> CanaryState:
    """Feed blocks of runs (``Blocks``, values scaled to [0, 1]) to both e-processes.

    The blocked empirical-Bernstein e-process (Howard et al. 2021, Thm. 4 applied per run;
    Waudby-Smith & Ramdas 2024): in block b with ``nc`` canary and ``ns`` stable runs and
    the difference of means ``D``, ``worse`` multiplies by
    ``exp(lam (D - m) - psi(lam/nc) Qc - psi(lam/ns) Qs)`` where ``psi(g) = -log(1-g) - g``,
    ``Qc`` is the sum over the block's canary runs of ``(v - c)^2`` around the canary mean
    of earlier blocks ``c`` (``Qs`` likewise). For one run of value ``v`` in [0, 1] and any
    centre and stake ``g`` in [0, 1) fixed before it, ``E exp(g (v - mu) - psi(g)(v - c)^2)
    <= 1`` (Fan's inequality), so the product over the block's independent runs has
    expectation at most 1 whenever ``mu_c - mu_s <= m``: a nonnegative supermartingale, and
    by Ville's inequality it reaches ``1/alpha`` with probability at most ``alpha`` however
    often it is looked at. ``not_worse`` is the mirror image. ``lam`` is chosen from earlier
    blocks (the estimated gap over the estimated variance of ``D``) and the block's arm
    counts only, capped so no run is staked more than ``STAKE_CAP``. Blocks with one arm
    only feed the means, not the bets. Sums of blocks are all it needs: the database adds.
    """
    nc = np.asarray(b.n_canary, dtype=np.float64)
    ns = np.asarray(b.n_stable, dtype=np.float64)
    if len(nc) == 0:
        return state
    span = state.upper - state.lower
    sc, ss = np.asarray(b.sum_canary, np.float64), np.asarray(b.sum_stable, np.float64)
    qc, qs = np.asarray(b.sq_canary, np.float64), np.asarray(b.sq_stable, np.float64)

    def before(start: float, x: FloatArray) -> FloatArray:  # totals of the earlier blocks
        return start + np.concatenate([[0.0], np.cumsum(x)[:-1]])

    def scaled_total(t: ArmTotals) -> float:
        return (t.total - state.lower * t.runs) / span

    n_c0, n_s0 = before(state.canary.runs, nc), before(state.stable.runs, ns)
    s_c0 = before(scaled_total(state.canary), sc)
    s_s0 = before(scaled_total(state.stable), ss)
    q_c0, q_s0 = before(state.canary.total_sq, qc), before(state.stable.total_sq, qs)
    centre_c, centre_s = (s_c0 + 0.5) / (n_c0 + 1.0), (s_s0 + 0.5) / (n_s0 + 1.0)
    var_c = np.maximum((q_c0 - 2 * centre_c * s_c0 + n_c0 * centre_c**2 + 0.25) / (n_c0 + 1), 1e-3)
    var_s = np.maximum((q_s0 - 2 * centre_s * s_s0 + n_s0 * centre_s**2 + 0.25) / (n_s0 + 1), 1e-3)
    both = (nc > 0) & (ns > 0)
    safe_c, safe_s = np.where(both, nc, 1.0), np.where(both, ns, 1.0)
    d = np.where(both, sc / safe_c - ss / safe_s, 0.0)
    dev_c = qc - 2 * centre_c * sc + nc * centre_c**2
    dev_s = qs - 2 * centre_s * ss + ns * centre_s**2
    var_d = var_c / safe_c + var_s / safe_s
    cap = STAKE_CAP * np.minimum(safe_c, safe_s)
    m = state.scaled_margin
    gap = centre_c - centre_s

    def bet(start: Bet, edge: FloatArray, shown: FloatArray) -> Bet:
        lam = np.where(both, np.clip(edge / var_d, 0.0, cap), 0.0)
        step = lam * shown - _psi(lam / safe_c) * dev_c - _psi(lam / safe_s) * dev_s
        return Bet(start.log_e + float(step.sum()), start.total, start.total_sq)

    k_c, k_s = int(nc.sum()), int(ns.sum())
    return replace(
        state,
        stable=ArmTotals(
            state.stable.runs + k_s,
            state.stable.total + state.lower * k_s + span * float(ss.sum()),
            state.stable.total_sq + float(qs.sum()),
        ),
        canary=ArmTotals(
            state.canary.runs + k_c,
            state.canary.total + state.lower * k_c + span * float(sc.sum()),
            state.canary.total_sq + float(qc.sum()),
        ),
        pairs=state.pairs + int(np.minimum(nc, ns)[both].sum()),
        worse=bet(state.worse, gap - m, d - m),
        not_worse=bet(state.not_worse, m - gap, m - d),
        pending_arm=None,
        pending=(),
    )
