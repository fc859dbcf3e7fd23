"""Experiments on the command line: ``versions --track``, graduation, ``gc``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.helpers import Project, ok_json, rg


def test_versions_by_track_and_gc(tmp_path: Path) -> None:
    project = Project(root=tmp_path, meta={"experiments": {"retention_days": 14}})
    d = project.root
    project.suite()
    v1 = ok_json(rg(d, "register", str(project.workflow("v1")), "--json"))["version_id"]
    exp_file = project.workflow("exp", temperature=0.9)
    exp = ok_json(rg(d, "register", str(exp_file), "--experiment", "--json"))
    assert exp["track"] == "experiment"
    for vid in (v1, exp["version_id"]):
        assert rg(d, "eval", vid[:10], "--suite", "suite.yaml").returncode == 0

    table = rg(d, "versions", "router")
    assert table.returncode == 0
    assert "track" in table.stdout and "release" in table.stdout
    assert "experiment (expires 20" in table.stdout
    only = ok_json(rg(d, "versions", "router", "--track", "experiment", "--json"))
    assert [r["version_id"] for r in only] == [exp["version_id"]]
    assert only[0]["expires_at"] and only[0]["is_expired"] is False
    bad = rg(d, "versions", "router", "--track", "beta")
    assert bad.returncode == 2 and "unknown track 'beta'" in bad.stderr

    nothing = ok_json(rg(d, "gc", "--json"))
    assert nothing["collected"] == 0 and nothing["experiments"] == []
    # three weeks pass for the experiment (its registration time, moved back)
    with sqlite3.connect(d / ".releasegate" / "releasegate.db") as db:
        db.execute(
            "UPDATE versions SET created_at = datetime(created_at, '-21 days') "
            "WHERE version_id = ?",
            (exp["version_id"],),
        )
    dry = rg(d, "gc", "router", "--dry-run")
    assert dry.returncode == 0
    assert f"would collect {exp['version_id'][:12]} of router" in dry.stdout
    assert "nothing was deleted" in dry.stdout
    done = ok_json(rg(d, "gc", "router", "--json"))
    assert done["collected"] == 1 and done["outputs"] == 80 and done["scores"] == 160
    assert done["experiments"][0]["version_id"] == exp["version_id"]
    again = rg(d, "gc")
    assert again.returncode == 0 and "collected 0 expired experiments" in again.stdout
    log = rg(d, "audit", "log", "--json")
    assert "experiment.collected" in log.stdout
    assert ok_json(rg(d, "audit", "verify", "--json"))["ok"]
    unknown = rg(d, "gc", "nope")
    assert unknown.returncode == 2 and "no workflow 'nope'" in unknown.stderr

    graduated = rg(d, "register", str(exp_file))
    assert graduated.returncode == 0 and "graduated" in graduated.stdout
    listed = ok_json(rg(d, "versions", "router", "--track", "release", "--json"))
    assert [r["version_id"] for r in listed] == [v1, exp["version_id"]]
