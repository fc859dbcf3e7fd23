"""The runtime SDK: ``from releasegate import Client``.

Loaded lazily (PEP 562), so ``releasegate.sdk.remote``, the HTTP transport the CLI uses
against a server, is imported without the client, its resolver and the store.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from releasegate.sdk.client import Client, Run, RuntimeVersion
    from releasegate.sdk.writer import ClientStats, FlushReport

_EXPORTS = {
    "Client": "releasegate.sdk.client",
    "ClientStats": "releasegate.sdk.writer",
    "FlushReport": "releasegate.sdk.writer",
    "Run": "releasegate.sdk.client",
    "RuntimeVersion": "releasegate.sdk.client",
}

__all__ = ["Client", "ClientStats", "FlushReport", "Run", "RuntimeVersion"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'releasegate.sdk' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
