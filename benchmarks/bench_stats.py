"""The gate's statistics: how long an interval or a paired comparison takes.

``python benchmarks/bench_stats.py`` prints one table: each figure is the median of 5
runs after one warm-up run, with its target and the ratio measured/target (<= 1 is on
target); the "info" row has no target. The headline contract is ``paired_compare`` over
10,000 cases with 10,000 resamples in <= 0.5 s, binary and continuous. Corpus-metric rows
use the BANKING77 test labels (3,080 cases, 77 intents) when
``../shared/datasets/banking77/`` is present, synthetic labels otherwise.
Speed lives here, never in test asserts.
"""

from __future__ import annotations

import csv
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from releasegate.domain.stats import (
    aggregate_interval,
    average_epochs,
    mean_interval,
    paired_compare,
    paired_compare_aggregate,
)

RUNS = 5
N_CASES = 10_000
RESAMPLES = 10_000
CORPUS_RESAMPLES = 2_000
BANKING77 = Path(__file__).resolve().parents[1].parent / "shared/datasets/banking77/test.csv"


def median_seconds(fn: Callable[[], object]) -> float:
    fn()  # warm-up: imports, allocator, caches
    runs = []
    for _ in range(RUNS):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def gold_labels() -> tuple[np.ndarray, int, str]:
    if BANKING77.exists():
        with BANKING77.open(newline="", encoding="utf-8") as handle:
            names = [row["category"] for row in csv.DictReader(handle)]
        classes = sorted(set(names))
        codes = {name: code for code, name in enumerate(classes)}
        return np.array([codes[name] for name in names]), len(classes), "banking77"
    rng = np.random.default_rng(77)
    return rng.integers(0, 77, size=3_080), 77, "synthetic"


def noisy(gold: np.ndarray, classes: int, accuracy: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    wrong = rng.random(gold.size) > accuracy
    return np.where(wrong, rng.integers(0, classes, size=gold.size), gold)


def macro_f1(gold: np.ndarray, predicted: np.ndarray, classes: int) -> float:
    tp = np.bincount(gold[gold == predicted], minlength=classes)
    fp = np.bincount(predicted, minlength=classes) - tp
    fn = np.bincount(gold, minlength=classes) - tp
    denom = 2 * tp + fp + fn
    present = denom > 0
    return float(np.mean(2 * tp[present] / denom[present]))


def naive_bootstrap_means(x: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Reference only: the textbook kernel (``integers`` + gather) the fast sampler replaces."""
    rng = np.random.default_rng(seed)
    rows = max(1, (1 << 17) // x.size)
    out = np.empty(resamples)
    for lo in range(0, resamples, rows):
        hi = min(lo + rows, resamples)
        out[lo:hi] = x[rng.integers(0, x.size, size=(hi - lo, x.size))].mean(axis=1)
    return out


def main() -> None:
    rng = np.random.default_rng(0)
    baseline = rng.uniform(0.4, 1.0, size=N_CASES)
    continuous = np.clip(baseline + rng.normal(0.01, 0.1, size=N_CASES), 0.0, 1.0)
    base_bin = (rng.random(N_CASES) < 0.80).astype(float)
    cand_bin = np.where(rng.random(N_CASES) < 0.1, 1.0 - base_bin, base_bin)
    epochs_base = (rng.random((N_CASES, 3)) < 0.8).astype(float)
    epochs_cand = (rng.random((N_CASES, 3)) < 0.82).astype(float)
    gold, classes, source = gold_labels()
    pred_base = noisy(gold, classes, 0.88, seed=1)
    pred_cand = noisy(gold, classes, 0.90, seed=2)
    predictions = {"baseline": pred_base, "candidate": pred_cand}
    n_gold = gold.size

    def paired_f1(idx: np.ndarray, which: str) -> float:
        return macro_f1(gold[idx], predictions[which][idx], classes)

    cases = f"{N_CASES:,} cases, {RESAMPLES:,} resamples"
    corpus = f"{n_gold:,} {source} cases, {CORPUS_RESAMPLES:,} resamples"
    rows: list[tuple[str, Callable[[], object], float | None]] = [
        (
            f"paired_compare continuous ({cases})",
            lambda: paired_compare(continuous, baseline, resamples=RESAMPLES),
            0.5,
        ),
        (
            f"paired_compare binary ({cases})",
            lambda: paired_compare(cand_bin, base_bin, resamples=RESAMPLES),
            0.5,
        ),
        (
            f"paired_compare 3 epochs averaged ({cases})",
            lambda: paired_compare(
                average_epochs(epochs_cand), average_epochs(epochs_base), resamples=RESAMPLES
            ),
            0.5,
        ),
        (
            f"mean_interval continuous ({cases})",
            lambda: mean_interval(continuous, resamples=RESAMPLES),
            0.5,
        ),
        (
            f"  info: textbook integers+gather kernel ({cases})",
            lambda: naive_bootstrap_means(continuous - baseline, RESAMPLES, 0),
            None,
        ),
        (f"mean_interval binary ({N_CASES:,} cases)", lambda: mean_interval(cand_bin), 0.5),
        (
            f"aggregate_interval macro-F1 ({corpus})",
            lambda: aggregate_interval(
                lambda idx: macro_f1(gold[idx], pred_cand[idx], classes),
                n_gold,
                resamples=CORPUS_RESAMPLES,
            ),
            1.0,
        ),
        (
            f"paired_compare_aggregate macro-F1 ({corpus})",
            lambda: paired_compare_aggregate(paired_f1, n_gold, resamples=CORPUS_RESAMPLES),
            2.0,
        ),
    ]
    print(f"# releasegate stats benchmark: median of {RUNS} runs, seconds")
    print(f"# Python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs")
    print_rows(rows)


Row = tuple[str, Callable[[], object], float | None]


def print_rows(rows: list[Row]) -> None:
    """Time each row (median of RUNS after a warm-up) and print it beside its target."""
    width = max(len(name) for name, _, _ in rows)
    print(f"{'figure':<{width}}  {'measured':>9}  {'target':>7}  {'ratio':>6}")
    for name, fn, target in rows:
        measured = median_seconds(fn)
        if target is None:
            print(f"{name:<{width}}  {measured:>9.4f}  {'-':>7}  {'-':>6}")
        else:
            print(f"{name:<{width}}  {measured:>9.4f}  {target:>7.2f}  {measured / target:>6.3f}")


if __name__ == "__main__":
    main()
