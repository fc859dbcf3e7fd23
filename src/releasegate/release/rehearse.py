"""Rollback rehearsal: degrade the current version on purpose, see the gate and the
rollback do their jobs, and record how long each took.

``last_rehearsal`` is what reports and reviews read (the date and result of the last one).
"""

from __future__ import annotations

from releasegate.domain.rehearsal import Rehearsal
from releasegate.store.engine import Store
from releasegate.store.rehearsals import RehearsalRepo


def last_rehearsal(store: Store, workflow: str, env: str | None = None) -> Rehearsal | None:
    """The newest rehearsal of ``workflow`` (in ``env``, or any environment), or None."""
    with store.read() as conn:
        return RehearsalRepo(conn).latest(workflow, env)
