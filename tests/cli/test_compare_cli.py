"""``releasegate compare`` through a real subprocess, judged by the loopback server."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import Project, rg
from tests.release.test_compare import N_CASES, prefers_longer
from tests.runner.test_judge import KEY_ENV, JudgeServer

ENV = {KEY_ENV: "sk-judge-test"}


@pytest.fixture
def judge_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[JudgeServer]:
    running = JudgeServer(monkeypatch, prefers_longer)
    yield running
    running.server.stop()


def ok_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def judgements(root: Path) -> int:
    with sqlite3.connect(root / ".releasegate" / "releasegate.db") as db:
        return int(db.execute("SELECT count(*) FROM scores").fetchone()[0])


@pytest.fixture
def project(tmp_path: Path, judge_server: JudgeServer) -> dict[str, str]:
    """Two registered versions, long and short answers, evaluated on one suite."""
    p = Project(root=tmp_path, fn="tests.release.test_compare:answer")
    ids = {}
    for style in ("long", "short"):
        path = p.workflow(style, style=style)
        ids[style] = ok_json(rg(tmp_path, "register", str(path), "--json"))["version_id"]
    rows = [{"id": f"c{i}", "input": f"question case {i}"} for i in range(N_CASES)]
    (tmp_path / "cases.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    suite = {
        "suite": "answers",
        "workflow": "router",
        "cases": "cases.jsonl",
        "scorers": [{"type": "regex", "params": {"pattern": "ok"}}],
    }
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    ok_json(rg(tmp_path, "eval", ids["short"], "--suite", "suite.yaml", "--json"))
    judge = {"model": judge_server.model(), "rubric": "Which response answers more completely?"}
    (tmp_path / "judge.yaml").write_text(yaml.safe_dump(judge, sort_keys=False))
    return ids


def compare(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return rg(root, "compare", *args, "--suite", "suite.yaml", "--judge", "judge.yaml", env=ENV)


def test_compare_end_to_end(
    tmp_path: Path, project: dict[str, str], judge_server: JudgeServer
) -> None:
    long, short = project["long"][:10], project["short"][:10]
    missing = compare(tmp_path, long, short)
    assert missing.returncode == 2 and missing.stdout == ""
    assert f"error: no completed eval of {project['long'][:12]} on suite 'answers'" in (
        missing.stderr
    )
    assert f"hint: run `releasegate eval {project['long'][:12]} --suite suite.yaml`" in (
        missing.stderr
    )
    ok_json(rg(tmp_path, "eval", long, "--suite", "suite.yaml", "--json"))

    report = ok_json(compare(tmp_path, long, short, "--concurrency", "3", "--json"))
    assert (report["n"], report["wins"], report["losses"], report["ties"]) == (
        N_CASES,
        N_CASES,
        0,
        0,
    )
    assert report["inconsistent"] == 0 and report["called"] == 2 * N_CASES
    assert report["candidate_id"] == project["long"] and report["baseline_id"] == project["short"]
    assert report["judge"]["model"] == "judge-test" and report["judge"]["revision"] == "2024-06-01"
    assert report["win_rate"]["estimate"] == 1.0 and report["win_rate"]["method"] == "wilson"
    assert judge_server.calls == 2 * N_CASES

    text = compare(tmp_path, short, long)  # the human summary; new pair, new judgements
    assert text.returncode == 0, text.stderr
    assert f"compare router: {project['short'][:12]} vs {project['long'][:12]}" in text.stdout
    assert "judge judge-test@2024-06-01" in text.stdout
    assert "cases the candidate did not win" in text.stdout and "B says more" in text.stdout

    again = ok_json(compare(tmp_path, long, short, "--json"))
    assert (again["called"], again["cached"]) == (0, 2 * N_CASES)
    assert judge_server.calls == 4 * N_CASES  # the re-run asked the judge nothing


def test_a_bad_judge_file_exits_2_naming_file_line_and_field(
    tmp_path: Path, project: dict[str, str], judge_server: JudgeServer
) -> None:
    ok_json(rg(tmp_path, "eval", project["long"], "--suite", "suite.yaml", "--json"))
    before = judgements(tmp_path)
    model = {k: v for k, v in judge_server.model().items() if k != "revision"}
    (tmp_path / "judge.yaml").write_text(yaml.safe_dump({"model": model, "rubric": "Better?"}))
    bad = compare(tmp_path, project["long"], project["short"], "--json")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.splitlines()[0] == (
        "error: judge.yaml:1: field 'model.revision': the judge model must be pinned: give "
        "model.revision (a dated snapshot or server build) or model.digest (an Ollama digest)"
    )
    assert "nothing was written" in bad.stderr
    assert judgements(tmp_path) == before and judge_server.calls == 0


def test_comparing_a_version_with_itself_exits_2(
    tmp_path: Path, project: dict[str, str], judge_server: JudgeServer
) -> None:
    same = compare(tmp_path, project["short"][:10], project["short"])  # a prefix and the full id
    assert same.returncode == 2 and same.stdout == ""
    assert same.stderr.splitlines()[0] == (
        f"error: field 'BASELINE': CANDIDATE and BASELINE are the same version "
        f"{project['short'][:12]}"
    )
    assert judge_server.calls == 0
