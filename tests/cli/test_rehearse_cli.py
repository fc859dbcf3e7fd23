"""``releasegate rehearse`` in a subprocess on the demo workflow: exit 1 and a JSON report
naming the mutation a thin suite let through, with add-case lines that paste as they are;
production refused with nothing written; exit 0 when the suite catches everything."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import sqlalchemy as sa

from releasegate.release.store_access import open_store
from tests.helpers import rg
from tests.release.test_rehearse import WF, demo_suite, record_runs, shipped


def audit_count(root: Path) -> int:
    store = open_store(root)
    try:
        with store.read() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM audit_events")).scalar_one())
    finally:
        store.close()


def test_a_thin_suite_exits_1_with_cases_that_paste_as_they_are(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    shipped(store, tmp_path, margin=0.3)
    record_runs(store)
    store.close()
    done = rg(tmp_path, "rehearse", WF, "--env", "staging", "--suite", "thin.yaml", "--json")
    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert report["result"] == "suite-too-weak" and report["restored"] is True
    assert report["suite_too_weak"] is True and "swap-labels" in report["escaped"]
    assert report["detected_by"] == "runs"  # the gate missed it, the replayed runs did not
    by = {m["name"]: m for m in report["mutations"]}
    assert by["shuffle-labels"]["verdict"] == "fail"
    line = by["swap-labels"]["proposed"][0]
    assert line.startswith("releasegate suite add-case thin.yaml --from-run ")
    pasted = rg(tmp_path, *shlex.split(line)[1:])
    assert pasted.returncode == 0, pasted.stderr
    assert "added case" in pasted.stdout
    # the same rehearsal in words says what is too weak and how to fix it
    text = rg(tmp_path, "rehearse", WF, "--env", "staging", "--suite", "thin.yaml")
    assert text.returncode == 1, text.stderr
    assert "the suite is too weak: it did not catch" in text.stdout
    assert "original serving again (resolve): yes" in text.stdout
    assert "result: suite-too-weak" in text.stdout


def test_production_is_refused_with_nothing_written(tmp_path: Path) -> None:
    store = open_store(tmp_path)
    shipped(store, tmp_path)
    store.close()
    before = audit_count(tmp_path)
    done = rg(tmp_path, "rehearse", WF, "--env", "production")
    assert done.returncode == 1
    assert done.stderr.splitlines()[:2] == [
        "refused: 'production' is the production environment of support-triage: a rehearsal "
        "would serve a degraded version there",
        "  hint: rehearse on staging, or pass --allow-production to mean it",
    ]
    assert done.stdout == ""
    assert audit_count(tmp_path) == before


def test_a_suite_that_catches_every_mutation_exits_0(tmp_path: Path) -> None:
    from releasegate.release.evaluate import evaluate

    store = open_store(tmp_path)
    v2 = shipped(store, tmp_path)
    evaluate(store, v2, demo_suite(tmp_path, "core", 10), who="alice")
    store.close()
    done = rg(tmp_path, "rehearse", WF, "--env", "staging")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "mutation score: 100% (4 of 4 caught)" in done.stdout
    assert "result: passed" in done.stdout
