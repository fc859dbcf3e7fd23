"""Scorer registry: a suite's ``type: regex`` becomes a ``Regex`` instance here.

Kinds come from the ``releasegate.scorers`` entry-point group, with the built-ins
as a fallback so an uninstalled checkout still works; a plugin cannot shadow a
built-in kind. Nothing is imported until a kind is asked for, and each class is
loaded once. ``build_scorer`` is the one place a scorer's ``ValueError`` about
its params becomes a ``SuiteError`` naming ``params.<param>``.

The few helpers every scorer shares (``ParamError``, ``check_params``,
``failed_output``, ``expected_of``) live here too, so plugins can use them.
"""

from __future__ import annotations

import functools
import importlib
import math
import re
from collections.abc import Callable, Collection, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from releasegate.domain.results import Case, CaseOutput, Score
from releasegate.errors import PrerequisiteError, SuiteError
from releasegate.runner.scorers.base import BaseScorer, Scorer

__all__ = [
    "BaseScorer",
    "ParamError",
    "Scorer",
    "available_scorers",
    "build_scorer",
    "check_params",
    "expected_of",
    "failed_output",
]

GROUP = "releasegate.scorers"

BUILTINS: Mapping[str, str] = {
    "equals": "releasegate.runner.scorers.text:Equals",
    "contains": "releasegate.runner.scorers.text:Contains",
    "regex": "releasegate.runner.scorers.text:Regex",
    "json_schema": "releasegate.runner.scorers.structured:JsonSchema",
    "numeric": "releasegate.runner.scorers.structured:Numeric",
    "label_accuracy": "releasegate.runner.scorers.classification:LabelAccuracy",
    "macro_f1": "releasegate.runner.scorers.classification:MacroF1",
    "semantic_similarity": "releasegate.runner.scorers.semantic:SemanticSimilarity",
    "python": "releasegate.runner.scorers.custom:PythonScorer",
    "judge": "releasegate.runner.scorers.judge:Judge",
}


class ParamError(ValueError):
    """A bad scorer param; ``param`` lets the registry name ``params.<param>``."""

    def __init__(self, param: str, reason: str) -> None:
        super().__init__(f"param '{param}': {reason}")
        self.param = param
        self.reason = reason


def check_params(params: Mapping[str, Any], allowed: Collection[str]) -> None:
    """Refuse unknown params, so a typo like ``case_sensitve`` is not silently ignored."""
    for key in params:
        if key not in allowed:
            expected = ", ".join(sorted(allowed)) or "none"
            raise ParamError(str(key), f"unknown param; this scorer takes: {expected}")


def failed_output(output: CaseOutput) -> Score | None:
    """A failed call scores 0 whatever the rule; None when the output is usable."""
    if output.error is not None:
        return Score(value=0.0, passed=False, detail=f"error: {output.error}")
    return None


def expected_of(case: Case, kind: str) -> Any:
    """``case.expected``, or a SuiteError naming the case when a scorer needs it."""
    if case.expected is None:
        raise SuiteError(
            f"case '{case.case_id}' has no expected value, which the {kind} scorer needs",
            field="expected",
        )
    return case.expected


@functools.cache
def _sources() -> dict[str, EntryPoint | str]:
    """Where each kind comes from: installed entry points, then the built-ins."""
    found: dict[str, EntryPoint | str] = {ep.name: ep for ep in entry_points(group=GROUP)}
    found.update(BUILTINS)
    return found


@functools.cache
def _load(kind: str) -> type[Scorer]:
    source = _sources()[kind]
    where = source if isinstance(source, str) else source.value
    try:
        if isinstance(source, str):
            module_name, _, attr = source.partition(":")
            loaded: Any = getattr(importlib.import_module(module_name), attr)
        else:
            loaded = source.load()
    except (ImportError, AttributeError) as exc:
        raise PrerequisiteError(
            f"scorer '{kind}' could not be loaded from {where}: {exc}",
            hint="reinstall the plugin that provides it, or remove it from the suite",
        ) from exc
    if not isinstance(loaded, type):
        raise PrerequisiteError(f"scorer '{kind}' at {where} is not a class")
    scorer_class: type[Scorer] = loaded
    return scorer_class


def available_scorers() -> dict[str, type[Scorer]]:
    """Every scorer kind, name to class (this loads them all; the registry does not)."""
    return {kind: _load(kind) for kind in sorted(_sources())}


def _field_of(exc: ValueError, params: Mapping[str, Any]) -> str:
    """``params.<param>`` for a ParamError, or a param a plain ValueError names."""
    if isinstance(exc, ParamError):
        return f"params.{exc.param}"
    for quoted in re.findall(r"['\"`](\w+)['\"`]", str(exc)):
        if quoted in params:
            return f"params.{quoted}"
    return "params"


def _check_threshold(params: Mapping[str, Any]) -> None:
    if "threshold" not in params:
        return
    value = params["threshold"]
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not (math.isfinite(value) and 0.0 <= value <= 1.0)
    ):
        raise ParamError("threshold", f"must be a number between 0 and 1, got {value!r}")


def build_scorer(kind: str, params: Mapping[str, Any], name: str | None = None) -> Scorer:
    """A scorer of ``kind`` from its suite params; every bad input is a SuiteError."""
    sources = _sources()
    if kind not in sources:
        raise SuiteError(
            f"unknown scorer '{kind}'",
            field="type",
            hint=f"available: {', '.join(sorted(sources))}",
        )
    factory: Callable[..., object] = _load(kind)
    label = name or kind
    try:
        _check_threshold(params)
        scorer = factory(params, name=name)
    except ValueError as exc:
        reason = exc.reason if isinstance(exc, ParamError) else str(exc)
        raise SuiteError(f"scorer '{label}': {reason}", field=_field_of(exc, params)) from exc
    if not isinstance(scorer, Scorer):
        raise PrerequisiteError(f"scorer '{kind}' does not implement the Scorer protocol")
    return scorer
