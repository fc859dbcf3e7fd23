"""A workflow that is code and waits for the test's word, to watch an eval while it runs."""

from __future__ import annotations

import threading
from typing import Any

GO = threading.Event()
"""Set by the test: until then every call waits (at most a minute)."""


def held(message: str, manifest: dict[str, Any]) -> str:
    GO.wait(60)
    return message.rsplit("#", 1)[-1].strip()
