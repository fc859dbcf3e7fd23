"""The provider port: how the runner asks a model (or a function) for an output.

Providers are built once per eval from the version's manifest and asked per
case. ``warm`` lets a provider batch work it can share across cases (the router
embeds every distinct input in one batch) before the per-case calls start.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from releasegate.domain.results import CaseOutput
from releasegate.providers.embeddings import Embedder


@dataclass(frozen=True)
class ProviderContext:
    """What a provider may use besides its manifest: shared, cached services."""

    embedder: Embedder


@runtime_checkable
class Provider(Protocol):
    kind: ClassVar[str]

    def warm(self, inputs: Sequence[Any]) -> None: ...

    async def complete(self, case_input: Any) -> CaseOutput: ...


def model_section(manifest: Mapping[str, Any]) -> Mapping[str, Any]:
    model = manifest.get("model")
    return model if isinstance(model, Mapping) else {}
