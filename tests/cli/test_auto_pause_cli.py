"""The automatic pause through a real subprocess: a bad ``pause_on`` is exit 2 naming the
field with nothing written; a ``rollout check`` that finds a ceiling exceeded pauses the
environment, says so on stdout (and in ``--json``), sends the alert and exits 1."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa

from tests.cli.test_cli import ok_json
from tests.cli.test_rollout_cli import POLICY, arm_runs
from tests.helpers import Project, rg

PAUSING = {**POLICY, "pause_on": {"error_rate": 0.5, "min_runs": 50}}


def test_a_check_pauses_on_a_ceiling_and_a_bad_rule_writes_nothing(tmp_path: Path) -> None:
    project = Project(root=tmp_path)
    d = project.root
    project.suite()
    assert rg(d, "init").returncode == 0
    db = sa.create_engine(f"sqlite:///{d / '.releasegate' / 'releasegate.db'}")

    def audit_count() -> int:
        with db.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM audit_events")).scalar_one())

    before = audit_count()
    typo = project.workflow("bad", policy={**POLICY, "pause_on": {"eror_rate": 0.5}})
    bad = rg(d, "register", str(typo))
    assert bad.returncode == 2
    assert "field 'policy.staging.pause_on.eror_rate': unknown signal 'eror_rate'" in bad.stderr
    high = project.workflow("bad2", policy={**POLICY, "pause_on": {"error_rate": 5}})
    worse = rg(d, "register", str(high))
    assert worse.returncode == 2 and "pause_on.error_rate" in worse.stderr
    assert "the ceiling must be above 0 and below 1, got 5" in worse.stderr
    assert audit_count() == before  # nothing written

    def gated(name: str, **kw: float) -> str:
        path = project.workflow(name, policy=PAUSING, **kw)
        vid = str(ok_json(rg(d, "register", str(path), "--json"))["version_id"])
        assert rg(d, "eval", vid, "--suite", "suite.yaml").returncode == 0
        assert rg(d, "gate", vid, "--env", "staging").returncode == 0
        return vid

    v1 = gated("v1")
    assert rg(d, "promote", v1, "--env", "staging").returncode == 0
    v2 = gated("v2", temperature=0.2)
    assert rg(d, "promote", v2, "--env", "staging", "--canary", "10").returncode == 0
    arm_runs(d / "runs.jsonl", v1, v2, 400, 0.1, errors=(0.8, 0.8), seed=7)  # provider down
    assert rg(d, "runs", "import", "runs.jsonl").returncode == 0

    checked = rg(d, "rollout", "check", "router", "--env", "staging", "--json")
    assert checked.returncode == 1, checked.stderr
    report = json.loads(checked.stdout)
    assert report["pause"]["paused_now"] is True
    assert report["pause"]["breaches"][0]["signal"] == "error_rate"
    sent = [a["message"] for a in report["alerts_sent"]]
    assert any("was paused by" in m and "error_rate" in m for m in sent)
    resolved = ok_json(rg(d, "resolve", "router", "--env", "staging", "--json"))
    assert resolved["paused"] is True
    assert resolved["paused_reason"].startswith("paused automatically by rollout check")

    again = rg(d, "rollout", "check", "router", "--env", "staging")
    assert again.returncode == 1  # still beyond the ceiling: says so, pauses nothing more
    assert "router@staging is paused (by " in again.stdout and "error_rate" in again.stdout
    assert rg(d, "audit", "verify").returncode == 0
