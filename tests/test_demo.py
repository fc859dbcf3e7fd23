"""`releasegate demo` runs the whole loop on the real model and leaves a usable project."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.helpers import rg


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return rg(cwd, *args, timeout=600)


def test_demo_runs_the_loop_and_the_cli_goes_on_from_there(tmp_path: Path) -> None:
    demo = run(tmp_path, "demo", "--dir", "project")
    assert demo.returncode == 0, demo.stderr
    out = demo.stdout
    # v1 reaches staging but not production; v2 improves with an interval; v3 is blocked
    assert "promoted support-triage@staging: nothing ->" in out
    assert "promotion to production refused: the gate did not pass" in out
    assert "NEEDS-APPROVAL" in out and "FAIL" in out
    assert "promotion refused: the gate did not pass" in out
    assert "rolled back staging:" in out
    # production: runs land, the fraud wave and the slower host are caught and routed
    assert "imported 1,400 runs from production-runs.jsonl" in out
    assert "drift label mix" in out and "most moved: fraud_report" in out
    assert "alert to ops-team, oncall-support" in out
    # v4: a 25% canary through the SDK's routing; the new host's errors abort it
    assert "canary started: 25% of support-triage@production" in out
    assert "canary aborted: support-triage@production: the rollout of" in out
    assert "error_rate: canary" in out
    # the week's review queue: escalations and a sample, one reviewed by the care owner
    assert "review queue: " in out and "escalated" in out and "of traffic" in out
    assert "carol marked demo-" in out and "review coverage" in out
    # the rehearsal catches every mutation it applies and restores staging
    assert "original serving again (resolve): yes" in out
    assert "mutation score: 100% (4 of 4 caught)" in out and "result: passed" in out
    # review finds something to fix: the blocked v3, run by hand against production
    assert "! outside-gate support-triage@production:" in out and "1 finding needs action" in out
    assert "runbook: " in out
    assert "audit log intact" in out

    project = tmp_path / "project"
    every = json.loads(run(project, "versions", "support-triage", "--json").stdout)
    assert len([v for v in every if v["track"] == "experiment"]) == 4  # the rehearsal's mutants
    versions = json.loads(
        run(project, "versions", "support-triage", "--track", "release", "--json").stdout
    )
    assert len(versions) == 4
    v1, v2, v3, v4 = (v["version_id"] for v in versions)
    assert run(project, "resolve", "support-triage", "--env", "production").stdout.strip() == v2
    rollout = json.loads(
        run(project, "rollout", "status", "support-triage", "--env", "production", "--json").stdout
    )
    assert (rollout["state"], rollout["canary_id"], rollout["weight"]) == ("aborted", v4, 0)
    assert run(project, "resolve", "support-triage", "--env", "staging").stdout.strip() == v2

    gate = run(project, "gate", v3[:12], "--env", "staging", "--json")
    assert gate.returncode == 1
    report = json.loads(gate.stdout)
    assert report["verdict"] == "fail" and report["change"]["class"] == "wording"
    acc = next(m for m in report["metrics"] if m["name"] == "accuracy")
    assert acc["comparison"]["high"] < 0  # a real, significant regression against v2

    staging_v2 = (project / "reports" / "gate-v2-staging.md").read_text()
    assert "accuracy" in staging_v2 and "+0.1" in staging_v2
    assert run(project, "audit", "verify").returncode == 0
    runbook = (project / "reports" / "runbook.md").read_text()
    rollback = f"releasegate rollback support-triage --env staging --to {v1}"
    assert rollback in runbook
    assert " on staging: passed, mutation score 4/4" in runbook  # the demo's rehearsal
    assert (project / "reports" / "runbook.html").read_text().lstrip().startswith("<!doctype")
    rehearsals = run(project, "review", "support-triage", "--json")
    assert rehearsals.returncode == 1
    checks = {f["check"] for f in json.loads(rehearsals.stdout)["findings"]}
    assert checks == {"outside-gate"}  # rehearsed today; v4's new ramp left the gate standing
    assert (project / "reports" / "memo" / "memo.html").read_text().startswith("<!doctype html>")
    watched = run(project, "monitor", "support-triage", "--env", "production", "--no-embeddings")
    # the same alerts already fired: the cool-down keeps them quiet, the answer stays "no"
    assert watched.returncode == 1
    assert "already sent at" in watched.stdout
    assert "label_mix" in watched.stdout
