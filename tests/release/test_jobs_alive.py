"""A job whose server died reads ``interrupted`` from every replica, not only from the
host that ran it (its process writes that it is alive; a silent job is interrupted)."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from releasegate.release.jobs import INTERRUPTED, SILENT_AFTER, job_state
from releasegate.server.jobs import Jobs
from releasegate.store.engine import Store
from releasegate.store.jobs import JobRepo
from releasegate.store.rows import now
from releasegate.store.tables import jobs as jobs_table


def _silent(store: Store, job_id: str, for_: timedelta) -> None:
    with store.write() as conn:
        conn.execute(
            sa.update(jobs_table).where(jobs_table.c.job_id == job_id).values(alive_at=now() - for_)
        )


def test_a_job_of_a_host_that_died_reads_interrupted_on_another(store: Store) -> None:
    with store.write() as conn:
        JobRepo(conn).add(
            "j-gone", kind="compare", subject="router", actor="ci",
            runner={"pid": 4242, "host": "replica-that-died", "process_start": "1"},
        )  # fmt: skip
    assert job_state(store, "j-gone")["status"] == "running"  # just started: alive
    _silent(store, "j-gone", SILENT_AFTER + timedelta(seconds=5))
    state = job_state(store, "j-gone")
    assert state["status"] == "interrupted" and state["error"] == INTERRUPTED
    assert state["finished_at"] is not None
    assert job_state(store, "j-gone")["status"] == "interrupted"  # and stays so


def test_a_long_job_whose_process_beats_stays_running(store: Store) -> None:
    release = threading.Event()
    done = threading.Event()

    def work(tick: Any) -> dict[str, Any]:
        release.wait(60)
        done.set()
        return {"ok": True}

    jobs = Jobs(store)
    job_id = jobs.submit("compare", "router", "ci", work)
    try:
        _silent(store, job_id, SILENT_AFTER + timedelta(minutes=10))  # long past the limit
        jobs.beat()  # ... but its process says it is alive
        assert job_state(store, job_id)["status"] == "running"
    finally:
        release.set()
    assert done.wait(60)
    for _ in range(600):  # the worker thread stores the result right after
        if job_state(store, job_id)["status"] != "running":
            break
        threading.Event().wait(0.05)
    assert job_state(store, job_id)["status"] == "completed"


def test_a_job_that_ends_after_it_was_marked_interrupted_says_so(store: Store, caplog: Any) -> None:
    from releasegate.release.jobs import complete_job

    with store.write() as conn:
        JobRepo(conn).add(
            "j-late", kind="compare", subject="router", actor="ci",
            runner={"pid": 4242, "host": "a-replica-cut-off", "process_start": "1"},
        )  # fmt: skip
    _silent(store, "j-late", SILENT_AFTER + timedelta(seconds=5))
    assert job_state(store, "j-late")["status"] == "interrupted"
    with caplog.at_level("WARNING", logger="releasegate.jobs"):
        complete_job(store, "j-late", '{"late": true}')
    assert job_state(store, "j-late")["status"] == "interrupted"  # the poll's answer holds
    said = [r.getMessage() for r in caplog.records if r.name == "releasegate.jobs"]
    assert len(said) == 1 and "j-late completed after it was marked interrupted" in said[0]


def test_the_alive_thread_ends_with_the_last_job(
    store: Store, monkeypatch: Any, caplog: Any
) -> None:
    """A process with no job running writes nothing: the thread that beats ends with the
    last job (before: it beat for ever, and logged a traceback every 30 s once the app's
    store was closed)."""
    import releasegate.server.jobs as server_jobs

    monkeypatch.setattr(server_jobs, "BEAT_SECONDS", 0.05)
    jobs = Jobs(store)
    job_id = jobs.submit("compare", "router", "ci", lambda tick: {"ok": True})
    beating = jobs._beating
    assert beating is not None
    beating.join(30)
    assert not beating.is_alive() and jobs._beating is None
    assert job_state(store, job_id)["status"] == "completed"
    with caplog.at_level("WARNING", logger="releasegate.server"):
        jobs.submit("compare", "router", "ci", lambda tick: {"again": True})
        again = jobs._beating
        assert again is not None and again is not beating  # a new job, a new thread
        again.join(30)
    assert not again.is_alive()
    assert not [r for r in caplog.records if "alive" in r.getMessage()]
