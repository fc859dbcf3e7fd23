"""Who is served a rollout's canary: a sticky, deterministic share of keys.

A key (a user or session id) lands on the canary when blake2b of the key, keyed by the
rollout id, read as a number in [0, 1), is below the weight: the same in every process
and on every machine, and a key on the canary at 5% stays on it at 25%. Another rollout
draws other keys. A request without a key draws on its own. Only the standard library:
the SDK imports this on the request path, where numpy has no place.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from typing import Literal

Arm = Literal["stable", "canary"]
ARMS: tuple[Arm, ...] = ("stable", "canary")

_SCALE = 1 << 64

PAIR_ATTRIBUTE = "releasegate.pair"
"""The run attribute in which a shadow run names the served run it shadows (its run id):
``client.run(version.shadow, ..., shadow=True, pair=run)``."""


def key_share(key: str, rollout_id: str) -> float:
    """A key's place in [0, 1) for this rollout: blake2b of the key keyed by the rollout id."""
    digest = hashlib.blake2b(key.encode(), digest_size=8, key=rollout_id.encode()[:64]).digest()
    return int.from_bytes(digest, "big") / _SCALE


def arm_for(key: str, rollout_id: str, weight_pct: float) -> Arm:
    """The sticky arm of ``key``: canary when its share is below the weight."""
    return "canary" if key_share(key, rollout_id) * 100.0 < weight_pct else "stable"


def draw_arm(weight_pct: float, draw: Callable[[], float] = random.random) -> Arm:
    """A per-request arm for a request without a key."""
    return "canary" if draw() * 100.0 < weight_pct else "stable"


class Splitter:
    """``arm_for`` for one rollout and weight, for the request path: the hash keyed once,
    the weight turned into an 8-byte bound (big-endian bytes compare as the numbers do),
    and the answer for each key remembered (bounded; cleared when full), since a user
    sends many requests. The same answers as ``arm_for``, in about a third of the time."""

    __slots__ = ("_base", "_bound", "_seen", "weight_pct")

    MEMO = 1 << 16

    def __init__(self, rollout_id: str, weight_pct: float) -> None:
        self._base = hashlib.blake2b(digest_size=8, key=rollout_id.encode()[:64])
        bound = int(weight_pct / 100.0 * _SCALE) if weight_pct < 100.0 else _SCALE
        self._bound = max(0, bound).to_bytes(9, "big")[1:] if bound < _SCALE else None
        self._seen: dict[str, bool] = {}
        self.weight_pct = weight_pct

    def is_canary(self, key: str | None) -> bool:
        if key is None:
            return random.random() * 100.0 < self.weight_pct
        hit = self._seen.get(key)
        if hit is not None:
            return hit
        if self._bound is None:  # 100%: everyone
            return True
        h = self._base.copy()
        h.update(key.encode())
        answer = h.digest() < self._bound
        if len(self._seen) >= self.MEMO:
            self._seen.clear()
        self._seen[key] = answer
        return answer
