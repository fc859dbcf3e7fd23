"""releasegate: the governed release loop for LLM workflows.

    change -> register -> evaluate -> gate -> promote   (then monitor, roll back, review)

The SDK surface is loaded lazily so ``import releasegate`` stays cheap for
applications that only resolve which version to run.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Client": "releasegate.sdk.client",
    "FlushReport": "releasegate.sdk.writer",
    "InputError": "releasegate.errors",
    "NotFoundError": "releasegate.errors",
    "RefusedError": "releasegate.errors",
    "ReleasegateError": "releasegate.errors",
    "RunsNotStoredError": "releasegate.errors",
    "StoreUnavailableError": "releasegate.errors",
    "Store": "releasegate.release.store_access",
    "approve": "releasegate.release.promote",
    "gate": "releasegate.release.gate",
    "evaluate": "releasegate.release.evaluate",
    "promote": "releasegate.release.promote",
    "register": "releasegate.release.register",
    "resolve": "releasegate.release.resolve",
    "rollback": "releasegate.release.promote",
}

__all__ = [
    "Client",
    "FlushReport",
    "InputError",
    "NotFoundError",
    "RefusedError",
    "ReleasegateError",
    "RunsNotStoredError",
    "Store",
    "StoreUnavailableError",
    "__version__",
    "approve",
    "evaluate",
    "gate",
    "promote",
    "register",
    "resolve",
    "rollback",
]

if TYPE_CHECKING:
    from releasegate.errors import (
        InputError,
        NotFoundError,
        RefusedError,
        ReleasegateError,
        RunsNotStoredError,
        StoreUnavailableError,
    )
    from releasegate.release.evaluate import evaluate
    from releasegate.release.gate import gate
    from releasegate.release.promote import approve, promote, rollback
    from releasegate.release.register import register
    from releasegate.release.resolve import resolve
    from releasegate.release.store_access import Store
    from releasegate.sdk.client import Client
    from releasegate.sdk.writer import FlushReport


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'releasegate' has no attribute '{name}'")
    return getattr(importlib.import_module(module), name)
