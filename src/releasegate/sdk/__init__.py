"""The runtime SDK: ``from releasegate import Client``."""

from __future__ import annotations

from releasegate.sdk.client import Client, Run, RuntimeVersion
from releasegate.sdk.writer import ClientStats, FlushReport

__all__ = ["Client", "ClientStats", "FlushReport", "Run", "RuntimeVersion"]
