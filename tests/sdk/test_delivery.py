"""No run is lost silently: every run the application sends is stored, spilled to disk,
or dropped and reported, whatever the overflow policy, the load or the store's health."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from releasegate import Client
from releasegate.cli._errors import exit_code  # the exit code every front reports
from releasegate.errors import InputError, RunsNotStoredError, SDKUsageError, StoreError
from releasegate.sdk import FlushReport
from releasegate.store.engine import Location, Store
from releasegate.store.runs import RunRepo
from tests.helpers import REPO, Project
from tests.monitor.test_ingest import count, shipped

THREADS = 4
PER_THREAD = 3000


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(root=tmp_path)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Store:
    home = tmp_path / ".releasegate"
    loc = Location(
        url=f"sqlite:///{home / 'releasegate.db'}",
        blob_root=home / "blobs",
        is_embedded=True,
        home=home,
    )
    return Store.open(location=loc)


def send(client: Client, vid: str, threads: int = THREADS, per_thread: int = PER_THREAD) -> int:
    """``threads`` application threads recording ``per_thread`` runs each, all at once."""
    start = threading.Barrier(threads)

    def app(t: int) -> None:
        start.wait()
        for i in range(per_thread):
            with client.run(vid, workflow="router", env="staging", input=f"msg {t}-{i}") as r:
                r.output = "fraud"
                r.label = "fraud"
                r.tokens_in, r.tokens_out = 40, 2

    workers = [threading.Thread(target=app, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return threads * per_thread


def break_runs_table(store: Store) -> None:
    with store.write() as conn:
        conn.execute(sa.text("ALTER TABLE runs RENAME TO runs_away"))


def mend_runs_table(store: Store) -> None:
    with store.write() as conn:
        conn.execute(sa.text("ALTER TABLE runs_away RENAME TO runs"))


@pytest.mark.parametrize("policy", ["spill", "block", "drop_oldest"])
def test_four_threads_every_run_is_stored_spilled_or_reported_dropped(
    store: Store, project: Project, tmp_path: Path, policy: str
) -> None:
    vid = shipped(store, project)
    client = Client(
        store=store, on_overflow=policy, max_queue=400, batch_size=200, flush_every=0.05
    )
    sent = send(client, vid)
    report = client.close()
    stats = client.stats
    assert stats.submitted == sent
    assert (stats.rejected, stats.duplicates, stats.failed) == (0, 0, 0)
    assert stats.stored + stats.spilled + stats.dropped == sent
    assert isinstance(report, FlushReport) and report.failed == 0
    assert count(store) == stats.stored + stats.replayed  # nothing stored twice, or unsaid
    if policy == "block":
        assert (stats.spilled, stats.dropped, stats.stored) == (0, 0, sent)
    if policy == "drop_oldest":
        assert stats.spilled == 0 and stats.dropped > 0  # 4 threads outrun a 400-run queue
    if policy == "spill":
        assert stats.dropped == 0 and stats.spilled > 0
        with Client(store=store) as restarted:  # the next start replays what was spilled
            restarted.flush()
        assert count(store) == sent
        assert not list((tmp_path / ".releasegate" / "spill").glob("*.jsonl"))


def test_drop_oldest_keeps_the_newest_runs_and_says_so_once(
    sqlite_store: Store, project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    vid = shipped(sqlite_store, project)
    break_runs_table(sqlite_store)  # the store is down: nothing leaves the queue
    client = Client(store=sqlite_store, on_overflow="drop_oldest", max_queue=100, flush_every=60)
    with caplog.at_level(logging.WARNING, logger="releasegate.sdk"):
        sent = send(client, vid, threads=1, per_thread=1000)
    assert client.stats.dropped == 900
    drops = [r for r in caplog.records if "dropped" in r.getMessage()]
    assert len(drops) == 1 and "oldest first" in drops[0].getMessage()
    mend_runs_table(sqlite_store)
    report = client.flush()
    assert (report.stored, report.dropped, report.spilled, report.failed) == (100, 900, 0, 0)
    assert client.stats.stored + client.stats.dropped == sent
    with sqlite_store.read() as conn:
        inputs = {r["input"] for r in (RunRepo(conn).get(x) for x in _run_ids(conn)) if r}
    assert inputs == {f"msg 0-{i}" for i in range(900, 1000)}  # the newest hundred
    client.close()


def _run_ids(conn: sa.Connection) -> list[str]:
    return [row[0] for row in conn.execute(sa.text("SELECT run_id FROM runs"))]


def test_an_app_exiting_during_an_outage_spills_its_runs_and_the_next_start_replays_them_once(
    sqlite_store: Store, project: Project, tmp_path: Path
) -> None:
    vid = shipped(sqlite_store, project)
    break_runs_table(sqlite_store)
    spill_dir = tmp_path / "spill"
    client = Client(store=sqlite_store, on_overflow="block", spill_dir=spill_dir, flush_every=60)
    sent = send(client, vid, threads=2, per_thread=250)
    report = client.close()  # the store is down: what is queued goes to disk, and says so
    assert (report.stored, report.spilled, report.failed) == (0, sent, 0)
    [spilled] = list(spill_dir.glob("*.jsonl"))
    kept = shutil.copy(spilled, tmp_path / "copy.jsonl")
    mend_runs_table(sqlite_store)

    with Client(store=sqlite_store, spill_dir=spill_dir) as restarted:
        restarted.flush()
        assert restarted.stats.replayed == sent
    assert count(sqlite_store) == sent and not list(spill_dir.glob("*.jsonl"))

    shutil.copy(kept, spill_dir / "runs-replayed-again.jsonl")  # a crash before the delete
    with Client(store=sqlite_store, spill_dir=spill_dir) as again:
        again.flush()
        assert again.stats.replayed == sent  # found already stored
    assert count(sqlite_store) == sent  # idempotent by run_id


def test_flush_and_close_raise_when_runs_can_be_neither_stored_nor_spilled(
    sqlite_store: Store, project: Project, tmp_path: Path
) -> None:
    vid = shipped(sqlite_store, project)
    break_runs_table(sqlite_store)
    not_a_dir = tmp_path / "a-file"
    not_a_dir.write_text("")
    client = Client(
        store=sqlite_store, on_overflow="block", spill_dir=not_a_dir / "spill", flush_every=60
    )
    sent = send(client, vid, threads=1, per_thread=50)
    with pytest.raises(RunsNotStoredError, match="50 runs could not be stored yet") as flushed:
        client.flush()
    assert isinstance(flushed.value, StoreError) and exit_code(flushed.value) == 2
    report = flushed.value.report
    assert isinstance(report, FlushReport) and (report.stored, report.queued) == (0, sent)
    with pytest.raises(RunsNotStoredError, match="50 runs could be neither stored nor spilled"):
        client.close()
    assert client.stats.failed == sent


def test_a_healthy_flush_reports_what_it_stored_since_the_last_one(
    sqlite_store: Store, project: Project
) -> None:
    vid = shipped(sqlite_store, project)
    with Client(store=sqlite_store, flush_every=60) as client:
        send(client, vid, threads=1, per_thread=30)
        assert client.flush() == FlushReport(stored=30, spilled=0, dropped=0, failed=0)
        send(client, vid, threads=1, per_thread=5)
        assert client.flush().stored == 5


def test_sdk_usage_errors_are_input_errors_not_bugs(
    sqlite_store: Store, project: Project, tmp_path: Path
) -> None:
    with pytest.raises(SDKUsageError, match="unknown overflow policy 'nope'") as bad:
        Client(store=sqlite_store, on_overflow="nope")
    assert isinstance(bad.value, InputError) and exit_code(bad.value) == 2
    assert bad.value.field == "on_overflow"
    with pytest.raises(SDKUsageError, match="resolve_timeout"):
        Client(store=sqlite_store, resolve_timeout=0)
    with Client(store=sqlite_store) as client:
        with pytest.raises(SDKUsageError, match="needs workflow= and env="):
            client.run("0" * 64)
        with pytest.raises(SDKUsageError, match="a resolved version or a version id"):
            client.run(42)  # type: ignore[arg-type]


APP = """
import sys
from releasegate import Client

client = Client(sys.argv[1], spill_dir=sys.argv[2], flush_every=60)
for i in range(100):
    with client.run(sys.argv[3], workflow="router", env="staging", input=f"m{i}") as r:
        r.output = "fraud"
# no close(): the application just exits
"""


def test_an_application_exiting_during_an_outage_without_closing_keeps_its_runs_on_disk(
    sqlite_store: Store, project: Project, tmp_path: Path
) -> None:
    vid = shipped(sqlite_store, project)
    break_runs_table(sqlite_store)
    sqlite_store.close()
    script = tmp_path / "app.py"
    script.write_text(APP)
    spill_dir = tmp_path / "spill"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("RELEASEGATE_DATABASE_URL", None)
    exited = subprocess.run(
        [sys.executable, str(script), str(tmp_path), str(spill_dir), vid],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert exited.returncode == 0, exited.stderr
    assert "could not store 100 runs" in exited.stderr  # said, not silent
    lines = [json.loads(x) for f in spill_dir.glob("*.jsonl") for x in f.read_text().splitlines()]
    assert sorted(r["input"] for r in lines) == sorted(f"m{i}" for i in range(100))

    unwritable = tmp_path / "a-file"
    unwritable.write_text("")
    lost = subprocess.run(
        [sys.executable, str(script), str(tmp_path), str(unwritable / "spill"), vid],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert "100 runs could be neither stored nor spilled and are lost" in lost.stderr


def test_runs_spilled_during_an_outage_are_stored_once_the_store_answers_again(
    sqlite_store: Store, project: Project, tmp_path: Path
) -> None:
    vid = shipped(sqlite_store, project)
    spill_dir = tmp_path / "spill"
    with Client(store=sqlite_store, spill_dir=spill_dir, flush_every=60) as client:
        break_runs_table(sqlite_store)
        send(client, vid, threads=1, per_thread=100)
        assert client.flush().spilled == 100  # the store is down: to disk, not lost
        mend_runs_table(sqlite_store)
        send(client, vid, threads=1, per_thread=10)
        assert client.flush().stored == 10  # the store answers: the spill file goes in too
        assert client.stats.replayed == 100
    assert count(sqlite_store) == 110
    assert not list(spill_dir.glob("*.jsonl"))


PREVIOUS_KEYS = {
    "run_id", "workflow", "version_id", "env", "started_at", "ended_at", "latency_ms",
    "tokens_in", "tokens_out", "cost_usd", "model", "status", "failure_reason", "retries",
    "escalated", "edited", "feedback", "input", "output", "label", "attributes", "arm",
}  # fmt: skip
"""The keys of a spilled run as the SDK wrote them before it queued tuples (0.x, a dict
per run): spill files of that release must still replay, and new ones keep the shape."""


def test_a_spill_file_of_the_previous_release_replays_and_new_ones_keep_its_shape(
    sqlite_store: Store, project: Project, tmp_path: Path
) -> None:
    vid = shipped(sqlite_store, project)
    spill_dir = tmp_path / "spill"
    spill_dir.mkdir()
    old = (  # a line as the previous release's spill file holds it
        '{"run_id":"0193a1b2c3d4e5f60718293a00000000007","workflow":"router",'
        f'"version_id":"{vid}","env":"staging","started_at":1764800000.25,'
        '"ended_at":1764800000.5,"latency_ms":250.0,"tokens_in":40,"tokens_out":2,'
        '"cost_usd":null,"model":"gpt-4o-mini","status":"error","failure_reason":'
        '"TimeoutError: upstream","retries":1,"escalated":true,"edited":false,"feedback":-0.5,'
        '"input":"where is my card?","output":null,"label":null,'
        '"attributes":{"tenant":"acme"},"arm":null}\n'
    )
    (spill_dir / "runs-1-previous-1.jsonl").write_text(old)
    with Client(store=sqlite_store, spill_dir=spill_dir, flush_every=60) as client:
        client.flush()
        assert client.stats.replayed == 1
    with sqlite_store.read() as conn:
        stored = RunRepo(conn).get("0193a1b2c3d4e5f60718293a00000000007")
    assert stored is not None
    assert (stored["status"], stored["failure_reason"], stored["escalated"]) == (
        "error",
        "TimeoutError: upstream",
        True,
    )
    assert (stored["input"], stored["feedback"], stored["attributes_json"]) == (
        "where is my card?",
        -0.5,
        '{"tenant": "acme"}',
    )

    break_runs_table(sqlite_store)  # a run spilled now: the same keys as before
    with Client(store=sqlite_store, spill_dir=spill_dir, flush_every=60) as client:
        send(client, vid, threads=1, per_thread=1)
        assert client.flush().spilled == 1
    [line] = [json.loads(x) for f in spill_dir.glob("*.jsonl") for x in f.read_text().splitlines()]
    assert set(line) == PREVIOUS_KEYS
    assert (line["input"], line["label"], line["tokens_in"]) == ("msg 0-0", "fraud", 40)
