"""Jobs: what a server runs for a caller after answering 202, one row each.

A job is ``running`` from the moment its request is accepted, then ``completed`` (its
``result``: the verb's ``--json`` document, as text), ``failed`` (its ``error``: the
server's error shape, with the status the error would have been answered with) or
``interrupted`` (its process died). ``finish`` writes only a job still running, so a job
marked interrupted by a reader is never overwritten by a late writer, and the other way.
The row is the job's state for every replica; progress stays with the process, which
writes ``alive_at`` while the job runs (``beat``) so any replica can tell it died.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, select, update

from releasegate.domain.identity import canonical_json
from releasegate.store import tables as t
from releasegate.store.rows import as_utc, now


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    kind: str
    subject: str
    status: str
    actor: str
    runner: Mapping[str, Any]
    result: str | None
    error: Mapping[str, Any] | None
    created_at: datetime
    finished_at: datetime | None
    alive_at: datetime  # when its process last said it was alive (``beat``)


def _job(row: Any) -> JobRecord:
    return JobRecord(
        job_id=row.job_id,
        kind=row.kind,
        subject=row.subject,
        status=row.status,
        actor=row.actor,
        runner=json.loads(row.runner_json),
        result=row.result,
        error=None if row.error_json is None else json.loads(row.error_json),
        created_at=as_utc(row.created_at),
        finished_at=None if row.finished_at is None else as_utc(row.finished_at),
        alive_at=as_utc(row.alive_at or row.created_at),
    )


class JobRepo:
    __slots__ = ("conn",)

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def add(
        self, job_id: str, *, kind: str, subject: str, actor: str, runner: Mapping[str, Any]
    ) -> None:
        """A job accepted and running (``runner``: the marker of the process that runs it)."""
        self.conn.execute(
            insert(t.jobs).values(
                job_id=job_id,
                kind=kind,
                subject=subject,
                status="running",
                actor=actor,
                runner_json=canonical_json(dict(runner)),
                created_at=(at := now()),
                alive_at=at,
            )
        )

    def beat(self, job_ids: Collection[str]) -> None:
        """The running jobs ``job_ids`` are alive now (their process writes it)."""
        if job_ids:
            self.conn.execute(
                update(t.jobs)
                .where(and_(t.jobs.c.job_id.in_(list(job_ids)), t.jobs.c.status == "running"))
                .values(alive_at=now())
            )

    def get(self, job_id: str) -> JobRecord | None:
        row = self.conn.execute(select(t.jobs).where(t.jobs.c.job_id == job_id)).first()
        return None if row is None else _job(row)

    def finish(
        self,
        job_id: str,
        status: str,
        *,
        result: str | None = None,
        error: Mapping[str, Any] | None = None,
    ) -> bool:
        """Running -> ``status`` with its result or error; False if it no longer ran."""
        done = self.conn.execute(
            update(t.jobs)
            .where(and_(t.jobs.c.job_id == job_id, t.jobs.c.status == "running"))
            .values(
                status=status,
                result=result,
                error_json=None if error is None else canonical_json(dict(error)),
                finished_at=now(),
            )
        )
        return bool(done.rowcount)

    def finished_before(self, at: datetime, *, dry_run: bool = False) -> int:
        """Delete the jobs that ended before ``at`` (count them only, with ``dry_run``);
        how many. A running job is never taken."""
        old = and_(t.jobs.c.status != "running", t.jobs.c.finished_at < at)
        if dry_run:
            return int(self.conn.execute(select(func.count()).where(old)).scalar_one())
        return int(self.conn.execute(delete(t.jobs).where(old)).rowcount)
