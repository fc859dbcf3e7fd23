"""Workflows that are code: a Python function stands in for the model.

``model: {provider: python, name: "pkg.module:function"}``. Register imports the
module once to refuse a function that does not resolve (diffing or showing a
version never runs user code), and pins it by ``revision_of``: the sha256 of its
module's source, so editing the code is a ``model`` change like swapping an LLM
would be; every eval checks that pin again (``release.pins``).
A function may be sync or async and take ``(case_input)`` or
``(case_input, manifest)``; whatever it raises is recorded on that case only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import importlib
import importlib.util
import inspect
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from releasegate.domain.results import CaseOutput
from releasegate.errors import ManifestError
from releasegate.providers.base import ProviderContext, model_section

FIELD = "model.name"
HINT = "name the function as 'package.module:function', importable from the project"


def _split(name: Any) -> tuple[str, str]:
    if not isinstance(name, str) or name.count(":") != 1:
        raise ManifestError(f"expected 'package.module:function', got {name!r}", field=FIELD)
    module, function = name.split(":")
    if not module or not function:
        raise ManifestError(f"expected 'package.module:function', got {name!r}", field=FIELD)
    return module, function


def load_function(name: str) -> Callable[..., Any]:
    """Import ``package.module:function``; failures are the manifest's fault."""
    module_name, attr = _split(name)
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # any import-time error in user code
        raise ManifestError(
            f"cannot import '{module_name}': {type(exc).__name__}: {exc}", field=FIELD, hint=HINT
        ) from exc
    target: Any = module
    for part in attr.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise ManifestError(
                f"'{module_name}' has no attribute '{attr}'", field=FIELD, hint=HINT
            )
    if not callable(target):
        raise ManifestError(f"'{name}' is not callable", field=FIELD)
    return target  # type: ignore[no-any-return]


def revision_of(name: str) -> str:
    """sha256 (hex) of the source of the function's module, to pin python workflows."""
    module_name, _ = _split(name)
    try:
        spec = importlib.util.find_spec(module_name)
    except (ImportError, ValueError) as exc:
        raise ManifestError(f"cannot find '{module_name}': {exc}", field=FIELD, hint=HINT) from exc
    if spec is None or not spec.origin or not spec.has_location:
        raise ManifestError(f"cannot find the source of '{module_name}'", field=FIELD, hint=HINT)
    try:
        with open(spec.origin, "rb") as source:
            return hashlib.sha256(source.read()).hexdigest()
    except OSError as exc:
        raise ManifestError(f"cannot read '{spec.origin}': {exc}", field=FIELD) from exc


def _takes_manifest(function: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):  # some builtins have no signature
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(p.kind in positional for p in params) >= 2


def to_output(value: Any, latency_ms: float) -> CaseOutput:
    """Turn whatever the function returned into a CaseOutput."""
    if isinstance(value, CaseOutput):
        if value.latency_ms:
            return value
        return dataclasses.replace(value, latency_ms=latency_ms)
    if isinstance(value, str):
        return CaseOutput(text=value, latency_ms=latency_ms)
    if isinstance(value, Mapping):
        data = dict(value)
        for key in ("text", "label"):
            if isinstance(data.get(key), str):
                return CaseOutput(text=data[key], data=data, latency_ms=latency_ms)
        text = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)
        return CaseOutput(text=text, data=data, latency_ms=latency_ms)
    if value is None:
        return CaseOutput(text="", latency_ms=latency_ms)
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = str(value)
    return CaseOutput(text=text, latency_ms=latency_ms)


class PythonCallable:
    """Calls a user function per case; sync functions run in a worker thread."""

    kind: ClassVar[str] = "python"

    def __init__(self, manifest: Mapping[str, Any], context: ProviderContext) -> None:
        self.manifest = manifest
        self.name = model_section(manifest).get("name")
        _split(self.name)  # a malformed name is reported at build time, without importing
        self._function: Callable[..., Any] | None = None
        self._takes_manifest = False

    def function(self) -> Callable[..., Any]:
        if self._function is None:
            self._function = load_function(str(self.name))
            self._takes_manifest = _takes_manifest(self._function)
        return self._function

    def warm(self, inputs: Sequence[Any]) -> None:
        """Import the function up front, so an import error stops the eval once."""
        self.function()

    async def complete(self, case_input: Any) -> CaseOutput:
        function = self.function()
        args = (case_input, self.manifest) if self._takes_manifest else (case_input,)
        started = time.perf_counter()
        try:
            if inspect.iscoroutinefunction(function):
                value = await function(*args)
            else:
                value = await asyncio.to_thread(function, *args)
                if inspect.isawaitable(value):
                    value = await value
        except Exception as exc:  # the function's failure is this case's result
            latency_ms = (time.perf_counter() - started) * 1000.0
            return CaseOutput(text="", error=f"{type(exc).__name__}: {exc}", latency_ms=latency_ms)
        return to_output(value, (time.perf_counter() - started) * 1000.0)
