"""Runs in, on both databases: whole batches or nothing, no double counting, and a version
running outside the gate raising a critical alert at once."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from releasegate.monitor import ingest
from releasegate.monitor.ingest import import_jsonl, ingest_dicts
from releasegate.providers import prices
from releasegate.release.evaluate import evaluate
from releasegate.release.gate import gate
from releasegate.release.promote import promote
from releasegate.release.register import register
from releasegate.store.alerts import AlertRepo
from releasegate.store.engine import Store
from releasegate.store.runs import RunRepo
from releasegate.store.workflows import WorkflowRepo
from tests.helpers import Project


def shipped(store: Store, project: Project) -> str:
    vid = register(store, project.workflow("v1"), who="alice").version_id
    evaluate(store, vid, project.suite(), who="alice")
    assert gate(store, vid, "staging", who="ci").verdict == "pass"
    promote(store, vid, "staging", who="alice")
    return vid


def run(vid: str, i: int, **kw: Any) -> dict[str, Any]:
    return {
        "run_id": f"run-{i:05d}",
        "workflow": "router",
        "version_id": vid,
        "env": "staging",
        "started_at": time.time() - 3600 + i,
        "latency_ms": 120.0 + i,
        "tokens_in": 40,
        "tokens_out": 2,
        "status": "ok",
        "input": f"message {i}",
        "output": "fraud",
        "label": "fraud",
        **kw,
    }


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def count(store: Store) -> int:
    with store.read() as conn:
        return RunRepo(conn).count()


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(root=tmp_path)


def test_a_file_lands_whole_and_a_second_import_lands_nothing_twice(
    store: Store, project: Project, tmp_path: Path
) -> None:
    vid = shipped(store, project)
    path = write_jsonl(tmp_path / "runs.jsonl", [run(vid, i) for i in range(250)])
    first = import_jsonl(store, path)
    assert (first.landed, first.duplicates, first.rejected) == (250, 0, [])
    assert first.outside_gate == [] and first.alerts == []
    again = import_jsonl(store, path)
    assert (again.landed, again.duplicates) == (0, 250)
    assert count(store) == 250
    with store.read() as conn:
        stored = RunRepo(conn).get("run-00007")
    assert stored is not None
    assert stored["version_id"] == vid and stored["latency_ms"] == 127.0
    assert stored["output_chars"] == len("fraud") and stored["input_hash"]


def test_one_bad_record_lands_nothing_and_names_its_line_and_field(
    store: Store, project: Project, tmp_path: Path
) -> None:
    vid = shipped(store, project)
    rows = [run(vid, i) for i in range(30)]
    rows[17]["tokens_in"] = -3
    rows[22]["status"] = "maybe"
    path = write_jsonl(tmp_path / "runs.jsonl", rows)
    result = import_jsonl(store, path)
    assert result.landed == 0 and count(store) == 0
    where = [(r.line, r.field) for r in result.rejected]
    assert where == [(18, "tokens_in"), (23, "status")]


def test_line_numbers_stay_right_across_chunks(
    store: Store, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import releasegate.monitor.ingest as ingest

    monkeypatch.setattr(ingest, "CHUNK", 7)
    vid = shipped(store, project)
    rows = [run(vid, i) for i in range(30)]
    rows[25]["started_at"] = "yesterday"
    result = import_jsonl(store, write_jsonl(tmp_path / "r.jsonl", rows))
    assert [(r.line, r.field) for r in result.rejected] == [(26, "started_at")]
    assert count(store) == 0


def test_a_version_that_never_passed_the_gate_raises_an_alert_at_once(
    store: Store, project: Project
) -> None:
    vid = shipped(store, project)
    rogue = register(store, project.workflow("v9", temperature=0.9), who="alice").version_id
    result = ingest_dicts(
        store,
        [run(vid, 1), run(rogue, 2), run(rogue, 3), run("f" * 64, 4)],
        source="http",
    )
    assert result.landed == 4
    outside = {(o.version_id, o.runs, o.registered) for o in result.outside_gate}
    assert outside == {(rogue, 2, True), ("f" * 64, 1, False)}
    assert all(a.severity == "critical" for a in result.alerts) and len(result.alerts) == 2
    assert "never passed the gate" in result.alerts[0].message
    with store.read() as conn:
        last = AlertRepo(conn).last("router", "staging", f"outside_gate:{rogue[:12]}")
    assert last is not None and last.payload["runs"] == 2
    again = ingest_dicts(store, [run(rogue, 5)], source="http")
    assert again.outside_gate and again.alerts == []  # still outside, but within the cool-down


def test_http_batches_are_atomic_and_the_sdk_keeps_the_good_runs(
    store: Store, project: Project
) -> None:
    vid = shipped(store, project)
    batch = [run(vid, 1), run(vid, 2, feedback=4.0), run(vid, 3)]
    refused = ingest_dicts(store, batch, source="http")
    assert refused.landed == 0 and [r.field for r in refused.rejected] == ["feedback"]
    assert count(store) == 0
    partial = ingest_dicts(store, batch, source="sdk", atomic=False)
    assert partial.landed == 2 and len(partial.rejected) == 1
    assert count(store) == 2


def test_otlp_traces_from_the_real_sdk_land_as_runs(store: Store, project: Project) -> None:
    from releasegate.monitor.ingest import ingest_otlp
    from tests.domain.test_otlp import Telemetry

    vid = shipped(store, project)
    app = Telemetry({"service.name": "router-api", "deployment.environment.name": "staging"})
    start = time.time_ns() - 5_000_000_000
    for i, status in enumerate(["ok", "ok", "error"]):
        attrs = {"releasegate.version": vid, "releasegate.workflow": "router"}
        with app.tracer.start_as_current_span(
            "route", start_time=start + i, end_on_exit=False, attributes=attrs
        ) as span:
            with app.tracer.start_as_current_span(
                "chat",
                start_time=start + i + 10,
                end_on_exit=False,
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "m-1",
                    "gen_ai.usage.input_tokens": 30,
                    "gen_ai.usage.output_tokens": 4,
                },
            ) as chat:
                chat.end(end_time=start + i + 200_000_000)
            if status == "error":
                from opentelemetry.trace import Status, StatusCode

                span.set_status(Status(StatusCode.ERROR, "upstream 503"))
            span.end(end_time=start + i + 250_000_000)
    with app.tracer.start_as_current_span("health-check"):
        pass
    result = ingest_otlp(store, app.payload())
    app.provider.shutdown()
    assert (result.landed, result.skipped, result.rejected) == (3, 1, [])
    assert result.outside_gate == []
    with store.read() as conn:
        rows = RunRepo(conn).window(
            "router", "staging", 0, 2e9, ["status", "failure_reason", "tokens_in", "model"]
        )
    assert sorted(rows) == [
        ("error", "upstream 503", 30, "m-1"),
        ("ok", None, 30, "m-1"),
        ("ok", None, 30, "m-1"),
    ]


def test_an_interrupted_import_lands_nothing_before_its_first_commit(
    store: Store, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import releasegate.monitor.ingest as ingest

    monkeypatch.setattr(ingest, "CHUNK", 10)
    monkeypatch.setattr(ingest, "COMMIT_SECONDS", 1e9)  # commits by count only, here
    vid = shipped(store, project)
    path = write_jsonl(tmp_path / "r.jsonl", [run(vid, i) for i in range(50)])
    chunks = 0

    def ctrl_c(n: int) -> None:
        nonlocal chunks
        chunks += 1
        if chunks == 3:  # two chunks already inserted inside the transaction
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_jsonl(store, path, progress=ctrl_c)
    assert count(store) == 0
    assert import_jsonl(store, path).landed == 50  # and the file imports whole afterwards


def test_a_long_import_commits_in_chunks_and_resumes_where_it_stopped(
    store: Store, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest, "CHUNK", 10)
    monkeypatch.setattr(ingest, "COMMIT_RUNS", 20)  # a commit after every second chunk
    monkeypatch.setattr(ingest, "COMMIT_SECONDS", 1e9)
    vid = shipped(store, project)
    path = write_jsonl(tmp_path / "r.jsonl", [run(vid, i) for i in range(50)])
    chunks = 0

    def ctrl_c(n: int) -> None:
        nonlocal chunks
        chunks += 1
        if chunks == 3:  # chunks 1-2 committed, chunk 3 inside the open transaction
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        import_jsonl(store, path, progress=ctrl_c)
    assert count(store) == 20
    again = import_jsonl(store, path)  # resumes: what was committed is skipped by run_id
    assert (again.landed, again.duplicates, count(store)) == (30, 20, 50)


def test_a_bad_line_after_a_commit_still_lands_nothing_of_the_file(
    store: Store, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ingest, "CHUNK", 10)
    monkeypatch.setattr(ingest, "COMMIT_RUNS", 10)
    vid = shipped(store, project)
    before = write_jsonl(tmp_path / "before.jsonl", [run(vid, i) for i in range(100, 105)])
    assert import_jsonl(store, before).landed == 5
    rows = [run(vid, i) for i in range(45)] + [run(vid, 45, status="maybe")]
    result = import_jsonl(store, write_jsonl(tmp_path / "bad.jsonl", rows))
    assert result.landed == 0 and [r.line for r in result.rejected] == [46]
    assert count(store) == 5  # the earlier import's runs stay, this file's are gone again


def test_two_importers_at_once_land_every_run_once(
    store: Store, project: Project, tmp_path: Path
) -> None:
    import threading

    vid = shipped(store, project)
    rows = [run(vid, i) for i in range(900)]  # the shared runs identical in both files
    a = write_jsonl(tmp_path / "a.jsonl", rows[:600])
    b = write_jsonl(tmp_path / "b.jsonl", rows[300:])
    landed: list[int] = []
    errors: list[BaseException] = []

    def load(path: Path) -> None:
        try:
            landed.append(import_jsonl(store, path).landed)
        except BaseException as exc:  # noqa: BLE001 (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=load, args=(p,)) for p in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(landed) == 900 and count(store) == 900  # the 300 shared runs landed once


def test_missing_values_are_stored_as_null_and_flags_as_booleans(
    store: Store, project: Project
) -> None:
    vid = shipped(store, project)
    bare = run(vid, 1, tokens_in=0, label=None, output=None, input=None, escalated=True)
    full = run(vid, 2, cost_usd=0.0, feedback=-0.5, model="m-1", operation="chat")
    full |= {"status": "error", "failure_reason": "timeout", "attributes": {"k": 1}}
    assert ingest_dicts(store, [bare, full], source="http").landed == 2
    with store.read() as conn:
        a, b = RunRepo(conn).get("run-00001"), RunRepo(conn).get("run-00002")
    assert a is not None and b is not None
    for column in ("cost_usd", "feedback", "model", "operation", "failure_reason", "label"):
        assert a[column] is None, column
    for column in ("input", "output", "input_hash", "output_hash", "output_chars"):
        assert a[column] is None, column
    assert a["attributes_json"] is None and bool(a["escalated"]) and not a["edited"]
    assert (b["cost_usd"], b["feedback"], b["model"], b["operation"]) == (0.0, -0.5, "m-1", "chat")
    assert (b["failure_reason"], b["label"], b["output_chars"]) == ("timeout", "fraud", 5)
    assert json.loads(b["attributes_json"]) == {"k": 1} and not b["escalated"]


@pytest.mark.parametrize("workers", [1, 2])
def test_worker_processes_land_the_same_rows_and_name_the_same_lines(
    store: Store, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    import releasegate.monitor.ingest as ingest

    monkeypatch.setattr(ingest, "CHUNK", 7)
    vid = shipped(store, project)
    rows = [run(vid, i, feedback=None if i % 3 else 0.5) for i in range(40)]
    rows[5]["input"] = None  # a column holding None travels as a list, not joined
    if store.dialect == "sqlite":  # PostgreSQL text cannot hold NUL
        rows[6]["output"] = "a separator \u0000 inside"
    bad = [dict(r) for r in rows]
    bad[3]["tokens_in"], bad[33]["status"] = -1, "maybe"
    refused = import_jsonl(store, write_jsonl(tmp_path / "bad.jsonl", bad), workers=workers)
    assert [(r.line, r.field) for r in refused.rejected] == [(4, "tokens_in"), (34, "status")]
    assert refused.landed == 0 and count(store) == 0
    seen: list[int] = []
    path = write_jsonl(tmp_path / "runs.jsonl", rows)
    result = import_jsonl(store, path, workers=workers, progress=seen.append)
    assert (result.landed, result.received, result.rejected) == (40, 40, [])
    assert sum(seen) == 40 and not result.outside_gate
    with store.read() as conn:
        stored = [RunRepo(conn).get(f"run-{i:05d}") for i in (0, 5, 39)]
        odd = RunRepo(conn).get("run-00006")
    assert odd is not None and odd["output"] == rows[6]["output"]
    assert [s["input"] for s in stored if s] == ["message 0", None, "message 39"]
    assert [s["feedback"] for s in stored if s] == [0.5, None, 0.5]
    assert [bool(s["input_hash"]) for s in stored if s] == [True, False, True]
    assert [s["output_chars"] for s in stored if s] == [5, 5, 5]


def test_an_import_goes_on_in_process_when_a_worker_cannot_start(
    store: Store, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import multiprocessing.resource_tracker
    import multiprocessing.spawn

    vid = shipped(store, project)
    path = write_jsonl(tmp_path / "runs.jsonl", [run(vid, i) for i in range(30)])
    # the tracker starts with the real python first: a broken one would outlive this test
    multiprocessing.resource_tracker.ensure_running()
    bad = os.fsencode(tmp_path / "no-such-python")  # as spawn.set_executable stores it
    monkeypatch.setattr(multiprocessing.spawn, "_python_exe", bad)
    result = import_jsonl(store, path, workers=2)
    assert (result.landed, result.rejected) == (30, []) and count(store) == 30


def test_a_run_without_a_cost_is_priced_from_the_price_table_as_it_lands(
    store: Store, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vid = shipped(store, project)
    table = tmp_path / "our-prices.yaml"
    table.write_text("version: acme-1\nmodels:\n  acme-router: {input: 4.0, output: 8.0}\n")
    monkeypatch.setenv("RELEASEGATE_PRICES", str(table))
    tokens = {"tokens_in": 1000, "tokens_out": 500}
    runs = [
        run(vid, 1, model="gpt-4o-mini-2024-07-18", **tokens),  # the shipped table, by snapshot
        run(vid, 2, model="acme-router", **tokens),  # the project's own entry
        run(vid, 3, model="acme-router", cost_usd=0.5, **tokens),  # a reported cost stands
        run(vid, 4, model="llama3.1:8b", provider="ollama", **tokens),  # the user's own box
        run(vid, 5, model="nobody-prices-this", **tokens),
    ]
    assert ingest_dicts(store, runs, source="http").landed == 5
    with store.read() as conn:
        costs = [RunRepo(conn).get(f"run-{i:05d}")["cost_usd"] for i in range(1, 6)]  # type: ignore[index]
    shipped_mini = prices.load_table().find("gpt-4o-mini")
    assert shipped_mini is not None
    assert costs[0] == pytest.approx(shipped_mini[1].cost(1000, 500))
    assert costs[1:] == [pytest.approx((1000 * 4.0 + 500 * 8.0) / 1e6), 0.5, 0.0, None]


@pytest.mark.skipif(not Path("/proc/stat").exists(), reason="reads Linux's /proc/stat")
def test_parse_workers_are_only_started_for_cores_that_are_idle_now() -> None:
    import os
    import subprocess
    import sys

    cpus = len(os.sched_getaffinity(0))
    if ingest._cpu_ticks()[2] != cpus:
        pytest.skip("this process may use only some of the host's CPUs: one burner hides there")
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)
        busy = ingest._idle_cores(cpus, sample_s=0.3)
    finally:
        burner.kill()
        burner.wait()
    assert 0.0 <= busy <= cpus - 0.7  # the burner holds a core whatever else runs


def test_a_run_prefix_with_underscore_or_percent_matches_literally(
    store: Store, project: Project
) -> None:
    vid = shipped(store, project)
    ids = ["job_41", "jobX41", "job%42"]
    runs = [run(vid, i) | {"run_id": run_id} for i, run_id in enumerate(ids)]
    assert ingest_dicts(store, runs, source="http").landed == 3
    with store.read() as conn:
        assert RunRepo(conn).by_prefix("job_4") == ["job_41"]
        assert RunRepo(conn).by_prefix("job%") == ["job%42"]
        assert RunRepo(conn).by_prefix("job") == sorted(ids)


def test_a_price_table_that_cannot_be_read_leaves_costs_empty_and_loses_no_run(
    store: Store, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vid = shipped(store, project)
    broken = tmp_path / "prices.yaml"
    broken.write_text("version: 1\nmodels:\n  gpt-4o: {input: cheap}\n")
    monkeypatch.setenv("RELEASEGATE_PRICES", str(broken))
    runs = [run(vid, 1, model="gpt-4o"), run(vid, 2, model="gpt-4o", cost_usd=0.25)]
    assert ingest_dicts(store, runs, source="http").landed == 2
    path = write_jsonl(tmp_path / "runs.jsonl", [run(vid, 3, model="gpt-4o")])
    assert import_jsonl(store, path).landed == 1
    with store.read() as conn:
        costs = [RunRepo(conn).get(f"run-{i:05d}")["cost_usd"] for i in (1, 2, 3)]  # type: ignore[index]
    assert costs == [None, 0.25, None]


def test_the_longest_names_and_largest_counts_a_run_may_carry_land_on_both_databases(
    store: Store, project: Project
) -> None:
    vid = shipped(store, project)
    wide = run(vid, 1, model="m" * 256, operation="o" * 256, label="l" * 256)
    wide |= {"run_id": "r" * 256, "env": "e" * 256, "tokens_in": 2**40, "retries": 2**40}
    with store.write() as conn:  # a workflow declaring the longest environment name
        w = WorkflowRepo(conn).get("router")
        WorkflowRepo(conn).upsert(
            name=w.name,
            description=w.description,
            stakes=w.stakes,
            owners=w.owners,
            environments=[*w.environments, "e" * 256],
            monitor=w.monitor,
        )
    assert ingest_dicts(store, [wide], source="http").landed == 1
    with store.read() as conn:
        stored = RunRepo(conn).get("r" * 256)
    assert stored is not None
    assert (stored["env"], stored["label"], stored["tokens_in"]) == ("e" * 256, "l" * 256, 2**40)


def test_runs_naming_what_the_store_does_not_know_are_rejected(
    store: Store, project: Project
) -> None:
    vid = shipped(store, project)
    good, typo, env = run(vid, 1), run(vid, 2, workflow="ruoter"), run(vid, 3, env="prod")
    sdk = ingest_dicts(store, [good, typo, env], source="sdk", atomic=False)  # the SDK's call
    assert sdk.landed == 1 and [(r.run_id, r.field) for r in sdk.rejected] == [
        ("run-00002", "workflow"),
        ("run-00003", "env"),
    ]
    assert "did you mean 'router'?" in sdk.rejected[0].reason
    http = ingest_dicts(store, [run(vid, 4), typo], source="http")  # atomic: none lands
    assert (http.landed, http.rejected_count) == (0, 1) and count(store) == 1


def test_a_run_id_resent_with_other_content_is_rejected_in_a_later_batch(
    store: Store, project: Project
) -> None:
    vid = shipped(store, project)
    first = run(vid, 1)
    assert ingest_dicts(store, [first], source="http").landed == 1
    same = ingest_dicts(store, [dict(first)], source="sdk", atomic=False)
    assert (same.landed, same.duplicates, same.rejected) == (0, 1, [])
    other = ingest_dicts(store, [{**first, "latency_ms": 1.0}, run(vid, 2)], source="http")
    assert other.landed == 0 and [(r.run_id, r.field) for r in other.rejected] == [
        ("run-00001", "run_id")
    ]
    assert "already stored with other content" in other.rejected[0].reason
    assert count(store) == 1


def test_parse_workers_do_not_run_the_callers_script_again(
    store: Store, project: Project, tmp_path: Path
) -> None:
    import subprocess
    import sys

    vid = shipped(store, project)
    path = write_jsonl(tmp_path / "runs.jsonl", [run(vid, i) for i in range(30)])
    marks = tmp_path / "marks.txt"
    script = tmp_path / "unguarded.py"  # no `if __name__ == "__main__":`, as scripts often are
    script.write_text(
        "import pathlib\n"
        "from releasegate.monitor.ingest import import_jsonl\n"
        "from releasegate.store.engine import Store\n"
        f"with pathlib.Path({str(marks)!r}).open('a') as m: m.write('ran\\n')\n"
        f"store = Store.open(pathlib.Path({str(tmp_path)!r}))\n"
        f"print(import_jsonl(store, pathlib.Path({str(path)!r}), workers=2).landed)\n"
    )
    env = {**os.environ, "RELEASEGATE_DATABASE_URL": store.location.url}
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["30"]
    assert marks.read_text() == "ran\n"  # the workers never ran it again
