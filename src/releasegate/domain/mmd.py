"""Maximum mean discrepancy: do two windows of embeddings come from one distribution?

MMD^2 (biased, RBF kernel, median-heuristic bandwidth) on L2-normalised rows, each side
capped by a seeded subsample, with a permutation p-value: every permutation in one float32
matrix product. ``drift.embedding_drift_signal`` turns the test into a ``Signal``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.typing import ArrayLike

from releasegate.domain.stats import FloatArray, generator

Float32Array = npt.NDArray[np.float32]

EMBEDDING_CAP = 2_000
"""Rows used per window at most (a seeded subsample beyond it)."""
PERMUTATIONS = 200
"""Permutations for the p-value (the smallest possible p is 1/201)."""
_BANDWIDTH_PAIRS = 20_000


@dataclass(frozen=True)
class MMDTest:
    """A permutation test of two embedding samples; sizes are after capping."""

    mmd2: float
    p_value: float
    null_mean: float
    bandwidth: float
    n_ref: int
    n: int
    permutations: int


def mmd2(reference: ArrayLike, current: ArrayLike, *, bandwidth: float | None = None) -> float:
    """Biased MMD^2 of two embedding samples, RBF kernel on L2-normalised rows (~0 if equal)."""
    ref, cur = as_embeddings(reference, "reference"), as_embeddings(current, "current")
    if ref.shape[0] == 0 or cur.shape[0] == 0:
        raise ValueError("MMD^2 needs at least one embedding per window")
    kernel, _ = _centred_kernel(_normalised(ref, cur), bandwidth, generator(0))
    return _mmd_forms(kernel, ref.shape[0], np.empty((0, kernel.shape[0]), np.float32))[0]


def mmd_test(
    reference: ArrayLike,
    current: ArrayLike,
    *,
    permutations: int = PERMUTATIONS,
    cap: int = EMBEDDING_CAP,
    seed: int = 0,
    bandwidth: float | None = None,
) -> MMDTest:
    """MMD^2 with a permutation p-value, ``(1 + #{null >= observed}) / (1 + permutations)``.

    Each side is capped at ``cap`` rows by a seeded subsample. Double-centring the kernel
    matrix leaves every MMD^2 unchanged and makes each one ``(1/n_ref + 1/n)^2 s'Ks`` for the
    indicator ``s`` of the reference rows, so the observed split and all permutations are one
    float32 ``K @ S``. The null mean is exact: ``trace(K) n_ref n / (N (N - 1))``, scaled alike.
    """
    if permutations < 1:
        raise ValueError(f"permutations must be >= 1, got {permutations}")
    if cap < 2:
        raise ValueError(f"cap must be >= 2, got {cap}")
    rng = generator(seed)
    ref = _cap(as_embeddings(reference, "reference"), cap, rng)
    cur = _cap(as_embeddings(current, "current"), cap, rng)
    n_ref, n = ref.shape[0], cur.shape[0]
    if n_ref < 2 or n < 2:
        raise ValueError(f"the MMD test needs 2 embeddings per window, got {n_ref} and {n}")
    kernel, sigma = _centred_kernel(_normalised(ref, cur), bandwidth, rng)
    total = n_ref + n
    split = np.zeros(total, dtype=np.float32)
    split[:n_ref] = 1.0
    shuffled = rng.permuted(np.broadcast_to(split, (permutations, total)), axis=1)
    observed, *null = _mmd_forms(kernel, n_ref, shuffled)
    tolerance = 1e-6 * max(observed, *null, 1e-12)  # float32 noise must not break ties
    exceed = sum(v >= observed - tolerance for v in null)
    trace = float(np.trace(kernel, dtype=np.float64))
    null_mean = (1.0 / n_ref + 1.0 / n) ** 2 * trace * n_ref * n / (total * (total - 1))
    p_value = (1 + exceed) / (1 + permutations)
    return MMDTest(observed, p_value, null_mean, sigma, n_ref, n, permutations)


def as_embeddings(x: ArrayLike, name: str) -> FloatArray:
    """``x`` as a finite ``(runs, dims)`` float64 array; ValueError naming ``name`` if not."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be (runs, dims) embeddings, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


# --- internals --------------------------------------------------------------------------


def _centred_kernel(
    z: Float32Array, bandwidth: float | None, rng: np.random.Generator
) -> tuple[Float32Array, float]:
    """Double-centred RBF kernel matrix of unit rows ``z``, and its bandwidth sigma.

    For unit rows ``|x - y|^2 = 2 - 2 x.y``: one Gram matrix and an in-place ``exp``.
    ``sigma`` defaults to the median pairwise distance over a seeded sample of pairs (the
    median heuristic); ``k(x, y) = exp(-|x - y|^2 / (2 sigma^2))``.
    """
    gram = z @ z.T
    np.minimum(gram, np.float32(1.0), out=gram)
    if bandwidth is None:
        i, j = rng.integers(0, gram.shape[0], size=(2, _BANDWIDTH_PAIRS))
        d2 = 2.0 - 2.0 * gram[i[i != j], j[i != j]].astype(np.float64)
        median = float(np.median(d2)) if d2.size else 0.0
        sigma = math.sqrt(median) if median > 1e-12 else 1.0
    elif bandwidth > 0:
        sigma = bandwidth
    else:
        raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
    gram -= np.float32(1.0)
    gram *= np.float32(1.0 / (sigma * sigma))  # -|x-y|^2 / (2 sigma^2) = (x.y - 1) / sigma^2
    np.exp(gram, out=gram)
    means = gram.mean(axis=1, dtype=np.float64)
    gram -= means.astype(np.float32)[:, np.newaxis]
    gram -= means.astype(np.float32)[np.newaxis, :]
    gram += np.float32(means.mean())
    return gram, sigma


def _mmd_forms(kernel: Float32Array, n_ref: int, shuffled: Float32Array) -> list[float]:
    """MMD^2 of the first ``n_ref`` rows against the rest, then of each shuffled split."""
    total = kernel.shape[0]
    s = np.empty((total, shuffled.shape[0] + 1), dtype=np.float32)
    s[:, 0] = 0.0
    s[:n_ref, 0] = 1.0
    s[:, 1:] = shuffled.T
    forms = np.einsum("ij,ij->j", s, kernel @ s, dtype=np.float64)
    scale = (1.0 / n_ref + 1.0 / (total - n_ref)) ** 2
    return [max(0.0, float(v)) * scale for v in forms]


def _normalised(ref: FloatArray, cur: FloatArray) -> Float32Array:
    z = np.concatenate([ref, cur]).astype(np.float32)
    norms = np.linalg.norm(z, axis=1, keepdims=True)
    norms[norms == 0.0] = 1.0
    z /= norms
    return z


def _cap(x: FloatArray, cap: int, rng: np.random.Generator) -> FloatArray:
    if x.shape[0] <= cap:
        return x
    return x[np.sort(rng.choice(x.shape[0], size=cap, replace=False))]
