"""Workflows that are code, for loop tests: deterministic, instant, switchable by config."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any


def route(message: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """The label is the word after '#'; ``generation.mode`` decides how well we read it."""
    mode = manifest.get("generation", {}).get("mode", "good")
    label = message.rsplit("#", 1)[-1].strip()
    if mode == "broken" and label == "fraud":
        label = "card_lost"
    if mode == "sloppy" and message.startswith("hard"):
        label = "other"
    return {"label": label, "text": label}


_LOCK = threading.Lock()


def interrupt_after(message: str, manifest: dict[str, Any]) -> str:
    """Raises KeyboardInterrupt on the Nth call in this process, as Ctrl-C would."""
    counter = Path(os.environ["RG_TEST_COUNTER"])
    with _LOCK:  # calls arrive on several threads at once
        n = int(counter.read_text()) if counter.exists() else 0
        counter.write_text(str(n + 1))
    if n + 1 == int(os.environ.get("RG_TEST_INTERRUPT_AT", "0")):
        raise KeyboardInterrupt
    return message.rsplit("#", 1)[-1].strip()


def flaky_io(message: str) -> str:
    """Fails for inputs marked 'boom', as a timing-out API would."""
    if "boom" in message:
        raise TimeoutError("upstream took too long")
    return message.rsplit("#", 1)[-1].strip()
