"""The scorer interface: a small class per scoring rule, found by entry point.

A scorer is built from its suite spec (``params``), scores one output at a time,
and may also compute a corpus-level value (macro-F1) from all outputs. Its
``identity`` goes into the cache key, so changing a parameter re-scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

from releasegate.domain.identity import content_hash
from releasegate.domain.results import Case, CaseOutput, Score


@runtime_checkable
class Scorer(Protocol):
    """What the runner needs from any scorer, built-in or plugin."""

    kind: ClassVar[str]
    name: str

    def identity(self) -> str: ...

    def score(self, case: Case, output: CaseOutput) -> Score: ...

    def aggregate(self, cases: Sequence[Case], outputs: Sequence[CaseOutput]) -> float | None:
        """A corpus-level value, or None when the metric is the mean of case values."""
        ...


class BaseScorer:
    """Common plumbing: name, params, identity from (kind, params), no aggregate.

    Subclasses set ``kind``, validate params in ``__init__`` (raising ``ValueError``
    with a message naming the param; the runner turns it into a SuiteError with
    file and line) and implement ``score``.
    """

    kind: ClassVar[str] = "base"

    def __init__(self, params: Mapping[str, Any], *, name: str | None = None) -> None:
        self.params: dict[str, Any] = dict(params)
        self.name = name or self.kind
        self.threshold = float(self.params.pop("threshold", 1.0))

    def identity(self) -> str:
        return content_hash({"kind": self.kind, "params": self.params, "threshold": self.threshold})

    def score(self, case: Case, output: CaseOutput) -> Score:
        raise NotImplementedError

    def aggregate(self, cases: Sequence[Case], outputs: Sequence[CaseOutput]) -> float | None:
        return None

    def verdict(self, value: float, detail: str = "") -> Score:
        return Score(value=value, passed=value >= self.threshold, detail=detail)
