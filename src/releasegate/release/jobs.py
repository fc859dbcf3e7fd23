"""Jobs a server runs for its callers: accepted (a row, ``running``, with the marker of
the process that runs it), then completed with the verb's ``--json`` document or failed
with the error it raised; read back by ``job_state`` on any replica.

A job whose process died (a ``kill -9``, a restarted container) would read "running"
for ever; ``job_state`` asks, as for evals (``release.interrupted``), whether the
process on the marker is alive on this host, and marks a dead one's job interrupted.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

from releasegate.errors import NotFoundError
from releasegate.release.interrupted import is_dead, running_marker
from releasegate.store.engine import Store
from releasegate.store.jobs import JobRecord, JobRepo

INTERRUPTED = {
    "status": 503,
    "error": "the server process running it ended without finishing (killed or crashed)",
    "hint": "run it again",
}


def start_job(store: Store, *, kind: str, subject: str, who: str) -> str:
    """Record a job as running in this process; its id."""
    job_id = uuid.uuid4().hex
    with store.write() as conn:
        JobRepo(conn).add(job_id, kind=kind, subject=subject, actor=who, runner=running_marker())
    return job_id


def complete_job(store: Store, job_id: str, document: str) -> None:
    """The job ended with ``document`` (the verb's ``--json`` text)."""
    with store.write() as conn:
        JobRepo(conn).finish(job_id, "completed", result=document)


def fail_job(store: Store, job_id: str, error: Mapping[str, Any]) -> None:
    """The job ended with an error (the server's error shape, its status included)."""
    with store.write() as conn:
        JobRepo(conn).finish(job_id, "failed", error=error)


def job_state(store: Store, job_id: str) -> dict[str, Any]:
    """A job as a poll reads it: its status and, once ended, its result or error."""
    with store.read() as conn:
        job = JobRepo(conn).get(job_id)
    if job is None:
        raise NotFoundError(f"no job '{job_id}'", field="job_id")
    if job.status == "running" and is_dead(job.runner):
        with store.write() as conn:
            JobRepo(conn).finish(job_id, "interrupted", error=INTERRUPTED)
            job = JobRepo(conn).get(job_id) or job
    return _state(job)


def _state(job: JobRecord) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "kind": job.kind,
        "subject": job.subject,
        "status": job.status,
        "actor": job.actor,
        "created_at": job.created_at.isoformat(),
        "finished_at": None if job.finished_at is None else job.finished_at.isoformat(),
        "result": None if job.result is None else json.loads(job.result),
        "error": None if job.error is None else dict(job.error),
    }
