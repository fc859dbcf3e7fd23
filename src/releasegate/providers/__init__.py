"""Model adapters, found by name: ``model.provider`` in a version's manifest.

Providers come from the ``releasegate.providers`` entry-point group, so a
plugin adds one by declaring it; the built-ins are also listed here, so they
work from a source checkout whose entry points were never installed.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from releasegate.errors import ManifestError
from releasegate.providers.base import Provider, ProviderContext, model_section

ENTRY_POINT_GROUP = "releasegate.providers"

BUILTIN_PROVIDERS: dict[str, str] = {
    "embedding-router": "releasegate.providers.embedding_router:EmbeddingRouter",
    "openai": "releasegate.providers.openai_compat:OpenAICompatible",
    "python": "releasegate.providers.python_callable:PythonCallable",
}

__all__ = ["ENTRY_POINT_GROUP", "Provider", "ProviderContext", "available", "build_provider"]


@functools.cache  # scanning every installed distribution costs ~1 ms a call
def _discovered() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> list[str]:
    """Names usable as ``model.provider``, sorted."""
    return sorted({*BUILTIN_PROVIDERS, *_discovered()})


def _factory(name: str) -> Any:
    discovered = _discovered()
    if name in discovered:
        return discovered[name].load()
    module_name, attr = BUILTIN_PROVIDERS[name].split(":")
    return getattr(importlib.import_module(module_name), attr)


def build_provider(manifest: Mapping[str, Any], context: ProviderContext) -> Provider:
    """The provider a version's manifest asks for, validated against that manifest."""
    if not isinstance(manifest.get("model"), Mapping):
        raise ManifestError("missing the model section", field="model")
    name = model_section(manifest).get("provider")
    if not isinstance(name, str) or name not in available():
        shown = name if isinstance(name, str) else repr(name)
        raise ManifestError(
            f"unknown provider '{shown}'",
            field="model.provider",
            hint=f"available: {', '.join(available())}",
        )
    provider: Provider = _factory(name)(manifest, context)
    return provider
