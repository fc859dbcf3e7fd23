"""How deep parsed data may nest: the one limit YAML, JSON and OTLP documents share.

Apart from ``untrusted`` (which re-exports it) so that code checking already-parsed
data (a run, an OTLP span) does not import the YAML parser with it.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 100
"""Levels of nesting any YAML or JSON document may have."""


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether parsed JSON-like data nests deeper than ``limit`` (dicts and lists count).

    Walked a level at a time, without recursion; a container whose values are all plain
    scalars is passed over by a test in C (``map(type, ...)``), so a batch of flat records,
    the common case, costs about a microsecond a record."""
    level: list[Any] = [value] if isinstance(value, dict | list | tuple) else []
    depth = 1
    while level:
        if depth > limit:
            return True
        below: list[Any] = []
        for item in level:
            children = item.values() if isinstance(item, dict) else item
            if _LEAVES.issuperset(map(type, children)):
                continue
            below += [c for c in children if isinstance(c, dict | list)]
        level = below
        depth += 1
    return False


_LEAVES = frozenset({str, int, float, bool, type(None)})
"""Types that hold nothing (a subclass of dict or list is none of them: it is walked)."""


def deep_message(limit: int = MAX_DEPTH) -> str:
    return f"JSON nested deeper than {limit} levels"
