"""``releasegate review`` and ``policy propose|approve|show`` through the real command:
exit codes (0 clean, 1 something to act on or a refusal, 2 bad input), the --json shape,
and what a person reads."""

from __future__ import annotations

import json
import time
from pathlib import Path

from releasegate.release.rehearse import rehearse
from releasegate.release.store_access import open_store
from tests.helpers import Project, ok_json, register, rg, ship


def test_review_exit_codes_and_json(shipped: tuple[Project, str]) -> None:
    project, v1 = shipped
    d = project.root
    planted = "e" * 64
    now = time.time()
    rows = [
        {
            "run_id": f"p-{i}",
            "workflow": "router",
            "version_id": planted,
            "env": "staging",
            "started_at": now - 30 + i,
            "latency_ms": 5,
            "status": "ok",
        }
        for i in range(3)
    ]
    (d / "planted.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert rg(d, "runs", "import", "planted.jsonl").returncode == 1  # it alerts at once

    done = rg(d, "review", "--json")
    assert done.returncode == 1, done.stderr
    data = json.loads(done.stdout)
    assert data["ok"] is False and data["workflows"] == ["router"]
    assert set(data) >= {"findings", "checks", "by_check", "period_days", "at", "fixed"}
    found = {(f["check"], f["subject"]): f for f in data["findings"]}
    outside = found[("outside-gate", planted)]
    assert outside["env"] == "staging" and outside["needs_action"] is True
    assert outside["fix"] == "releasegate resolve router --env staging"
    assert found[("owners", "owners")]["workflow"] == "router"

    human = rg(d, "review", "router")
    assert human.returncode == 1
    assert "outside-gate router@staging" in human.stdout
    assert "fix: `releasegate resolve router --env staging`" in human.stdout

    for argv, message in (
        (("review", "nope"), "no workflow 'nope'"),
        (("review", "--period", "soon"), "field '--period'"),
    ):
        bad = rg(d, *argv)
        assert bad.returncode == 2 and message in bad.stderr, bad.stderr


def test_a_clean_review_exits_0(tmp_path: Path) -> None:
    project = Project(root=tmp_path)
    project.owners = {**project.owners, "care": "ops", "responders": ["oncall"]}
    vid = register(tmp_path, project.workflow("v1"))
    ship(project, vid)
    never = rg(tmp_path, "review", "--json")
    assert never.returncode == 1
    assert [f["check"] for f in json.loads(never.stdout)["findings"]] == ["rehearsal"]
    store = open_store(tmp_path)
    try:
        rehearse(store, "router", "staging", who="oncall")
    finally:
        store.close()
    done = rg(tmp_path, "review")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nothing to fix" in done.stdout
    assert ok_json(rg(tmp_path, "review", "router", "--json", "--fix"))["findings"] == []


def test_policy_propose_approve_show(shipped: tuple[Project, str]) -> None:
    project, _ = shipped
    d = project.root
    proposed = ok_json(
        rg(
            d,
            "policy",
            "propose",
            "router",
            "--env",
            "staging",
            "--floor",
            "accuracy=0.9",
            "--reason",
            "ratchet: v1 shows 1.0",
            "--json",
        )  # fmt: skip
    )
    assert proposed["state"] == "proposed" and proposed["proposer"] == "alice"
    assert proposed["changes"] == [{"metric": "accuracy", "from": 0.5, "to": 0.9}]
    pid = proposed["proposal_id"]

    mine = rg(d, "policy", "approve", pid, "--as", "alice")
    assert mine.returncode == 1
    assert f"refused: alice proposed {pid}: nobody approves their own policy change" in (
        mine.stderr
    )
    bad = rg(d, "policy", "propose", "router", "--env", "staging", "--floor", "accuracy=2",
             "--reason", "r")  # fmt: skip
    assert bad.returncode == 2 and "between 0 and 1" in bad.stderr

    approved = ok_json(rg(d, "policy", "approve", pid[:8], "--as", "bob", "--json"))
    assert (approved["state"], approved["approver"]) == ("approved", "bob")
    (state,) = ok_json(rg(d, "policy", "show", "router", "--env", "staging", "--json"))
    assert state["policy"]["floors"] == {"accuracy": 0.9}
    assert state["policy_id"] == approved["policy_id"]
    assert [h["floors"]["accuracy"] for h in state["history"]] == [0.5, 0.9]
    shown = rg(d, "policy", "show", "router")
    assert shown.returncode == 0 and "accuracy >= 0.9" in shown.stdout
    again = rg(d, "register", "v1.yaml")  # the file still says 0.5: the approval stays
    assert again.returncode == 0
    assert f"warning: the file's staging policy is the one policy proposal {pid}" in again.stderr
    kept = ok_json(rg(d, "register", "v1.yaml", "--json"))["policies_kept"]
    assert len(kept) == 1 and "approved by bob" in kept[0]
    log = ok_json(rg(d, "audit", "log", "--json"))
    kinds = [e["kind"] for e in (log["events"] if isinstance(log, dict) else log)]
    assert kinds[-3:] == ["policy.proposed", "policy.approved", "policy.changed"]
