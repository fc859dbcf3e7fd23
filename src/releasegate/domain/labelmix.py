"""The canary's label mix against the stable's, valid however often it is checked.

``monitor``'s label_mix compares two windows once (chi-square, permutations): looking again
every minute at a growing window would inflate its false alarms. A rollout needs the other
kind of test, one whose error rate holds under any number of looks. This is a test
martingale built on the randomisation of the rollout itself.

The null: the canary labels like the stable (the same distribution of labels on either
arm). Runs are taken in blocks of about ``BLOCK_RUNS`` (the store's blocks, consecutive in
arrival order); within a block every run is routed to the canary with the same chance, so
under the null, given the block's labels and its number of canary runs ``C``, which runs
went to the canary is a uniformly random subset: the canary's count of label ``l`` is
hypergeometric with mean ``C * n_l / n``. Each block gets a score per label ``g_l`` in
[0, 1] learnt from earlier blocks only (the smoothed share of label ``l``'s runs the canary
served), and the statistic ``x = (sum_l g_l c_l) / C - sum_l g_l n_l / n`` has mean exactly 0
under the null and is at least ``-gbar`` (``gbar``, the block's mean score). The wealth
multiplies by ``1 + lam * x`` with a stake ``lam`` in ``[0, BET_CAP / gbar]`` chosen from
earlier blocks (GRAPA-style), so it never goes negative and its expectation given the past
is 1: a nonnegative martingale. By Ville's inequality it ever reaches ``1/alpha`` with
probability at most ``alpha``, whatever the routing weight (it changes between steps; the
SDK's cache lags it), however often it is checked: the false-abort rate under the null is
at most ``alpha`` (the rollout splits its 5% over the signals it compares).

A difference in mix is not always a regression, and a huge sample shows tiny ones: the
signal aborts only when the e-value reaches ``1/alpha`` *and* the mixes differ by more than
the margin in total variation (the share of runs whose label would have to change), which
only removes aborts, so the bound stands. It never shows "not worse": it can abort a step,
never hold one. Assumed, as for every canary signal: runs are independent given their arm
(a key sending many requests correlates them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

BET_CAP = 0.5
"""Largest stake, as a share of the most a block's outcome allows (``1 / gbar``)."""

Ints = npt.NDArray[np.int64]


class LabelBlocks(NamedTuple):
    """Runs per (block, label, arm), blocks in arrival order: one row per label present in
    a block, ``block`` non-decreasing."""

    block: Ints
    label: Sequence[str]
    canary: Ints
    stable: Ints


def label_blocks(is_canary: npt.ArrayLike, labels: Sequence[str | None], size: int) -> LabelBlocks:
    """Runs held in memory (arrival order) counted per block of ``size`` runs and label,
    runs without a label left out: what the store's GROUP BY returns."""
    c = np.asarray(is_canary, dtype=np.bool_)
    has = np.asarray([x is not None for x in labels], dtype=np.bool_)
    if not has.any():
        empty = np.zeros(0, dtype=np.int64)
        return LabelBlocks(empty, [], empty, empty)
    names, code = np.unique(np.asarray([x for x in labels if x is not None]), return_inverse=True)
    block = (np.arange(len(labels)) // max(1, size))[has]
    key = block * len(names) + code
    n_keys = (int(block[-1]) + 1) * len(names)
    canary = np.bincount(key, weights=c[has], minlength=n_keys)
    stable = np.bincount(key, weights=~c[has], minlength=n_keys)
    present = np.flatnonzero(canary + stable)
    return LabelBlocks(
        (present // len(names)).astype(np.int64),
        [str(names[i]) for i in (present % len(names)).tolist()],
        canary[present].astype(np.int64),
        stable[present].astype(np.int64),
    )


@dataclass(frozen=True)
class MixState:
    """The martingale so far: log wealth, the runs per label and arm seen, and the sums
    that choose the next stake. JSON-serialisable, updated by ``observe_mix``."""

    log_e: float = 0.0
    counts: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    """label -> (canary runs, stable runs)."""
    total: float = 0.0
    total_sq: float = 0.0
    blocks: int = 0

    @property
    def canary_runs(self) -> int:
        return sum(c for c, _ in self.counts.values())

    @property
    def stable_runs(self) -> int:
        return sum(s for _, s in self.counts.values())

    def distance(self) -> float:
        """Total variation between the canary's and the stable's mixes (NaN: an arm empty)."""
        nc, ns = self.canary_runs, self.stable_runs
        if not nc or not ns:
            return math.nan
        return 0.5 * sum(abs(c / nc - s / ns) for c, s in self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "log_e": self.log_e,
            "counts": {k: list(v) for k, v in self.counts.items()},
            "total": self.total,
            "total_sq": self.total_sq,
            "blocks": self.blocks,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MixState:
        return cls(
            log_e=float(data["log_e"]),
            counts={str(k): (int(v[0]), int(v[1])) for k, v in data["counts"].items()},
            total=float(data["total"]),
            total_sq=float(data["total_sq"]),
            blocks=int(data["blocks"]),
        )


def observe_mix(state: MixState, rows: LabelBlocks) -> MixState:
    """Feed blocks of label counts (``LabelBlocks``) to the martingale (module docstring).
    Vectorised over blocks: a block's scores and stake read only the blocks before it."""
    if len(rows.block) == 0:
        return state
    names = sorted(set(state.counts) | set(rows.label))
    col = {name: i for i, name in enumerate(names)}
    uniq, row_block = np.unique(rows.block, return_inverse=True)
    nb, nl = len(uniq), len(names)
    cn = np.zeros((nb, nl))
    sn = np.zeros((nb, nl))
    cols = np.asarray([col[x] for x in rows.label], dtype=np.int64)
    np.add.at(cn, (row_block, cols), rows.canary)
    np.add.at(sn, (row_block, cols), rows.stable)
    start_c = np.asarray([state.counts.get(x, (0, 0))[0] for x in names], dtype=np.float64)
    start_s = np.asarray([state.counts.get(x, (0, 0))[1] for x in names], dtype=np.float64)
    past_c = start_c + np.cumsum(cn, axis=0) - cn  # before each block
    past_s = start_s + np.cumsum(sn, axis=0) - sn
    # the canary's smoothed share of each label's earlier runs, towards its overall share
    share_c = (past_c.sum(axis=1, keepdims=True) + 1.0) / (
        past_c.sum(axis=1, keepdims=True) + past_s.sum(axis=1, keepdims=True) + 2.0
    )
    g = (past_c + 2.0 * share_c) / (past_c + past_s + 2.0)
    n_l = cn + sn
    n = n_l.sum(axis=1)
    c = cn.sum(axis=1)
    used = (c > 0) & (c < n)  # a block with one arm only says nothing about the mix
    safe_c, safe_n = np.where(used, c, 1.0), np.where(used, n, 1.0)
    gbar = (g * n_l).sum(axis=1) / safe_n
    x = np.where(used, (g * cn).sum(axis=1) / safe_c - gbar, 0.0)
    s1 = state.total + np.cumsum(x) - x
    s2 = state.total_sq + np.cumsum(x * x) - x * x
    cap = BET_CAP / np.maximum(gbar, 1e-9)
    lam = np.where(used, np.clip(s1 / (s2 + 1e-2), 0.0, cap), 0.0)
    log_e = state.log_e + float(np.log1p(lam * x).sum())
    counts = {
        name: (int(start_c[i] + cn[:, i].sum()), int(start_s[i] + sn[:, i].sum()))
        for i, name in enumerate(names)
    }
    return MixState(
        log_e=log_e,
        counts=counts,
        total=state.total + float(x.sum()),
        total_sq=state.total_sq + float((x * x).sum()),
        blocks=state.blocks + int(used.sum()),
    )


class MixVerdict(NamedTuple):
    is_shown: bool
    e_value: float
    distance: float
    reason: str


def judge_mix(state: MixState, alpha: float, margin: float) -> MixVerdict:
    """Abort-worthy when the e-value reaches ``1/alpha`` and the mixes differ by more than
    ``margin`` (total variation); otherwise nothing is shown (never a pass)."""
    e = math.exp(min(state.log_e, 700.0))
    tv = state.distance()
    shown = state.log_e >= math.log(1.0 / alpha) and math.isfinite(tv) and tv > margin
    top = ""
    nc, ns = state.canary_runs, state.stable_runs
    if nc and ns:
        moved = max(state.counts.items(), key=lambda kv: abs(kv[1][0] / nc - kv[1][1] / ns))
        top = (
            f"; most moved: {moved[0]} {moved[1][0] / nc:.1%} of the canary's runs vs "
            f"{moved[1][1] / ns:.1%} of the stable's"
        )
    tv_text = f"{tv:.1%}" if math.isfinite(tv) else "n/a"
    if shown:
        said = (
            f"the canary's label mix differs from the stable's by {tv_text} of runs (total "
            f"variation, margin {margin:.0%}), shown (e-value {e:.3g} >= {1 / alpha:g}; "
            f"false-abort rate <= {alpha:.2%} however often checked)"
        )
    else:
        said = (
            f"mixes differ by {tv_text} of runs (margin {margin:.0%}); e-value {e:.3g}, "
            f"needs {1 / alpha:g} (abort-only: never holds a step)"
        )
    reason = f"label_mix: {nc} canary and {ns} stable runs with a label: {said}{top}"
    return MixVerdict(shown, e, tv, reason)
