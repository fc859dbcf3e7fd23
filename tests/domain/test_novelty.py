"""Novel inputs: runs farther from the reference than its own 99th-percentile neighbour."""

from __future__ import annotations

import numpy as np

from releasegate.domain.drift import Bins, Window, compare_windows, distribution_signal
from releasegate.domain.novelty import LINE_CHARS, novel_inputs, novelty_signal, quote


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
    assert 'novel: "router down' in signal.detail and "and 16 more" in signal.detail
    assert len(signal.examples) == 21 and signal.examples[0].startswith("router down")
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


def test_novel_inputs_are_quoted_on_one_line_masked_and_fetched_only_when_flagged() -> None:
    rng = np.random.default_rng(2)
    known, unknown = rng.normal(size=(20, 32)), rng.normal(size=(1, 32))
    reference = clusters(rng, known, 1_000)
    current = np.vstack([clusters(rng, known, 90), clusters(rng, unknown, 10)])
    asked: list[list[int]] = []

    def lookup(rows: object) -> list[str | None]:
        asked.append(list(rows))  # type: ignore[call-overload]
        return [
            "my router\n\x1b[31mis down, api_key=sk-abcdefghijklmnop1234 today" + " again" * 40
        ] * len(asked[-1])

    signal = novelty_signal(reference, current, texts=lookup)
    assert len(asked) == 1 and set(asked[0]) >= set(range(90, 100)) and len(asked[0]) < 20
    line = signal.examples[0]
    assert line.startswith("my router [31mis down, api_key=***") and "sk-abc" not in line
    assert "\n" not in line and "\x1b" not in line
    assert len(line) <= LINE_CHARS and line.endswith("…")
    # nothing novel: the lookup is never called
    quiet = novelty_signal(reference, clusters(rng, known, 100)[:0].reshape(0, 32), texts=lookup)
    assert len(asked) == 1 and quiet.status == "insufficient"
    assert quote("a\tb\u2028c  d") == "a b c d"


def test_a_signal_that_could_not_test_says_insufficient_not_ok() -> None:
    flat = np.full(500, 7.0)  # one value: one bin, no shift could show
    signal = distribution_signal("output_length_distribution", flat, np.arange(500.0))
    assert signal.status == "insufficient" and "not tested" in signal.detail
    ok = distribution_signal("output_length_distribution", np.arange(500.0), np.arange(500.0))
    assert ok.status == "ok"
    assert Bins.from_reference(flat).k == 1


def test_a_column_one_window_lacks_makes_its_signals_insufficient() -> None:
    rng = np.random.default_rng(3)
    vectors = clusters(rng, rng.normal(size=(5, 16)), 200)
    reference = Window(labels=["a", "b"] * 100, input_embeddings=vectors)
    current = Window(labels=None, input_embeddings=None)  # labels and inputs stopped coming
    signals = {s.name: s for s in compare_windows(reference, current)}
    assert set(signals) == {"label_mix", "input_drift", "novel_inputs"}
    assert all(s.status == "insufficient" for s in signals.values())
    assert signals["label_mix"].detail == "label mix: not tested: the current window has no labels"
    assert compare_windows(Window(labels=None), Window(labels=None)) == []
