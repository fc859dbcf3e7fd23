"""The canary comparison's error rates under repeated looks, beside a naive z-test.

``python benchmarks/bench_canary.py [--repetitions 1000] [--pairs 2000]`` prints two tables.
Data are SYNTHETIC Bernoulli per-run outcomes (an error rate), both arms drawn independently,
one canary run per stable run (pairs); no real data enter.

1. False abort with equal arms, margin 0 (the null's boundary, the hardest case), looking every
   1 / 10 / 100 pairs up to ``--pairs``: ``domain.canary`` (abort when the e-value reaches
   1/alpha = 20) against a naive one-sided two-proportion z-test at 5% (abort when z >= 1.645),
   each look treated as if it were the only one. Wilson 95% intervals.
2. Detection at margin 1 pt, stable error rate 5%, canary 5% .. 20%, look every 10 pairs: share
   aborted within ``--pairs``, median pairs to abort, and share passed (not worse shown after
   200 pairs).
3. Passing: equal arms at 5%, margins 1 / 2 / 5 pt, share passed by 500 / 1,000 / 2,000 pairs.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import numpy.typing as npt

from releasegate.domain.canary import ALPHA, MIN_RUNS, log_wealth
from releasegate.domain.stats import wilson_interval

Bools = npt.NDArray[np.bool_]


def _draw(rng: np.random.Generator, reps: int, pairs: int, p: float) -> npt.NDArray[np.float64]:
    return (rng.random((reps, pairs)) < p).astype(np.float64)


def _e_aborts(d: npt.NDArray[np.float64], margin: float, every: int) -> Bools:
    path, _, _ = log_wealth(d - margin, margin)
    return np.asarray((path[:, every - 1 :: every] >= math.log(1 / ALPHA)).any(axis=1))


def _z_aborts(
    stable: npt.NDArray[np.float64], canary: npt.NDArray[np.float64], every: int
) -> Bools:
    n = np.arange(1, stable.shape[1] + 1)[every - 1 :: every]
    xs = np.cumsum(stable, axis=1)[:, every - 1 :: every]
    xc = np.cumsum(canary, axis=1)[:, every - 1 :: every]
    pooled = (xs + xc) / (2 * n)
    se = np.sqrt(pooled * (1 - pooled) * 2 / n)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se > 0, (xc - xs) / n / np.where(se > 0, se, 1.0), 0.0)
    return np.asarray((z >= 1.6449).any(axis=1))


def _share(hits: npt.ArrayLike) -> str:
    flags = np.asarray(hits, dtype=bool)
    k, n = int(flags.sum()), len(flags)
    lo, hi = wilson_interval(k, n)
    return f"{k / n:6.1%} [{lo:5.1%}, {hi:5.1%}]"


def false_abort_table(reps: int, pairs: int, seed: int) -> None:
    print(f"False abort, equal arms, margin 0, {pairs} pairs, {reps} repetitions (synthetic)")
    print(f"{'rate':>5} {'look every':>10}   {'e-process (canary.py)':>24}   {'naive z-test':>24}")
    rng = np.random.default_rng(seed)
    for p in (0.05, 0.20):
        stable, canary = _draw(rng, reps, pairs, p), _draw(rng, reps, pairs, p)
        for every in (1, 10, 100):
            e = _e_aborts(canary - stable, 0.0, every)
            z = _z_aborts(stable, canary, every)
            print(f"{p:5.0%} {every:>10}   {_share(e):>24}   {_share(z):>24}")
    print("target: <= 5% at every look schedule\n")


def detection_table(reps: int, pairs: int, seed: int) -> None:
    margin, every = 0.01, 10
    print(f"Detection, stable 5%, margin {margin * 100:g} pt, look every {every}, {pairs} pairs")
    print(f"{'canary':>6}   {'aborted':>24}  {'median pairs':>12}   {'passed':>24}")
    rng = np.random.default_rng(seed)
    for pc in (0.05, 0.06, 0.075, 0.10, 0.15, 0.20):
        stable, canary = _draw(rng, reps, pairs, 0.05), _draw(rng, reps, pairs, pc)
        d = canary - stable
        worse, _, _ = log_wealth(d - margin, margin)
        not_worse, _, _ = log_wealth(margin - d, margin)
        threshold = math.log(1 / ALPHA)
        looks = worse[:, every - 1 :: every] >= threshold
        aborted = looks.any(axis=1)
        first = (np.argmax(looks, axis=1) + 1) * every
        median = f"{np.median(first[aborted]):.0f}" if aborted.any() else "-"
        passed = (not_worse[:, MIN_RUNS - 1 :: every] >= threshold).any(axis=1) & ~aborted
        print(f"{pc:6.1%}   {_share(aborted):>24}  {median:>12}   {_share(passed):>24}")
    print()


def pass_table(reps: int, pairs: int, seed: int) -> None:
    every = 10
    checkpoints = [n for n in (500, 1_000, 2_000, 5_000) if n <= pairs]
    print(f"Passing equal arms (5% both), look every {every}, pass allowed from {MIN_RUNS} pairs")
    print(f"{'margin':>6}" + "".join(f"   {'by ' + str(n) + ' pairs':>24}" for n in checkpoints))
    rng = np.random.default_rng(seed)
    for margin in (0.01, 0.02, 0.05):
        d = _draw(rng, reps, pairs, 0.05) - _draw(rng, reps, pairs, 0.05)
        path, _, _ = log_wealth(margin - d, margin)
        hit = path >= math.log(1 / ALPHA)
        cells = [_share(hit[:, MIN_RUNS - 1 : n : every].any(axis=1)) for n in checkpoints]
        print(f"{margin * 100:4g}pt" + "".join(f"   {c:>24}" for c in cells))
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=1_000)
    parser.add_argument("--pairs", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=20261203)
    args = parser.parse_args()
    started = time.perf_counter()
    false_abort_table(args.repetitions, args.pairs, args.seed)
    detection_table(args.repetitions, args.pairs, args.seed + 1)
    pass_table(args.repetitions, args.pairs, args.seed + 2)
    print(f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
