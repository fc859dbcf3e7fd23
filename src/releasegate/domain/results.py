"""What one case produced and how it scored: the values eval and gate share.

Frozen so a result read from the cache and one fresh from a model are the same
kind of thing, and nothing downstream can edit what a model said.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Case:
    """One suite case. ``case_hash`` covers everything that changes its meaning."""

    case_id: str
    input: Any
    expected: Any = None
    tags: tuple[str, ...] = ()
    must_pass: bool = False
    metadata: Mapping[str, Any] = field(default_factory=dict)
    case_hash: str = ""


@dataclass(frozen=True, slots=True)
class CaseOutput:
    """What a provider returned for one case and epoch.

    ``text`` is the output as a string; ``data`` the structured form when the
    provider has one (the router gives ``{"label", "confidence", "escalated"}``).
    ``error`` is set, and ``text`` empty, when the call failed.
    """

    text: str
    data: Mapping[str, Any] | None = None
    latency_ms: float = 0.0
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Score:
    """One scorer's verdict on one output: a value in [0, 1] and pass/fail."""

    value: float
    passed: bool
    detail: str = ""
