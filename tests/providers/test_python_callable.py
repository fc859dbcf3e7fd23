from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from releasegate.domain.results import CaseOutput
from releasegate.errors import ManifestError
from releasegate.providers import build_provider
from releasegate.providers.base import ProviderContext
from releasegate.providers.embeddings import Embedder
from releasegate.providers.python_callable import PythonCallable, revision_of
from tests.providers import fixtures_fns

MODULE = fixtures_fns.__name__


def manifest(function: str) -> dict[str, Any]:
    return {
        "model": {"provider": "python", "name": f"{MODULE}:{function}"},
        "prompts": {"system": "triage"},
    }


def run(function: str, case_input: Any) -> CaseOutput:
    provider = PythonCallable(manifest(function), ProviderContext(embedder=Embedder()))
    provider.warm([case_input])
    return asyncio.run(provider.complete(case_input))


def test_a_sync_function_returning_a_string_is_the_text() -> None:
    out = run("shout", "hello")
    assert out.text == "HELLO"
    assert out.error is None
    assert out.latency_ms >= 0


def test_an_async_function_returning_a_dict_gives_data_and_its_label() -> None:
    out = run("route_async", {"message": "that payment was not me"})
    assert out.text == "fraud_report"
    assert out.data == {"label": "fraud_report", "confidence": 0.9}


def test_a_two_parameter_function_also_gets_the_manifest() -> None:
    assert run("with_manifest", "hi").text == "triage: hi"


def test_a_dict_without_text_or_label_is_rendered_as_json() -> None:
    out = run("no_text", "a b")
    assert json.loads(out.text) == {"score": 3, "words": ["a", "b"]}
    assert out.data == {"score": 3, "words": ["a", "b"]}


def test_a_case_output_is_kept_and_timed() -> None:
    out = run("full_output", "x")
    assert (out.text, out.tokens_in, out.cost_usd) == ("done", 7, 0.002)
    assert out.latency_ms > 0


@pytest.mark.parametrize(
    ("function", "error"),
    [("boom", "ValueError: cannot handle 'x'"), ("boom_async", "RuntimeError: upstream timed out")],
)
def test_a_failing_function_is_recorded_on_the_case(function: str, error: str) -> None:
    out = run(function, "x")
    assert out.text == ""
    assert out.error == error


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("no_such_pkg_rg.module:fn", "cannot import 'no_such_pkg_rg.module'"),
        (f"{MODULE}:missing", "has no attribute 'missing'"),
        (f"{MODULE}:NOT_CALLABLE", "is not callable"),
    ],
)
def test_a_function_that_cannot_be_loaded_is_a_manifest_error(name: str, reason: str) -> None:
    provider = PythonCallable(
        {"model": {"provider": "python", "name": name}}, ProviderContext(embedder=Embedder())
    )
    with pytest.raises(ManifestError) as info:
        provider.warm(["x"])
    assert info.value.field == "model.name"
    assert reason in info.value.reason


@pytest.mark.parametrize("name", ["just_a_module", "a:b:c", ":fn", "mod:", None])
def test_a_malformed_name_is_refused_without_importing(name: object) -> None:
    with pytest.raises(ManifestError) as info:
        PythonCallable({"model": {"provider": "python", "name": name}}, ProviderContext(Embedder()))
    assert info.value.field == "model.name"


def test_revision_is_the_sha256_of_the_module_source() -> None:
    source = Path(fixtures_fns.__file__).read_bytes()
    assert revision_of(f"{MODULE}:shout") == hashlib.sha256(source).hexdigest()
    with pytest.raises(ManifestError) as info:
        revision_of("no_such_pkg_rg:fn")
    assert info.value.field == "model.name"


def test_build_provider_finds_the_python_provider() -> None:
    provider = build_provider(manifest("shout"), ProviderContext(embedder=Embedder()))
    assert isinstance(provider, PythonCallable)
    assert provider.kind == "python"
