"""The monitor's drift statistics: how long one window comparison takes.

``python benchmarks/bench_drift.py`` prints one table: each figure is the median of 5 runs
after one warm-up run, with its target and the ratio measured/target (<= 1 is on target);
"info" rows have no target. The contracts: every scalar signal of ``compare_windows`` (four
rates, latency p50/p95, cost per task, output length p50 and distribution, label mix) over
1,000,000 vs 1,000,000 runs in <= 2 s, and embedding drift on 2,000 vs 2,000 embeddings
(384-d, 200 permutations) in <= 1 s once the embeddings exist. Runs and embeddings are
synthetic (seeded): the timings do not depend on their content.
Speed lives here, never in test asserts.
"""

from __future__ import annotations

import os
import platform

import numpy as np

from bench_stats import RUNS, Row, print_rows
from releasegate.domain.drift import Window, compare_windows, embedding_drift_signal
from releasegate.domain.mmd import mmd_test

N_RUNS = 1_000_000
N_EMBED = 2_000
DIMS = 384
INTENTS = [f"intent_{i:02d}" for i in range(20)]


def runs(seed: int, n: int, *, codes: bool = False) -> Window:
    """One window of ``n`` synthetic runs with every scalar column filled."""
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(INTENTS), size=n)
    labels = picks if codes else [INTENTS[i] for i in picks.tolist()]
    return Window(
        errors=rng.random(n) < 0.012,
        latency=rng.lognormal(6.5, 0.4, size=n),
        cost=rng.gamma(2.0, 0.002, size=n),
        escalated=rng.random(n) < 0.05,
        edited=rng.random(n) < 0.1,
        negative_feedback=np.where(rng.random(n) < 0.2, rng.random(n) < 0.1, np.nan),
        output_length=rng.poisson(120, size=n).astype(float),
        labels=labels,
    )


def embeddings(seed: int, n: int) -> np.ndarray:
    """Unit rows sharing a common direction, as sentence embeddings do."""
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(n, DIMS)).astype(np.float32) + 2.0
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return rows


def main() -> None:
    reference, current = runs(0, N_RUNS), runs(1, N_RUNS)
    ref_codes, cur_codes = runs(0, N_RUNS, codes=True), runs(1, N_RUNS, codes=True)
    no_labels = Window(**{**vars(reference), "labels": None})
    no_labels_cur = Window(**{**vars(current), "labels": None})
    ref_vec, cur_vec = embeddings(2, N_EMBED), embeddings(3, N_EMBED)
    big_ref, big_cur = embeddings(4, 5 * N_EMBED), embeddings(5, 5 * N_EMBED)
    million = f"{N_RUNS:,} vs {N_RUNS:,} runs"
    pair = f"{N_EMBED:,} vs {N_EMBED:,} x {DIMS}, 200 permutations"
    rows: list[Row] = [
        (
            f"compare_windows, all scalar signals ({million}, string labels)",
            lambda: compare_windows(reference, current),
            2.0,
        ),
        (
            f"  info: same, labels as integer codes ({million})",
            lambda: compare_windows(ref_codes, cur_codes),
            None,
        ),
        (
            f"  info: same, without the label mix ({million})",
            lambda: compare_windows(no_labels, no_labels_cur),
            None,
        ),
        (
            f"embedding_drift_signal MMD^2 ({pair})",
            lambda: embedding_drift_signal(ref_vec, cur_vec),
            1.0,
        ),
        (
            f"  info: mmd_test, 1,000 permutations ({N_EMBED:,} vs {N_EMBED:,})",
            lambda: mmd_test(ref_vec, cur_vec, permutations=1_000),
            None,
        ),
        (
            f"  info: embedding_drift_signal, {5 * N_EMBED:,} each, capped to {N_EMBED:,}",
            lambda: embedding_drift_signal(big_ref, big_cur),
            None,
        ),
    ]
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"# releasegate drift benchmark: median of {RUNS} runs, seconds")
    print(
        f"# Python {platform.python_version()}, numpy {np.__version__}, "
        f"{os.cpu_count()} CPUs, load average {load}"
    )
    print_rows(rows)


if __name__ == "__main__":
    main()
