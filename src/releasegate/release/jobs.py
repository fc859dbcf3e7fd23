"""Jobs a server runs for its callers: accepted (a row, ``running``, with the marker of
the process that runs it), then completed with the verb's ``--json`` document or failed
with the error it raised; read back by ``job_state`` on any replica.

A job whose process died (a ``kill -9``, a restarted container, a host gone) would read
"running" for ever. Its process writes that it is alive every ``BEAT_SECONDS``
(``beat_jobs``); ``job_state`` marks a running job interrupted when its process is
dead on this host (as for evals, ``release.interrupted``) or, on any host, when it has
not said it was alive for ``SILENT_AFTER``.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Collection, Mapping
from datetime import timedelta
from typing import Any

from releasegate.errors import NotFoundError
from releasegate.release.interrupted import is_dead, running_marker
from releasegate.store.engine import Store
from releasegate.store.jobs import JobRecord, JobRepo
from releasegate.store.rows import now

log = logging.getLogger("releasegate.jobs")

BEAT_SECONDS = 30.0
"""How often a process writes that its running jobs are alive."""
SILENT_AFTER = timedelta(minutes=2)
"""A running job not alive for this long (four beats missed) is interrupted."""
KEEP_DAYS = 30
"""``gc`` deletes a job (its result with it) this many days after it ended."""

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


def beat_jobs(store: Store, job_ids: Collection[str]) -> None:
    """This process's running jobs ``job_ids`` are alive now."""
    with store.write() as conn:
        JobRepo(conn).beat(job_ids)


def complete_job(store: Store, job_id: str, document: str) -> None:
    """The job ended with ``document`` (the verb's ``--json`` text)."""
    with store.write() as conn:
        stored = JobRepo(conn).finish(job_id, "completed", result=document)
    if not stored:
        _late(job_id, "completed")


def fail_job(store: Store, job_id: str, error: Mapping[str, Any]) -> None:
    """The job ended with an error (the server's error shape, its status included)."""
    with store.write() as conn:
        stored = JobRepo(conn).finish(job_id, "failed", error=error)
    if not stored:
        _late(job_id, "failed")


def _late(job_id: str, ended: str) -> None:
    """A job that ended after a reader marked it interrupted (its process was silent past
    ``SILENT_AFTER``: a database outage, a clock far off): its answer is not stored (the
    poll already said interrupted), so say so rather than drop it quietly. What the work
    itself stored (evals, audit events, rollout evidence) is kept."""
    log.warning(
        "job %s %s after it was marked interrupted (silent for over %s); "
        "its answer was not stored: run it again to read it",
        job_id,
        ended,
        SILENT_AFTER,
    )


def job_state(store: Store, job_id: str) -> dict[str, Any]:
    """A job as a poll reads it: its status and, once ended, its result or error."""
    with store.read() as conn:
        job = JobRepo(conn).get(job_id)
    if job is None:
        raise NotFoundError(f"no job '{job_id}'", field="job_id")
    if job.status == "running" and (is_dead(job.runner) or now() - job.alive_at > SILENT_AFTER):
        with store.write() as conn:
            JobRepo(conn).finish(job_id, "interrupted", error=INTERRUPTED)
            job = JobRepo(conn).get(job_id) or job
    return _state(job)


def collect_old_jobs(store: Store, *, dry_run: bool = False) -> int:
    """Delete the jobs that ended more than ``KEEP_DAYS`` ago; how many (with
    ``dry_run``: how many would be, nothing deleted)."""
    with store.write() as conn:
        return JobRepo(conn).finished_before(now() - timedelta(days=KEEP_DAYS), dry_run=dry_run)


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
