"""Novel inputs: the share of current runs unlike anything in the reference, and which ones.

Embedding drift (MMD) says *that* the inputs moved; this says *what is new*. Each reference
row's leave-one-out distance to its nearest other reference row (cosine distance on unit
rows) gives the reference's own spread; a current run is *novel* when its nearest reference
neighbour is farther than that spread's ``NOVEL_QUANTILE`` (99th percentile). With no shift
about 1% of current runs are novel, as about 1% of the reference is by construction; the
test compares the two shares with Fisher's exact test (one-sided, so the threshold's own
sampling error is counted: a 100-run reference holds one run past its 99th percentile, not a
known 1%). The signal alerts when ``p < alpha`` and the current share exceeds the
reference's by more than ``MIN_NOVEL_SHARE``, and lists the novel inputs themselves,
farthest first: each on one line (control characters out, whitespace folded, cut at
``LINE_CHARS``), secrets masked by ``masking.mask_secrets``. ``texts`` may be the window's
texts or a lookup called with the flagged rows only (the monitor reads just those from the
store), so nothing is read when nothing is novel.

Repeated reference rows (one text sent many times) count once. The reference is capped by a
seeded subsample (``NOVELTY_CAP`` rows) and distances are
computed in blocks, so a 100k-run window costs one ``(cap x block)`` product at a time.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from releasegate.domain.drift import ALPHA, MIN_SAMPLE, Signal, Statistic, Status
from releasegate.domain.masking import mask_secrets
from releasegate.domain.mmd import as_embeddings
from releasegate.domain.stats import FloatArray, generator

NOVEL_QUANTILE = 0.99
"""A current run is novel beyond this quantile of the reference's own nearest distances."""
MIN_NOVEL_SHARE = 0.02
"""Smallest excess share of novel runs (2 points) worth an alert."""
NOVELTY_CAP = 4_000
"""Reference rows kept (seeded subsample) for nearest-neighbour distances."""
SHOWN = 5
"""Novel inputs quoted in ``detail`` (the terminal and the memo)."""
LISTED = 50
"""Novel inputs kept in ``Signal.examples`` (``--json``)."""
LINE_CHARS = 120
"""An input quoted longer than this is cut, with an ellipsis."""
_BLOCK = 1_024

Texts = Sequence[str | None] | Callable[[Sequence[int]], Sequence[str | None]]
"""The current window's input texts, one per row, or a lookup from row indices to texts."""
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class NovelInputs:
    """What ``novel_inputs`` found: the threshold, the counts and the novel runs' indices."""

    threshold: float
    novel: tuple[int, ...]
    """Indices into the current window, farthest first."""
    distances: tuple[float, ...]
    n: int
    ref_novel: int
    n_ref: int
    p_value: float


def nearest_distances(
    reference: FloatArray, current: FloatArray, *, exclude_self: bool = False
) -> FloatArray:
    """Cosine distance of each ``current`` row to its nearest ``reference`` row."""
    out = np.empty(current.shape[0], dtype=np.float64)
    ref32 = reference.astype(np.float32)
    for lo in range(0, current.shape[0], _BLOCK):
        block = current[lo : lo + _BLOCK].astype(np.float32)
        sims = block @ ref32.T
        if exclude_self:
            rows = np.arange(block.shape[0])
            sims[rows, lo + rows] = -np.inf
        out[lo : lo + block.shape[0]] = 1.0 - sims.max(axis=1)
    return out


def novel_inputs(
    reference: ArrayLike,
    current: ArrayLike,
    *,
    cap: int = NOVELTY_CAP,
    seed: int = 0,
    quantile: float = NOVEL_QUANTILE,
) -> NovelInputs:
    """Which current runs lie beyond the reference's own ``quantile`` nearest distance."""
    ref = _unit(as_embeddings(reference, "reference"))
    cur = _unit(as_embeddings(current, "current"))
    if ref.shape[1] != cur.shape[1]:
        raise ValueError(f"reference has {ref.shape[1]} dims but current has {cur.shape[1]}")
    ref = np.unique(ref, axis=0)  # a repeated text is not its own nearest neighbour
    if ref.shape[0] > cap:
        ref = ref[np.sort(generator(seed).permutation(ref.shape[0])[:cap])]
    n_ref, n = ref.shape[0], cur.shape[0]
    if n_ref < 2 or n == 0:
        return NovelInputs(math.nan, (), (), n, 0, n_ref, 1.0)
    own = nearest_distances(ref, ref, exclude_self=True)
    threshold = float(np.quantile(own, quantile))
    dist = nearest_distances(ref, cur)
    novel = np.flatnonzero(dist > threshold)
    order = novel[np.argsort(-dist[novel], kind="stable")]
    ref_novel = int(np.count_nonzero(own > threshold))
    p_value = _fisher_greater(len(novel), n, ref_novel, n_ref)
    return NovelInputs(
        threshold,
        tuple(int(i) for i in order),
        tuple(float(dist[i]) for i in order),
        n,
        ref_novel,
        n_ref,
        p_value,
    )


def novelty_signal(
    reference: ArrayLike,
    current: ArrayLike,
    *,
    texts: Texts | None = None,
    name: str = "novel_inputs",
    alpha: float = ALPHA,
    min_share: float = MIN_NOVEL_SHARE,
    min_sample: int = MIN_SAMPLE,
    cap: int = NOVELTY_CAP,
    seed: int = 0,
) -> Signal:
    """The novel-input rate as a ``drift.Signal``; ``texts`` quote the novel inputs.

    ``examples`` holds up to ``LISTED`` of them, farthest first, as ``quote`` shows them;
    ``detail`` names the first ``SHOWN``. A callable ``texts`` is called once, with those
    rows only, and only when some run is novel.
    """
    found = novel_inputs(reference, current, cap=cap, seed=seed)
    n, n_ref = found.n, found.n_ref
    share = len(found.novel) / n if n else math.nan
    ref_share = found.ref_novel / n_ref if n_ref else math.nan
    change = share - ref_share
    status: Status = "ok"
    sentence = (
        f"novel inputs {share:.1%} of {n:,} runs vs {ref_share:.1%} of the reference "
        f"(beyond its {NOVEL_QUANTILE:.0%} nearest-neighbour distance {found.threshold:.3f}; "
        f"Fisher p={found.p_value:.2g})"
    )
    if min(n, n_ref) < min_sample:
        status = "insufficient"
        sentence += f"; {n:,} vs {n_ref:,} runs, needs {min_sample:,} in each to judge"
    elif not math.isfinite(found.threshold):
        status = "insufficient"
        sentence += "; the reference has no spread to measure novelty against"
    elif found.p_value < alpha and change > min_share:
        status = "alert"
    examples: tuple[str, ...] = ()
    if found.novel:
        rows = found.novel[:LISTED]
        quoted = _quotes(rows, texts)
        examples = tuple(line for line, _ in quoted)
        shown = [f'"{line}"' if known else line for line, known in quoted[:SHOWN]]
        more = len(found.novel) - len(shown)
        sentence += "; novel: " + ", ".join(shown) + (f" and {more} more" if more else "")
    return Signal(
        name=name,
        value=share,
        reference=ref_share,
        change=change,
        change_kind="absolute",
        statistic=Statistic("novel share", share),
        p_value=found.p_value,
        threshold=min_share,
        alpha=alpha,
        n=n,
        n_ref=n_ref,
        min_sample=min_sample,
        status=status,
        direction="increase",
        detail=sentence,
        examples=examples,
    )


def quote(text: str, limit: int = LINE_CHARS) -> str:
    """One line of ``text`` fit to quote: secrets masked, control characters out, whitespace
    folded to single spaces, cut at ``limit`` characters with an ellipsis."""
    masked = mask_secrets(text)
    kept = "".join(
        " " if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c for c in masked
    )
    line = _SPACE.sub(" ", kept).strip()
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def _quotes(rows: Sequence[int], texts: Texts | None) -> list[tuple[str, bool]]:
    """Each of ``rows`` quoted, and whether its text was known (``#i`` where it was not)."""
    if texts is None:
        got: Sequence[str | None] = [None] * len(rows)
    elif callable(texts):
        got = texts(rows)
    else:
        got = [texts[i] if i < len(texts) else None for i in rows]
    return [
        (quote(t), True) if t is not None else (f"#{i}", False)
        for i, t in zip(rows, got, strict=True)
    ]


def _unit(x: FloatArray) -> FloatArray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    unit: FloatArray = x / np.where(norms > 0, norms, 1.0)
    return unit


def _fisher_greater(k: int, n: int, k_ref: int, n_ref: int) -> float:
    """One-sided Fisher exact p: is the current share of novel runs above the reference's?"""
    from scipy import stats as _scipy_stats  # slow to import: only when needed

    table = [[k, n - k], [k_ref, n_ref - k_ref]]
    return float(_scipy_stats.fisher_exact(table, alternative="greater").pvalue)
