"""Scoring functions the python-scorer tests load by "module:function", and a plugin."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from releasegate.domain.results import Case, CaseOutput, Score
from releasegate.runner.scorers.base import BaseScorer


def mentions_expected(case: Case, output: CaseOutput) -> bool:
    return str(case.expected).lower() in output.text.lower()


def length_ratio(case: Case, output: CaseOutput) -> float:
    return min(len(output.text), len(str(case.expected))) / max(len(str(case.expected)), 1)


def graded(case: Case, output: CaseOutput) -> Score:
    return Score(value=0.5, passed=True, detail="half credit")


def out_of_range(case: Case, output: CaseOutput) -> float:
    return 2.0


def not_a_score(case: Case, output: CaseOutput) -> str:
    return "yes"


class WordCount(BaseScorer):
    """A third-party scorer that raises a plain ValueError, as plugins may."""

    kind: ClassVar[str] = "word_count"

    def __init__(self, params: Mapping[str, Any], *, name: str | None = None) -> None:
        super().__init__(params, name=name)
        self.max_words = self.params.get("max_words", 50)
        if not isinstance(self.max_words, int) or self.max_words <= 0:
            raise ValueError(f"'max_words' must be a positive integer, got {self.max_words!r}")

    def score(self, case: Case, output: CaseOutput) -> Score:
        return self.verdict(float(len(output.text.split()) <= self.max_words))
