"""``queue list``, ``queue mark``, ``queue case`` and ``queue log`` in a real subprocess:
exit codes, the messages on stderr, pure JSON on stdout, and nothing written on bad input."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.helpers import Project, ok_json, rg
from tests.release.test_review_queue import runs


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """One project for the module: the bad-input tests write nothing, so they share it."""
    project = Project(root=tmp_path_factory.mktemp("queue"))
    d = project.root
    vid = ok_json(rg(d, "register", str(project.workflow("v1")), "--json"))["version_id"]
    project.suite(n=8)
    assert rg(d, "eval", vid, "--suite", "suite.yaml").returncode == 0
    (d / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs(vid)))
    imported = rg(d, "runs", "import", "runs.jsonl")
    assert imported.returncode in (0, 1), imported.stderr  # 1: a version outside the gate
    return project


def test_list_mark_case_and_log(project: Project) -> None:
    d = project.root
    listed = rg(d, "queue", "list", "router")
    assert listed.returncode == 0, listed.stderr
    assert "run-000" in listed.stdout and "escalated" in listed.stdout
    assert "of traffic" in listed.stdout
    q = ok_json(rg(d, "queue", "list", "router", "--env", "production", "--json"))
    assert q["items"][0]["run_id"] == "run-000" and q["runs"] == 60
    first = ok_json(rg(d, "queue", "list", "router", "--limit", "3", "--json"))
    assert len(first["items"]) == 3 and first["next"]
    more = ok_json(
        rg(d, "queue", "list", "router", "--limit", "3", "--after", first["next"], "--json")
    )
    assert more["items"][0]["run_id"] == q["items"][3]["run_id"]

    marked = rg(d, "queue", "mark", "run-010", "--bad", "--expected", "fraud", "--as", "bob",
                "--to-suite", "suite.yaml")  # fmt: skip
    assert marked.returncode == 0, marked.stderr
    assert "bob marked run run-010 bad with a corrected output" in marked.stdout
    assert "added case case-9 to suite.jsonl" in marked.stdout
    again = rg(d, "queue", "mark", "run-010", "--bad", "--expected", "fraud", "--as", "bob")
    assert again.returncode == 1 and "nothing to change" in again.stderr
    changed = ok_json(rg(d, "queue", "mark", "run-010", "--good", "--as", "bob", "--json"))
    assert changed["updated"] is True and changed["previous"]["verdict"] == "bad"
    assert changed["case_id"] == "case-9"  # the case made from it is still named

    # as alice (the actor): bad, no correction, and the suite's scorers need an expected
    rg(d, "queue", "mark", "run-007", "--bad", "--note", "wrong tone")
    before = (d / "suite.jsonl").read_text()
    refused = rg(d, "queue", "case", "run-007", "--suite", "suite.yaml")
    assert refused.returncode == 2 and "has no 'expected'" in refused.stderr
    assert (d / "suite.jsonl").read_text() == before
    # marked good, its own output is the expected one
    rg(d, "queue", "mark", "run-007", "--good")
    made = ok_json(rg(d, "queue", "case", "run-007", "--suite", "suite.yaml", "--json"))
    assert made["reviewer"] == "alice" and made["case_id"] == "case-10"
    case = json.loads((d / "suite.jsonl").read_text().splitlines()[-1])
    assert case["expected"] == "complaint" and case["metadata"]["verdict"] == "good"

    log = ok_json(rg(d, "queue", "log", "router", "--json"))
    assert log["stats"]["reviews"] == 2 and log["stats"]["cases"] == 2
    assert log["stats"]["bad_share"] == 0.0  # both runs' latest word is good
    text = rg(d, "queue", "log", "router")
    assert text.returncode == 0 and "review coverage" in text.stdout and "case-10" in text.stdout
    audit = ok_json(rg(d, "audit", "log", "--json"))
    assert {"review.marked", "review.updated", "review.case_added"} <= {e["kind"] for e in audit}


def _unchanged(d: Path) -> tuple[str, int, int]:
    """The cases file, and the reviews and audit events stored."""
    with sqlite3.connect(d / ".releasegate" / "releasegate.db") as db:
        reviews = db.execute("SELECT count(*) FROM run_reviews").fetchone()[0]
        events = db.execute("SELECT count(*) FROM audit_events").fetchone()[0]
    return (d / "suite.jsonl").read_text(), reviews, events


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("queue", "mark", "nope", "--bad"), "no run 'nope'"),
        (("queue", "mark", "run-010"), "--good or --bad"),
        (("queue", "mark", "run-010", "--good", "--bad"), "--good or --bad"),
        (("queue", "mark", "run-010", "--bad", "--to-suite", "missing.yaml"), "missing.yaml"),
        (("queue", "mark", "run-010", "--bad", "--reason", "x"), "--to-suite"),
        (("queue", "case", "run-000", "--suite", "suite.yaml"), "has not reviewed run run-000"),
        (("queue", "list", "router", "--period", "yesterday"), "--period"),
        (("queue", "list", "router", "--env", "moon"), "no environment 'moon'"),
        (("queue", "list", "nope"), "no workflow 'nope'"),
        (("queue", "list", "router", "--after", "garbage"), "not a queue cursor"),
        (("queue", "list", "router", "--sample", "2"), "sample share"),
        (("queue", "log", "router", "--period", "2026-W99"), "--period"),
    ],
)
def test_bad_input_is_exit_2_and_writes_nothing(
    project: Project, argv: tuple[str, ...], message: str
) -> None:
    d = project.root
    before = _unchanged(d)
    done = rg(d, *argv, "--json")
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and done.stdout == ""
    assert _unchanged(d) == before


def test_through_a_server_the_queue_verbs_go_there_and_touch_no_local_store(
    project: Project,
) -> None:
    d = project.root
    before = _unchanged(d)
    env = {"RELEASEGATE_URL": "http://127.0.0.1:9", "RELEASEGATE_TIMEOUT": "3"}
    for argv in (("queue", "list", "router"), ("queue", "mark", "run-010", "--bad")):
        done = rg(d, *argv, env=env)
        assert (done.returncode, done.stdout) == (2, "")
        assert done.stderr.startswith("error: the server at http://127.0.0.1:9 did not answer")
    assert _unchanged(d) == before
