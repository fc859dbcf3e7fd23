"""A scorer written as a plain Python function, for rules no built-in expresses.

``function: "pkg.module:func"`` is imported on first use, not when the suite
loads, so loading or listing a suite never runs project code. ``func(case,
output)`` returns a bool, a float in [0, 1] or a ``Score``. The function's
source and its module's sha256 are part of the scorer's identity, so editing the
function, or a helper or constant beside it, re-scores cached cases.
"""

from __future__ import annotations

import importlib
import inspect
import math
import numbers
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from releasegate.domain.identity import content_hash, sha256_bytes
from releasegate.domain.results import Case, CaseOutput, Score
from releasegate.errors import SuiteError
from releasegate.runner.scorers import ParamError, check_params, failed_output
from releasegate.runner.scorers.base import BaseScorer

ScoreFunction = Callable[[Case, CaseOutput], object]

_SPEC = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")
FIELD = "params.function"


def module_hash(module: object) -> str | None:
    """sha256 of the file the module was loaded from, or None when it has no file."""
    spec = getattr(module, "__spec__", None)
    origin = getattr(spec, "origin", None) if spec is not None else None
    if not isinstance(origin, str) or not getattr(spec, "has_location", False):
        return None
    try:
        return sha256_bytes(Path(origin).read_bytes())
    except OSError:
        return None


def source_hash(func: object) -> str | None:
    """sha256 of the function's source, or None when Python cannot find it."""
    try:
        source = inspect.getsource(func)  # type: ignore[arg-type]
    except (OSError, TypeError):
        return None
    return sha256_bytes(source.encode("utf-8"))


class PythonScorer(BaseScorer):
    """Calls ``function`` on each case and output and turns its answer into a Score."""

    kind: ClassVar[str] = "python"

    def __init__(self, params: Mapping[str, Any], *, name: str | None = None) -> None:
        super().__init__(params, name=name)
        check_params(self.params, {"function"})
        spec = self.params.get("function")
        if spec is None:
            raise ParamError("function", "required: the scoring function as 'pkg.module:func'")
        if not isinstance(spec, str) or not _SPEC.fullmatch(spec):
            raise ParamError("function", f"must look like 'pkg.module:func', got {spec!r}")
        self.spec = spec
        self._function: ScoreFunction | None = None
        self._source_hash: str | None = None
        self._module_hash: str | None = None

    def function(self) -> ScoreFunction:
        """The scoring function, imported the first time it is needed."""
        if self._function is None:
            module_name, _, attr = self.spec.partition(":")
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:
                raise SuiteError(
                    f"cannot import '{module_name}' for scorer '{self.name}': {exc}",
                    field=FIELD,
                    hint="install the module or run from a directory where it is importable",
                ) from exc
            func = getattr(module, attr, None)
            if func is None or not callable(func):
                raise SuiteError(
                    f"'{module_name}' has no function '{attr}' (scorer '{self.name}')",
                    field=FIELD,
                )
            self._source_hash = source_hash(func)
            self._module_hash = module_hash(module)
            self._function = func
        return self._function

    def identity(self) -> str:
        self.function()
        return content_hash(
            {
                "scorer": super().identity(),
                "source": self._source_hash,
                "module_sha256": self._module_hash,
            }
        )

    def score(self, case: Case, output: CaseOutput) -> Score:
        if (failed := failed_output(output)) is not None:
            return failed
        result = self.function()(case, output)
        if isinstance(result, Score):
            if not (math.isfinite(result.value) and 0.0 <= result.value <= 1.0):
                raise self._bad_result(result)
            return result
        if isinstance(result, bool | np.bool_):
            return self.verdict(1.0 if result else 0.0, f"{self.spec} returned {bool(result)}")
        if isinstance(result, numbers.Real):
            value = float(result)
            if math.isfinite(value) and 0.0 <= value <= 1.0:
                return self.verdict(value, f"{self.spec} returned {value:g}")
        raise self._bad_result(result)

    def _bad_result(self, result: object) -> SuiteError:
        return SuiteError(
            f"{self.spec} returned {result!r}",
            field=FIELD,
            hint="return a bool, a float in [0, 1] or a releasegate Score",
        )
