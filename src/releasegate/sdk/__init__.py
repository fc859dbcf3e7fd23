"""The runtime SDK: ``from releasegate import Client``."""

from __future__ import annotations

from releasegate.sdk.client import Client, ClientStats, Run, RuntimeVersion

__all__ = ["Client", "ClientStats", "Run", "RuntimeVersion"]
