"""Scorers for outputs that must be machine-readable: JSON to a schema, a number.

A workflow whose output feeds another program breaks on shape before it breaks
on meaning, so the schema is checked when the suite loads and a failing output
says where it broke (``$.items[2].price``), not only that it did.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from jsonschema.exceptions import SchemaError, best_match
from jsonschema.validators import validator_for

from releasegate.domain.results import Case, CaseOutput, Score
from releasegate.errors import SuiteError
from releasegate.runner.scorers import ParamError, check_params, expected_of, failed_output
from releasegate.runner.scorers.base import BaseScorer

# Thousands-separated numbers first, so "1,234.5" is one number and not 1 and 234.5.
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+")


class JsonSchema(BaseScorer):
    """``output.text`` parses as JSON and validates against ``schema``."""

    kind: ClassVar[str] = "json_schema"

    def __init__(self, params: Mapping[str, Any], *, name: str | None = None) -> None:
        super().__init__(params, name=name)
        check_params(self.params, {"schema"})
        schema = self.params.get("schema")
        if schema is None:
            raise ParamError("schema", "required: a JSON Schema object")
        if not isinstance(schema, dict):
            raise ParamError("schema", f"must be a JSON Schema object, got {type(schema).__name__}")
        validator_class = validator_for(schema)
        try:
            validator_class.check_schema(schema)
        except SchemaError as exc:
            raise ParamError("schema", f"not a valid JSON Schema: {exc.message}") from exc
        self.validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)

    def score(self, case: Case, output: CaseOutput) -> Score:
        if (failed := failed_output(output)) is not None:
            return failed
        try:
            document = json.loads(output.text)
        except json.JSONDecodeError as exc:
            return self.verdict(0.0, f"invalid JSON: {exc}")
        error = best_match(self.validator.iter_errors(document))
        if error is None:
            return self.verdict(1.0, "valid")
        return self.verdict(0.0, f"{error.json_path}: {error.message}")


def parse_number(value: Any) -> float | None:
    """A number from a JSON value or text: the whole text if numeric, else its last number.

    The last number, because models that explain themselves put the answer at
    the end ("3 boxes of 4 is 12"). Booleans and non-finite values are not numbers.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        number = float(text.replace(",", ""))
    except ValueError:
        found = _NUMBER.findall(text)
        if not found:
            return None
        number = float(found[-1].replace(",", ""))
    return number if math.isfinite(number) else None


class Numeric(BaseScorer):
    """A number in the output is within ``tolerance`` of ``case.expected``.

    ``tolerance`` is absolute, or a fraction of the expected value with
    ``relative: true``; the number is read from the data ``field`` if given.
    """

    kind: ClassVar[str] = "numeric"

    def __init__(self, params: Mapping[str, Any], *, name: str | None = None) -> None:
        super().__init__(params, name=name)
        check_params(self.params, {"tolerance", "relative", "field"})
        tolerance = self.params.get("tolerance", 0)
        if (
            isinstance(tolerance, bool)
            or not isinstance(tolerance, int | float)
            or not (math.isfinite(tolerance) and tolerance >= 0)
        ):
            raise ParamError("tolerance", f"must be a number >= 0, got {tolerance!r}")
        relative = self.params.get("relative", False)
        if not isinstance(relative, bool):
            raise ParamError("relative", f"must be true or false, got {relative!r}")
        field = self.params.get("field")
        if field is not None and not (isinstance(field, str) and field):
            raise ParamError("field", f"must be the name of an output data field, got {field!r}")
        self.tolerance = float(tolerance)
        self.relative = relative
        self.field: str | None = field
        self.params = {"tolerance": self.tolerance, "relative": relative, "field": field}

    def score(self, case: Case, output: CaseOutput) -> Score:
        if (failed := failed_output(output)) is not None:
            return failed
        raw = expected_of(case, self.kind)
        expected = parse_number(raw)
        if expected is None or (isinstance(raw, str) and _NUMBER.fullmatch(raw.strip()) is None):
            raise SuiteError(
                f"case '{case.case_id}' expects {raw!r}, which is not a number", field="expected"
            )
        if self.field is not None:
            if output.data is None or self.field not in output.data:
                return self.verdict(0.0, f"no field '{self.field}' in the output data")
            source: Any = output.data[self.field]
        else:
            source = output.text
        actual = parse_number(source)
        if actual is None:
            return self.verdict(0.0, f"no number in {str(source)[:60]!r}")
        allowed = self.tolerance * abs(expected) if self.relative else self.tolerance
        within = abs(actual - expected) <= allowed or math.isclose(actual, expected)
        detail = f"got {actual:g}, expected {expected:g}"
        if allowed:
            detail += f" ± {allowed:g}"
        return self.verdict(1.0 if within else 0.0, detail)
