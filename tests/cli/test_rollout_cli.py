"""``promote --canary`` and ``rollout status|advance|abort|check`` through a real subprocess:
exit codes, stderr naming what is wrong, and ``--json`` on stdout."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path
from typing import Any

from tests.cli.test_cli import ok_json
from tests.helpers import Project, rg

POLICY = {
    "floors": {"accuracy": 0.5},
    "max_regression": {"metric": "accuracy", "margin": 0.1},
    "rollout": {"steps": [10, 50, 100], "min_runs_per_step": 100, "signals": ["error_rate"]},
}


def gated(project: Project, name: str, **kw: Any) -> str:
    d = project.root
    path = project.workflow(name, policy=POLICY, **kw)
    vid = str(ok_json(rg(d, "register", str(path), "--json"))["version_id"])
    assert rg(d, "eval", vid, "--suite", "suite.yaml").returncode == 0
    assert rg(d, "gate", vid, "--env", "staging").returncode == 0
    return vid


def arm_runs(
    path: Path,
    stable: str,
    canary: str,
    n: int,
    weight: float,
    *,
    errors: tuple[float, float] = (0.05, 0.30),
    seed: int = 5,
) -> Path:
    """``n`` runs of ``router@staging`` split by ``weight``; ``errors``: (stable, canary)."""
    rng = random.Random(seed)
    now = time.time() - 60
    rows = []
    for i in range(n):
        arm = "canary" if rng.random() < weight else "stable"
        failed = rng.random() < errors[arm == "canary"]
        rows.append(
            {
                "run_id": f"r{i}",
                "workflow": "router",
                "env": "staging",
                "version_id": canary if arm == "canary" else stable,
                "arm": arm,
                "started_at": now + i * 0.01,
                "latency_ms": 120.0,
                "status": "error" if failed else "ok",
                **({"failure_reason": "empty answer"} if failed else {}),
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_canary_from_start_to_abort(tmp_path: Path) -> None:
    project = Project(root=tmp_path)
    d = project.root
    project.suite()
    v1 = gated(project, "v1")
    assert rg(d, "promote", v1, "--env", "staging").returncode == 0
    v2 = gated(project, "v2", temperature=0.2)

    bad = rg(d, "promote", v2, "--env", "staging", "--canary", "10", "--steps", "5,50,25,100")
    assert bad.returncode == 2
    assert "--steps: steps must increase strictly: 25 comes after 50" in bad.stderr
    none = rg(d, "rollout", "status", "router", "--env", "staging")
    assert none.returncode == 1 and "no rollout ever ran in router@staging" in none.stderr

    ungated = ok_json(
        rg(d, "register", str(project.workflow("v3", policy=POLICY, temperature=0.9)), "--json")
    )["version_id"]
    refused = rg(d, "promote", ungated, "--env", "staging", "--canary", "10")
    assert refused.returncode == 1 and "has no gate decision for staging" in refused.stderr

    started = ok_json(rg(d, "promote", v2, "--env", "staging", "--canary", "10", "--json"))
    assert (started["state"], started["weight"], started["steps"]) == ("running", 10, [10, 50, 100])
    assert (started["stable_id"], started["canary_id"]) == (v1, v2)
    twice = rg(d, "promote", v2, "--env", "staging", "--canary", "10")
    assert twice.returncode == 1 and "already runs in router@staging" in twice.stderr

    arm_runs(d / "runs.jsonl", v1, v2, 3000, 0.10)
    assert rg(d, "runs", "import", "runs.jsonl").returncode == 0
    checked = rg(d, "rollout", "check", "router", "--env", "staging", "--json")
    assert checked.returncode == 1, checked.stderr  # aborted: the cron job notices
    report = json.loads(checked.stdout)
    assert (report["state"], report["weight"], report["aborted_now"]) == ("aborted", 0, True)
    assert report["outcome"]["action"] == "abort"
    assert "aborted at 10%" in report["alert"]["message"]
    assert [a["message"] for a in report["alerts_sent"]] == [report["alert"]["message"]]

    after = rg(d, "rollout", "advance", "router", "--env", "staging")
    assert after.returncode == 1 and "was aborted" in after.stderr
    shown = rg(d, "rollout", "status", "router", "--env", "staging")
    assert shown.returncode == 0 and "aborted at 0%" in shown.stdout
    again = rg(d, "rollout", "check", "router", "--env", "staging")
    assert again.returncode == 0  # nothing more to do: reported, not aborted twice
    resolved = ok_json(rg(d, "resolve", "router", "--env", "staging", "--json"))
    assert resolved["version_id"] == v1
