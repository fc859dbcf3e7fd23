"""``pause`` and ``resume`` through a real subprocess, on the embedded store and on
PostgreSQL: exit codes, stderr naming what is wrong, ``--json``, what ``resolve`` says while
paused, a clean audit chain, and refusals that write nothing."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa

from tests.cli.test_cli import ok_json
from tests.cli.test_rollout_cli import POLICY
from tests.helpers import Project, rg


def test_pause_resolve_resume(tmp_path: Path, store_url: str) -> None:
    env = {} if store_url.startswith("sqlite") else {"RELEASEGATE_DATABASE_URL": store_url}
    project = Project(root=tmp_path)
    d = project.root
    project.suite()
    assert rg(d, "init", env=env).returncode == 0
    v1 = gated_with(project, env)
    assert rg(d, "promote", v1, "--env", "staging", env=env).returncode == 0

    def counts() -> tuple[int, int]:
        engine = sa.create_engine(store_url, poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            audit = conn.execute(sa.text("SELECT count(*) FROM audit_events")).scalar_one()
            alerts = conn.execute(sa.text("SELECT count(*) FROM alerts")).scalar_one()
        engine.dispose()
        return int(audit), int(alerts)

    before = counts()
    empty = rg(d, "pause", "router", "--env", "staging", "--reason", " ", env=env)
    assert empty.returncode == 2 and "--reason" in empty.stderr and "needs a reason" in empty.stderr
    unknown = rg(d, "pause", "router", "--env", "prod", "--reason", "x", env=env)
    assert unknown.returncode == 2 and "has no environment 'prod'" in unknown.stderr
    nowf = rg(d, "pause", "nope", "--env", "staging", "--reason", "x", env=env)
    assert nowf.returncode == 2, nowf.stderr
    running = rg(d, "resume", "router", "--env", "staging", env=env)
    assert running.returncode == 1 and "router@staging is not paused" in running.stderr
    assert counts() == before  # refusals write nothing

    paused = ok_json(
        rg(d, "pause", "router", "--env", "staging", "--reason", "fraud wave", "--json", env=env)
    )
    assert (paused["action"], paused["paused"], paused["version_id"]) == ("paused", True, v1)
    assert (paused["pause"]["reason"], paused["pause"]["by"]) == ("fraud wave", "alice")
    assert len(paused["alerts_sent"]) == 1
    assert "fraud wave" in paused["alerts_sent"][0]["message"]

    resolved = rg(d, "resolve", "router", "--env", "staging", "--json", env=env)
    shown = json.loads(resolved.stdout)
    assert resolved.returncode == 0 and shown["version_id"] == v1
    assert (shown["paused"], shown["paused_reason"]) == (True, "fraud wave")
    plain = rg(d, "resolve", "router", "--env", "staging", env=env)
    assert plain.stdout == v1 + "\n"  # deploy scripts still read a bare id
    assert "router@staging is paused (fraud wave)" in plain.stderr

    shown_history = rg(d, "history", "router", "--env", "staging", env=env)
    assert shown_history.returncode == 0
    assert "PAUSED since" in shown_history.stdout and "by alice: fraud wave" in shown_history.stdout

    after_pause = counts()
    twice = rg(d, "pause", "router", "--env", "staging", "--reason", "again", env=env)
    assert twice.returncode == 1
    assert "router@staging is already paused by alice" in twice.stderr
    assert "fraud wave" in twice.stderr
    assert counts() == after_pause

    resumed = rg(d, "resume", "router", "--env", "staging", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert f"router@staging resumed: version {v1[:12]} serves requests again" in resumed.stdout
    assert "PAUSED" not in rg(d, "history", "router", "--env", "staging", env=env).stdout
    served = ok_json(rg(d, "resolve", "router", "--env", "staging", "--json", env=env))
    assert (served["paused"], served["paused_reason"]) == (False, None)

    log = ok_json(rg(d, "audit", "log", "--json", env=env))
    kinds = [e["kind"] for e in (log["events"] if isinstance(log, dict) else log)]
    assert kinds[-2:] == ["env.paused", "env.resumed"]
    assert rg(d, "audit", "verify", env=env).returncode == 0


def gated_with(project: Project, env: dict[str, str]) -> str:
    """v1 registered, evaluated and passed for staging, on the store ``env`` names."""
    d = project.root
    path = project.workflow("v1", policy=POLICY)
    vid = str(ok_json(rg(d, "register", str(path), "--json", env=env))["version_id"])
    assert rg(d, "eval", vid, "--suite", "suite.yaml", env=env).returncode == 0
    assert rg(d, "gate", vid, "--env", "staging", env=env).returncode == 0
    return vid
