"""Scorers that read the output as text: exact answer, required phrases, a pattern.

They are the cheapest checks a suite has and the ones people reach for first,
so each one says in ``detail`` exactly what it compared, and its params are
checked when the suite loads rather than on the first case.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from releasegate.domain.results import Case, CaseOutput, Score
from releasegate.runner.scorers import ParamError, check_params, expected_of, failed_output
from releasegate.runner.scorers.base import BaseScorer

_FLAGS = {"i": re.IGNORECASE, "m": re.MULTILINE, "s": re.DOTALL}


def _bool_param(params: Mapping[str, Any], key: str, default: bool) -> bool:
    value = params.get(key, default)
    if not isinstance(value, bool):
        raise ParamError(key, f"must be true or false, got {value!r}")
    return value


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Equals(BaseScorer):
    """The output (or one ``data`` field) equals ``case.expected``."""

    kind: ClassVar[str] = "equals"

    def __init__(self, params: Mapping[str, Any], *, name: str | None = None) -> None:
        super().__init__(params, name=name)
        check_params(self.params, {"field", "case_sensitive", "strip"})
        field = self.params.get("field")
        if field is not None and not (isinstance(field, str) and field):
            raise ParamError("field", f"must be the name of an output data field, got {field!r}")
        self.field: str | None = field
        self.case_sensitive = _bool_param(self.params, "case_sensitive", True)
        self.strip = _bool_param(self.params, "strip", True)
        self.params = {
            "field": self.field,
            "case_sensitive": self.case_sensitive,
            "strip": self.strip,
        }

    def _norm(self, value: Any) -> str:
        text = str(value)
        if self.strip:
            text = text.strip()
        return text if self.case_sensitive else text.casefold()

    def score(self, case: Case, output: CaseOutput) -> Score:
        if (failed := failed_output(output)) is not None:
            return failed
        expected = expected_of(case, self.kind)
        actual: Any = output.text
        if self.field is not None:
            if output.data is None or self.field not in output.data:
                return self.verdict(0.0, f"no field '{self.field}' in the output data")
            actual = output.data[self.field]
        if isinstance(actual, str) or isinstance(expected, str):
            equal = self._norm(actual) == self._norm(expected)
        else:
            equal = actual == expected
        if equal:
            return self.verdict(1.0, "equal")
        return self.verdict(0.0, f"got {_clip(repr(actual))}, expected {_clip(repr(expected))}")


class Contains(BaseScorer):
    """Every required phrase appears in the output; the value is the share found.

    The phrases come from ``value`` (a string or a list) or else from
    ``case.expected``; with the default threshold of 1 all must be present.
    """

    kind: ClassVar[str] = "contains"

    def __init__(self, params: Mapping[str, Any], *, name: str | None = None) -> None:
        super().__init__(params, name=name)
        check_params(self.params, {"value", "case_sensitive"})
        self.values: tuple[str, ...] | None = None
        if "value" in self.params:
            self.values = _phrases(self.params["value"])
            if self.values is None:
                raise ParamError("value", "must be a non-empty string or a list of them")
        self.case_sensitive = _bool_param(self.params, "case_sensitive", False)
        self.params = {
            "value": list(self.values) if self.values is not None else None,
            "case_sensitive": self.case_sensitive,
        }

    def score(self, case: Case, output: CaseOutput) -> Score:
        if (failed := failed_output(output)) is not None:
            return failed
        phrases = self.values
        if phrases is None:
            phrases = _phrases(expected_of(case, self.kind))
            if phrases is None:
                return self.verdict(
                    0.0, "case.expected is not a non-empty string or list of strings"
                )
        haystack = output.text if self.case_sensitive else output.text.casefold()
        missing = [
            p for p in phrases if (p if self.case_sensitive else p.casefold()) not in haystack
        ]
        value = (len(phrases) - len(missing)) / len(phrases)
        if not missing:
            return self.verdict(value, f"all {len(phrases)} present")
        return self.verdict(value, "missing: " + ", ".join(repr(_clip(p, 40)) for p in missing))


def _phrases(value: Any) -> tuple[str, ...] | None:
    """A string or a list of non-empty strings as a tuple; None when it is neither."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        return None
    if not all(isinstance(item, str) and item for item in items):
        return None
    return tuple(items)


class Regex(BaseScorer):
    """The output matches ``pattern`` (searched anywhere, or ``fullmatch: true``)."""

    kind: ClassVar[str] = "regex"

    def __init__(self, params: Mapping[str, Any], *, name: str | None = None) -> None:
        super().__init__(params, name=name)
        check_params(self.params, {"pattern", "flags", "fullmatch"})
        pattern = self.params.get("pattern")
        if pattern is None:
            raise ParamError("pattern", "required: a Python regular expression")
        if not isinstance(pattern, str) or not pattern:
            raise ParamError("pattern", f"must be a non-empty string, got {pattern!r}")
        flags_text = self.params.get("flags", "")
        if not isinstance(flags_text, str) or any(f not in _FLAGS for f in flags_text):
            raise ParamError(
                "flags", f"must be letters from 'i', 'm', 's' (e.g. \"im\"), got {flags_text!r}"
            )
        flags = re.NOFLAG
        for letter in flags_text:
            flags |= _FLAGS[letter]
        try:
            self.regex = re.compile(pattern, flags)
        except re.error as exc:
            raise ParamError("pattern", f"not a valid regular expression: {exc}") from exc
        self.fullmatch = _bool_param(self.params, "fullmatch", False)
        self.params = {
            "pattern": pattern,
            "flags": "".join(sorted(set(flags_text))),
            "fullmatch": self.fullmatch,
        }

    def score(self, case: Case, output: CaseOutput) -> Score:
        if (failed := failed_output(output)) is not None:
            return failed
        match = (self.regex.fullmatch if self.fullmatch else self.regex.search)(output.text)
        if match is None:
            how = "does not fully match" if self.fullmatch else "no match for"
            return self.verdict(0.0, f"{how} /{_clip(self.regex.pattern, 60)}/")
        return self.verdict(1.0, f"matched {_clip(repr(match.group(0)), 60)}")
