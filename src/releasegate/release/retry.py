"""Retrying transient write conflicts, so a busy store is a short wait, not an error.

Two writers at once can make the database give up on one of them although
nothing is wrong: PostgreSQL reports a serialization failure or a deadlock,
SQLite a busy snapshot, and two inserts of the same row race
(``WriteConflictError``). The services that write (register, approve, promote,
roll back, finishing an eval) run again, up to ``TRIES`` times with jittered
backoff; each try is one whole transaction, so a retry sees what the other
writer did. A real refusal (a ``RefusedError`` such as a stale alias) is an
answer and is never retried; a conflict that outlasts the tries surfaces as
it is (exit 2 for a busy store).
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from releasegate.errors import StoreConflictError, WriteConflictError

TRIES = 4
BASE_DELAY = 0.05  # seconds; doubles per try, with full jitter

P = ParamSpec("P")
T = TypeVar("T")
log = logging.getLogger(__name__)


def retrying(fn: Callable[[], T], *, tries: int = TRIES, what: str = "write") -> T:
    """Call ``fn`` until it does not hit a transient conflict, at most ``tries`` times."""
    for attempt in range(1, tries + 1):
        try:
            return fn()
        except (StoreConflictError, WriteConflictError) as exc:
            if attempt >= tries:
                raise
            delay = random.uniform(0, BASE_DELAY * 2**attempt)
            log.info("%s: %s; try %d of %d in %.2fs", what, exc.message, attempt + 1, tries, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def retried(fn: Callable[P, T]) -> Callable[P, T]:
    """Decorate a service whose every try is one whole write transaction."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        return retrying(lambda: fn(*args, **kwargs), what=fn.__name__)

    return wrapper
