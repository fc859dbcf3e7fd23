"""How deep parsed data may nest: the one limit YAML, JSON and OTLP documents share.

Apart from ``untrusted`` (which re-exports it) so that code checking already-parsed
data (a run, an OTLP span) does not import the YAML parser with it.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 100
"""Levels of nesting any YAML or JSON document may have."""


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether parsed JSON-like data nests deeper than ``limit`` (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def deep_message(limit: int = MAX_DEPTH) -> str:
    return f"JSON nested deeper than {limit} levels"
