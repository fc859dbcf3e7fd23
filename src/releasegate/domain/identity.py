"""Content identity: the same behaviour gets the same id on every machine.

An id is the sha256 of a canonical JSON rendering: keys sorted, no insignificant
whitespace, UTF-8, floats as Python's shortest repr and integral floats as ints,
so YAML formatting, key order and comments can never change it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

SHORT = 12


def _normalize(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(k): _normalize(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalize(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    """The one serialization that hashes are taken over."""
    return json.dumps(_normalize(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(value: Any) -> str:
    """Full hex sha256 of the canonical JSON of ``value``."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def short(digest: str) -> str:
    """The short form shown to people; any unique prefix of 6+ chars resolves."""
    return digest[:SHORT]
