"""gc deletes the server's jobs (their stored results with them) 30 days after they
ended, never a running one, on SQLite and PostgreSQL; it says how many."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from releasegate.release.jobs import KEEP_DAYS, collect_old_jobs, complete_job, job_state
from releasegate.store.engine import Location, Store
from releasegate.store.jobs import JobRepo
from releasegate.store.rows import now
from releasegate.store.tables import jobs as jobs_table
from tests.helpers import rg

RUNNER = {"pid": 1, "host": "elsewhere"}


def _jobs(store: Store) -> None:
    """Four jobs: ended 31 and 29 days ago, ended now, and running for 40 days (alive)."""
    with store.write() as conn:
        for job_id in ("old", "recent", "new", "running"):
            JobRepo(conn).add(job_id, kind="compare", subject="router", actor="ci", runner=RUNNER)
    for job_id in ("old", "recent", "new"):
        complete_job(store, job_id, json.dumps({"job": job_id}))
    with store.write() as conn:
        for job_id, days in (("old", KEEP_DAYS + 1), ("recent", KEEP_DAYS - 1)):
            conn.execute(
                sa.update(jobs_table)
                .where(jobs_table.c.job_id == job_id)
                .values(finished_at=now() - timedelta(days=days))
            )
        conn.execute(
            sa.update(jobs_table)
            .where(jobs_table.c.job_id == "running")
            .values(created_at=now() - timedelta(days=40))
        )


def _left(store: Store) -> set[str]:
    with store.read() as conn:
        return set(conn.execute(sa.select(jobs_table.c.job_id)).scalars())


def test_gc_deletes_jobs_that_ended_long_ago_and_keeps_the_rest(store: Store) -> None:
    _jobs(store)
    assert collect_old_jobs(store, dry_run=True) == 1
    assert _left(store) == {"old", "recent", "new", "running"}  # a dry run deletes nothing
    assert collect_old_jobs(store) == 1
    assert _left(store) == {"recent", "new", "running"}
    assert job_state(store, "recent")["result"] == {"job": "recent"}
    assert collect_old_jobs(store) == 0


def test_gc_says_how_many_jobs_it_deleted(tmp_path: Path) -> None:
    home = tmp_path / ".releasegate"
    loc = Location(f"sqlite:///{home / 'releasegate.db'}", home / "blobs", True, home)
    opened = Store.open(location=loc)
    try:
        _jobs(opened)
    finally:
        opened.close()
    dry = rg(tmp_path, "gc", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert (
        f"would collect 1 job that ended more than {KEEP_DAYS} days ago; nothing was deleted"
        in dry.stdout
    )
    done = json.loads(rg(tmp_path, "gc", "--json").stdout)
    assert done["jobs"] == {"dry_run": False, "ended_before_days": KEEP_DAYS, "jobs": 1}
