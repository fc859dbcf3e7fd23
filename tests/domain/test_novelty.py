"""Novel inputs: runs farther from the reference than its own 99th-percentile neighbour."""

from __future__ import annotations

import numpy as np

from releasegate.domain.novelty import novel_inputs, novelty_signal


def clusters(rng: np.random.Generator, centres: np.ndarray, n: int) -> np.ndarray:
    picks = rng.integers(0, len(centres), size=n)
    rows = centres[picks] + 0.15 * rng.normal(size=(n, centres.shape[1]))
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_a_fifth_of_the_window_on_a_new_topic_alerts_and_is_named() -> None:
    rng = np.random.default_rng(0)
    known, unknown = rng.normal(size=(20, 32)), rng.normal(size=(1, 32))
    reference = clusters(rng, known, 1_000)
    current = np.vstack([clusters(rng, known, 80), clusters(rng, unknown, 20)])
    texts = [f"bank question {i}" for i in range(80)] + [f"router down {i}" for i in range(20)]
    signal = novelty_signal(reference, current, texts=texts)
    assert signal.status == "alert", signal.detail
    assert signal.value >= 0.2 and signal.p_value is not None and signal.p_value < 0.01
    assert "novel: 'router down" in signal.detail
    found = novel_inputs(reference, current)
    assert set(range(80, 100)) <= set(found.novel)


def test_no_shift_is_ok_and_a_tiny_window_is_insufficient() -> None:
    rng = np.random.default_rng(1)
    known = rng.normal(size=(20, 32))
    reference, current = clusters(rng, known, 1_000), clusters(rng, known, 100)
    assert novelty_signal(reference, current).status == "ok"
    assert novelty_signal(reference, current[:10]).status == "insufficient"
    # repeated reference rows count once, so a repeated text is not "its own" neighbour
    repeated = np.vstack([reference, reference[:200]])
    assert novel_inputs(repeated, current).n_ref == 1_000
