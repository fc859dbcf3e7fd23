"""Embedding vectors by text key, so a text is embedded once per store, not once per
process (input and output drift, semantic scorers)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select

from releasegate.store import tables as t

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt


class EmbeddingRepo:
    """Vectors by text key, so a text is embedded once per store, not once per process."""

    def __init__(self, store_engine: Any) -> None:
        self._engine = store_engine

    def get_vectors(self, keys: Sequence[str]) -> dict[str, npt.NDArray[np.float32]]:
        import numpy as np

        out: dict[str, npt.NDArray[np.float32]] = {}
        with self._engine.connect() as conn:
            for i in range(0, len(keys), 500):
                chunk = list(keys[i : i + 500])
                for r in conn.execute(select(t.embeddings).where(t.embeddings.c.key.in_(chunk))):
                    out[r.key] = np.frombuffer(r.vector, dtype=np.float32).copy()
        return out

    def put_vectors(self, vectors: Mapping[str, npt.NDArray[np.float32]]) -> None:
        import numpy as np

        if not vectors:
            return
        with self._engine.connect() as conn:
            conn = conn.execution_options(releasegate_write=True)
            with conn.begin():
                have = set()
                keys = list(vectors)
                for i in range(0, len(keys), 500):
                    chunk = keys[i : i + 500]
                    have |= {
                        r[0]
                        for r in conn.execute(
                            select(t.embeddings.c.key).where(t.embeddings.c.key.in_(chunk))
                        )
                    }
                rows = [
                    {"key": k, "vector": np.asarray(v, dtype=np.float32).tobytes()}
                    for k, v in vectors.items()
                    if k not in have
                ]
                if rows:
                    conn.execute(insert(t.embeddings), rows)
