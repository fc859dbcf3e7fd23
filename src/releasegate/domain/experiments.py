"""Experiments: versions on the ``experiment`` track, and when one expires.

An experiment is registered with ``--experiment``; it is evaluated and gated exactly
as a release is (same suite, same policy), so its numbers compare. A workflow file's
``experiments: {retention_days: N}`` (metadata, never in a version id) says how long
an experiment's eval data is kept: once ``created_at + N days`` has passed, and it
serves nowhere, ``releasegate gc`` removes its outputs and scores (the version row,
its manifest, its gate decisions and the audit trail stay). Without a retention
window experiments never expire. Registering an experiment's content without
``--experiment`` graduates it to the release track: same content, same id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from releasegate.domain.document import Fields

EXPERIMENT = "experiment"
RELEASE = "release"
TRACKS = (RELEASE, EXPERIMENT)
MAX_RETENTION_DAYS = 36_500


@dataclass(frozen=True)
class Retention:
    """How long an experiment's eval data is kept (``days`` None: forever)."""

    days: int | None = None

    def expires_at(self, created_at: datetime) -> datetime | None:
        return None if self.days is None else created_at + timedelta(days=self.days)

    def is_expired(self, created_at: datetime, now: datetime) -> bool:
        expiry = self.expires_at(created_at)
        return expiry is not None and now >= expiry


def parse_experiments(f: Fields) -> Retention:
    """The ``experiments`` section of a workflow file: ``{retention_days: N}``, N >= 1."""
    f.only("retention_days")
    days = f.get("retention_days", int, required=True)
    if not 1 <= days <= MAX_RETENTION_DAYS:
        f.fail(
            "retention_days",
            f"must be a whole number of days from 1 to {MAX_RETENTION_DAYS}, not {days!r}",
        )
    return Retention(days)
