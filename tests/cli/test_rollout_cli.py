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


def test_status_of_an_aborted_canary_names_the_step_it_stopped_at(capsys: Any) -> None:
    from releasegate.cli.cmd_rollout import _show

    aborted = {
        "workflow": "router",
        "env": "staging",
        "canary_id": "c" * 64,
        "stable_id": "s" * 64,
        "state": "aborted",
        "mode": "canary",
        "weight": 0.0,
        "step": 2,
        "steps": [10.0, 50.0, 100.0],
        "reason": "aborted by alice",
        "runs_read": 0,
        "canary_runs": 10,
        "step_runs": 4,
        "min_runs_per_step": 150,
        "stable_runs": 90,
    }
    _show(aborted)
    shown = " ".join(capsys.readouterr().out.split())  # as it reads, however wide the terminal
    assert "aborted at 50% (step 2 of 3: 10% -> 50% -> 100%)" in shown
    # a reason is the user's words: "[/]" printed as typed, not a Rich markup error (exit 70)
    _show({**aborted, "reason": "[/] rolled [bold]back"})
    assert "[/] rolled [bold]back" in capsys.readouterr().out


def run_row(run_id: str, vid: str, arm: str, started: float, failed: bool) -> dict[str, Any]:
    """One run of ``router@staging`` as a JSONL line holds it."""
    return {
        "run_id": run_id,
        "workflow": "router",
        "env": "staging",
        "version_id": vid,
        "arm": arm,
        "started_at": started,
        "latency_ms": 120.0,
        "status": "error" if failed else "ok",
        **({"failure_reason": "empty answer"} if failed else {}),
    }


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
        vid = canary if arm == "canary" else stable
        rows.append(run_row(f"r{i}", vid, arm, now + i * 0.01, failed))
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
    idle = rg(d, "rollout", "check", "router", "--env", "staging", "--json")
    assert idle.returncode == 0, idle.stderr  # cron's check with nothing running is no abort
    assert json.loads(idle.stdout)["state"] is None

    ungated = ok_json(
        rg(d, "register", str(project.workflow("v3", policy=POLICY, temperature=0.9)), "--json")
    )["version_id"]
    refused = rg(d, "promote", ungated, "--env", "staging", "--canary", "10")
    assert refused.returncode == 1 and "has no gate decision for staging" in refused.stderr

    started = ok_json(rg(d, "promote", v2, "--env", "staging", "--canary", "10", "--json"))
    assert (started["state"], started["weight"], started["steps"]) == ("running", 10, [10, 50, 100])
    # paused, the status says so: the canary's share waits for the resume
    assert rg(d, "pause", "router", "--env", "staging", "--reason", "[/] incident").returncode == 0
    held = rg(d, "rollout", "status", "router", "--env", "staging", "--json")
    assert json.loads(held.stdout)["paused"]["reason"] == "[/] incident"
    text = " ".join(rg(d, "rollout", "status", "router", "--env", "staging").stdout.split())
    assert "PAUSED since" in text and "[/] incident; every request goes to the human" in text
    checked = " ".join(rg(d, "rollout", "check", "router", "--env", "staging").stdout.split())
    assert "PAUSED since" in checked and "shares apply again after `releasegate resume" in checked
    assert rg(d, "resume", "router", "--env", "staging").returncode == 0
    # resolve prints the stable id for deploy scripts, and says who else is served
    during = rg(d, "resolve", "router", "--env", "staging", "--json")
    route = json.loads(during.stdout)["rollout"]
    assert route.pop("canary_manifest")["generation"]["temperature"] == 0.2  # what v2 runs
    assert route == {
        "rollout_id": started["rollout_id"],
        "canary_id": v2,
        "weight": 10,
        "mode": "canary",
    }
    assert f"note: a rollout runs in router@staging: {v2[:12]} gets 10% of requests" in (
        " ".join(during.stderr.split())
    )
    assert (started["stable_id"], started["canary_id"]) == (v1, v2)
    twice = rg(d, "promote", v2, "--env", "staging", "--canary", "10")
    assert twice.returncode == 1 and "already runs in router@staging" in twice.stderr
    held = rg(d, "rollout", "advance", "router", "--env", "staging")  # no canary run yet
    assert held.returncode == 1 and "not eligible to advance: the check holds it" in held.stderr
    assert "--force --reason" in held.stderr
    bare = rg(d, "rollout", "advance", "router", "--env", "staging", "--force")
    assert bare.returncode == 2 and "--force needs a reason" in bare.stderr

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
    # the step it stopped at, as the alert says (the weight is 0 now)
    assert shown.returncode == 0 and "aborted at 10% (step 1 of 3" in " ".join(shown.stdout.split())
    again = rg(d, "rollout", "check", "router", "--env", "staging")
    assert again.returncode == 0  # nothing more to do: reported, not aborted twice
    resolved = ok_json(rg(d, "resolve", "router", "--env", "staging", "--json"))
    assert resolved["version_id"] == v1


def shadow_runs(path: Path, stable: str, shadow: str, n: int, shadow_error: float) -> Path:
    """``n`` requests of ``router@staging`` under a shadow rollout, each served by the stable
    version and run again by the shadow on the same input (JSONL, as an app would export)."""
    rng = random.Random(11)
    now = time.time() - 60
    rows = []
    for i in range(n):
        text = f"easy message {i} #fraud"
        for arm, vid, p in (("stable", stable, 0.02), ("shadow", shadow, shadow_error)):
            failed = rng.random() < p
            row = run_row(f"{arm}{i}", vid, arm, now + i * 0.01, failed)
            rows.append({**row, "input": text, "label": "fraud"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_shadow_from_start_to_abort_and_a_replay(tmp_path: Path) -> None:
    project = Project(root=tmp_path)
    d = project.root
    project.suite()
    v1 = gated(project, "v1")
    assert rg(d, "promote", v1, "--env", "staging").returncode == 0
    v2 = gated(project, "v2", temperature=0.2)
    both = rg(d, "promote", v2, "--env", "staging", "--shadow", "--canary", "10")
    assert both.returncode == 2 and "--shadow and --canary" in both.stderr
    no_candidate = rg(d, "rollout", "shadow-replay", "router", "--env", "staging")
    assert no_candidate.returncode == 2 and "name the version to replay" in no_candidate.stderr

    started = ok_json(rg(d, "promote", v2, "--env", "staging", "--shadow", "--json"))
    assert (started["mode"], started["weight"], started["step"]) == ("shadow", 0, 0)
    shown = rg(d, "rollout", "status", "router", "--env", "staging")
    assert shown.returncode == 0 and "in shadow (served to nobody; then 10% -> 50% -> 100%)" in (
        shown.stdout
    )
    plain = rg(d, "promote", v2, "--env", "staging")
    assert plain.returncode == 1 and "(in shadow, served to nobody)" in plain.stderr

    # a replay of a broken candidate on the stable's recorded inputs: worse, exit 1
    broken = ok_json(
        rg(d, "register", str(project.workflow("v3", policy=POLICY, mode="broken")), "--json")
    )["version_id"]
    shadow_runs(d / "runs.jsonl", v1, v2, 300, shadow_error=0.30)
    assert rg(d, "runs", "import", "runs.jsonl").returncode == 0
    replay = rg(d, "rollout", "shadow-replay", "router", "--env", "staging", "--candidate",
                broken, "--limit", "100", "--json")  # fmt: skip
    assert replay.returncode == 1, replay.stderr
    found = json.loads(replay.stdout)
    assert (found["outcome"], found["pairs"], found["recorded_on"]) == ("worse", 100, None)
    text = rg(d, "rollout", "shadow-replay", "router", "--env", "staging", "--limit", "100")
    assert text.returncode == 0, text.stderr  # the rollout's own candidate answers alike
    assert "replayed on 100 production runs" in text.stdout and "WORSE" not in text.stdout

    checked = rg(d, "rollout", "check", "router", "--env", "staging", "--json")
    assert checked.returncode == 1, checked.stderr
    report = json.loads(checked.stdout)
    assert (report["state"], report["mode"], report["aborted_now"]) == ("aborted", "shadow", True)
    assert report["canary_runs"] == 300 and report["unpaired"] == 0
    assert report["replay"]["pairs"] == 100  # the replay of its own candidate, kept
    assert "the shadow of" in report["alert"]["message"]
