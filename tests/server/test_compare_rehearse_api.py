"""The verbs that run for minutes, over the API on a real uvicorn on SQLite and PostgreSQL:
``compare``, ``rehearse``, ``rollout shadow-replay`` and a ``gate`` that must evaluate the
baseline first each answer 202 with a job, whose ``GET /v1/jobs/{id}`` (on any replica)
ends with the CLI verb's ``--json`` document; what they refuse is refused at once, with
nothing written and no job; a failed job says its error in the one shape, and a job whose
process died reads interrupted."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml

from releasegate.errors import NotFoundError
from releasegate.release.audit import audit_log
from releasegate.release.evaluate import evaluate
from releasegate.release.register import register
from releasegate.release.replay import shadow_replay
from releasegate.release.resolve import resolve
from releasegate.server.app import Settings, create_app
from releasegate.store.jobs import JobRepo
from tests.helpers import Project, rg
from tests.release.test_compare import N_CASES, prefers_longer
from tests.runner.test_judge import KEY_ENV, JudgeServer
from tests.server.conftest import Live, run_server
from tests.server.test_api import is_error
from tests.server.test_loop_api import cli_env, home, until_done

STAGING = "/v1/workflows/router/environments/staging"


def served_runs(version_id: str, n: int) -> list[dict[str, Any]]:
    """``n`` runs ``version_id`` served in staging, each with its input text and label."""
    return [
        {
            "run_id": f"r-{i}",
            "workflow": "router",
            "env": "staging",
            "version_id": version_id,
            "started_at": "2026-12-01T10:00:00Z",
            "latency_ms": 400 + i,
            "status": "ok",
            "input": f"easy message {i} #{'fraud' if i % 2 else 'complaint'}",
            "output": "fraud" if i % 2 else "complaint",
            "label": "fraud" if i % 2 else "complaint",
        }
        for i in range(n)
    ]


def jobs(live: Live) -> int:
    with live.store.read() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM jobs")).scalar_one())


def document(doc: Any) -> str:
    """``doc`` as the CLI's ``--json`` prints it."""
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def started(r: httpx.Response, kind: str) -> str:
    """A 202 answer's job location, checked."""
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["kind"] == kind and body["status"] == "running"
    assert r.headers["location"] == body["location"] == f"/v1/jobs/{body['job_id']}"
    return str(body["location"])


@dataclass
class Judged:
    url: str
    live: Live
    ids: dict[str, str]
    suite: Path
    judge: Path
    server: JudgeServer

    def client(self, who: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.live.tokens[who]}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def body(self, baseline: str, **changes: Any) -> dict[str, Any]:
        root = self.suite.parent
        return {
            "baseline": self.ids.get(baseline, baseline),
            "suite": self.suite.read_text(),
            "source": self.suite.name,
            "files": {"answers.jsonl": (root / "answers.jsonl").read_text()},
            "judge": self.judge.read_text(),
            "judge_source": self.judge.name,
            **changes,
        }


@pytest.fixture
def judged(live: Live, monkeypatch: pytest.MonkeyPatch) -> Iterator[Judged]:
    """Two versions of the live workflow (long and short answers) evaluated on a suite, a
    judge on loopback, and a server whose operator allows that judge's host and key."""
    monkeypatch.setenv(KEY_ENV, "sk-judge-test")
    server = JudgeServer(monkeypatch, prefers_longer)
    root = home(live)
    project = Project(root=root, stakes="high", fn="tests.release.test_compare:answer")
    ids = {
        style: register(live.store, project.workflow(style, style=style), who="alice").version_id
        for style in ("long", "short", "flaky")
    }
    rows = [{"id": f"c{i}", "input": f"question case {i}"} for i in range(N_CASES)]
    (root / "answers.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    suite = root / "answers.yaml"
    doc = {"suite": "answers", "workflow": "router", "cases": "answers.jsonl",
           "scorers": [{"type": "regex", "params": {"pattern": "ok"}}]}  # fmt: skip
    suite.write_text(yaml.safe_dump(doc))
    for style in ("long", "short"):
        evaluate(live.store, ids[style], suite)
    judge = root / "judge.yaml"
    rubric = "Which response answers more completely?"
    judge.write_text(yaml.safe_dump({"model": server.model(), "rubric": rubric}))
    settings = Settings(
        token_ttl=0,
        resolve_ttl=0,
        allow_python="tests",
        allow_model_hosts="127.0.0.1",
        allow_key_envs=KEY_ENV,
    )
    try:
        for url in run_server(create_app(live.store, settings)):
            yield Judged(url, live, ids, suite, judge, server)
    finally:
        server.server.stop()


def test_compare_is_a_job_that_ends_with_the_clis_document(judged: Judged) -> None:
    live, ids = judged.live, judged.ids
    with judged.client("builder") as c:
        r = c.post(f"/v1/versions/{ids['long'][:12]}/compare", json=judged.body("short"))
        done = until_done(c, started(r, "compare"))
    assert (done["status"], done["kind"], done["actor"]) == ("completed", "compare", "builder")
    assert done["subject"] == ids["long"] and done["error"] is None
    report = done["result"]
    assert (report["wins"], report["losses"], report["n"]) == (N_CASES, 0, N_CASES)
    assert (report["called"], report["cached"]) == (2 * N_CASES, 0)
    assert judged.server.calls == 2 * N_CASES
    # asked again, the judge is asked nothing, and the document is the CLI's byte for byte
    with judged.client("builder") as c:
        r = c.post(f"/v1/versions/{ids['long']}/compare", json=judged.body("short"))
        location = started(r, "compare")
        again = until_done(c, location)["result"]
    assert judged.server.calls == 2 * N_CASES and again["cached"] == 2 * N_CASES
    local = rg(
        home(live),
        "compare", ids["long"], ids["short"], "--suite", judged.suite.name,
        "--judge", judged.judge.name, "--json",
        env={**cli_env(live), KEY_ENV: "sk-judge-test"},
    )  # fmt: skip
    assert local.returncode == 0, local.stderr
    assert document(again) == local.stdout
    # another replica (a second app on the same store) answers the same job
    for url in run_server(create_app(live.store, Settings(token_ttl=0))):
        headers = {"Authorization": f"Bearer {live.tokens['viewer']}"}
        with httpx.Client(base_url=url, headers=headers) as c2:
            other = c2.get(location).json()
    assert other["result"] == again and other["progress"] is None


def test_what_compare_refuses_is_answered_at_once_with_no_job(judged: Judged) -> None:
    live, ids = judged.live, judged.ids
    before = (jobs(live), [e.kind for e in audit_log(live.store)])
    url = f"/v1/versions/{ids['long']}/compare"
    with judged.client("builder") as c:
        is_error(c.post(url, json=judged.body("0" * 12)), 404)
        is_error(c.post(url, json=judged.body("long")), 400, "same version")
        missing = c.post(f"/v1/versions/{ids['flaky']}/compare", json=judged.body("short"))
        body = is_error(missing, 503, f"no completed eval of {ids['flaky'][:12]}")
        assert "releasegate eval" in body["hint"]
        no_rubric = yaml.safe_dump({"model": judged.server.model()})
        r = c.post(url, json=judged.body("short", judge=no_rubric))
        assert is_error(r, 400, "judge.yaml:1")["errors"][0]["field"] == "rubric"
        is_error(c.post(url, json=judged.body("short", concurrency=0)), 400, "1 or more")
    assert (jobs(live), [e.kind for e in audit_log(live.store)]) == before
    assert judged.server.calls == 0
    # the live server's operator allows no judge host: refused, audited, nothing run
    with live.client("builder") as c:
        r = c.post(url, json=judged.body("short"))
    is_error(r, 403, "127.0.0.1")
    assert audit_log(live.store)[-1].kind == "access.refused"
    assert jobs(live) == 0 and judged.server.calls == 0


def test_rehearse_is_a_job_that_restores_the_original(live: Live) -> None:
    with live.client("operator") as c:
        r = c.post(f"{STAGING}/rehearse", json={"suite_file": "suite.yaml"})
        done = until_done(c, started(r, "rehearse"))
    assert done["status"] == "completed", done
    assert (done["actor"], done["subject"]) == ("operator", "router@staging")
    result = done["result"]
    assert result["workflow"] == "router" and result["original_id"] == live.v1
    assert result["restored"] is True and result["deployed_id"] not in (None, live.v1)
    assert result["ok"] is (result["result"] == "passed")
    assert resolve(live.store, "router", "staging").version_id == live.v1
    done_by = {e.kind: e.actor for e in audit_log(live.store)}
    assert done_by["rehearsal.started"] == done_by["rehearsal.finished"] == "operator"
    # the same document a local `rehearse --json` prints (its own ids and times aside)
    local = rg(home(live), "rehearse", "router", "--env", "staging", "--json", env=cli_env(live))
    assert local.returncode in (0, 1), local.stderr
    mine = json.loads(local.stdout)
    assert set(mine) == set(result)
    same = ("result", "ok", "original_id", "restored", "mutation_score", "escaped")
    assert {k: mine[k] for k in same} == {k: result[k] for k in same}


def test_what_rehearse_refuses_is_answered_at_once_with_no_job(live: Live) -> None:
    before = [e.kind for e in audit_log(live.store)]
    with live.client("operator") as c:
        r = c.post("/v1/workflows/router/environments/production/rehearse", json={})
        is_error(r, 409, "production environment of router")
        r = c.post("/v1/workflows/router/environments/production/rehearse",
                   json={"allow_production": True})  # fmt: skip
        is_error(r, 409, "nothing runs in router@production")
        is_error(c.post("/v1/workflows/router/environments/qa/rehearse", json={}), 400, "qa")
        is_error(c.post("/v1/workflows/nope/environments/staging/rehearse", json={}), 404)
        is_error(c.post(f"{STAGING}/rehearse", json={"allow_production": "maybe"}), 422)
    assert jobs(live) == 0 and [e.kind for e in audit_log(live.store)] == before
    with live.store.read() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM rehearsals")).scalar_one() == 0


def test_shadow_replay_is_a_job_and_refusals_come_at_once(live: Live) -> None:
    replay = f"{STAGING}/rollout/shadow-replay"
    with live.client("operator") as c:
        is_error(c.post(replay, json={}), 400, "no rollout runs in router@staging")
        is_error(c.post(replay, json={"candidate": live.v2}), 409, "no runs of")
        is_error(c.post(replay, json={"candidate": live.v1}), 400, "nothing to compare")
        is_error(c.post(replay, json={"candidate": live.v2, "limit": 0}), 400, "--limit")
        assert jobs(live) == 0
        runs = served_runs(live.v1, 12)
        assert c.post("/v1/runs", json=runs).status_code == 200
        r = c.post(replay, json={"candidate": live.v2[:12], "limit": 50})
        done = until_done(c, started(r, "shadow-replay"))
    assert done["status"] == "completed", done
    result = done["result"]
    assert (result["candidate_id"], result["stable_id"]) == (live.v2, live.v1)
    assert (result["runs_read"], result["pairs"]) == (12, 12)
    event = audit_log(live.store)[-1]
    assert (event.kind, event.actor) == ("rollout.replayed", "operator")
    seen: list[tuple[int, int]] = []  # what the progress bar (and a job's progress) shows
    shadow_replay(live.store, "router", "staging", candidate=live.v2,
                  progress=lambda done, total: seen.append((done, total)))  # fmt: skip
    assert [d for d, _ in seen] == list(range(1, 13)) and {t for _, t in seen} == {12}


def test_a_gate_that_evaluates_the_baseline_first_is_a_job(live: Live) -> None:
    # a new current suite: v1, which runs in staging, was never evaluated on it
    wider = Project(root=home(live), stakes="high").suite(n=40, name="wider")
    evaluate(live.store, live.v2, wider)
    gate = f"/v1/versions/{live.v2}/gate"
    with live.client("builder") as c:
        r = c.post(gate, json={"env": "staging"})
        done = until_done(c, started(r, "gate"))
        assert done["status"] == "completed", done
        decided = done["result"]
        assert decided["report_path"] is None and decided["version"]["id"] == live.v2
        assert decided["baseline"]["id"] == live.v1
        # now the baseline has its eval: the next gate decides at once, the same way
        now = c.post(gate, json={"env": "staging"})
    assert now.status_code == 200, now.text
    at_once = now.json()
    for doc in (decided, at_once):
        doc.pop("decision_id"), doc.pop("created_at")
    assert at_once == decided
    kinds = [(e.kind, e.actor) for e in audit_log(live.store)]
    assert ("eval.completed", "builder") in kinds  # the baseline's eval, by the caller


def test_a_failed_job_says_its_error_and_a_dead_ones_reads_interrupted(live: Live) -> None:
    app = create_app(live.store, Settings(token_ttl=0))

    def gone(_: Any) -> Any:
        raise NotFoundError("no version 'abc' (it went away)", field="VERSION")

    failed = app.state.jobs.submit("compare", "abc", "builder", gone)
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    marker = {"pid": int(dead.stdout), "host": socket.gethostname(), "process_start": "1"}
    with live.store.write() as conn:
        JobRepo(conn).add("d" * 32, kind="rehearse", subject="router@staging", actor="x",
                          runner=marker)  # fmt: skip
    for url in run_server(app):
        headers = {"Authorization": f"Bearer {live.tokens['viewer']}"}
        with httpx.Client(base_url=url, headers=headers) as c:
            state = until_done(c, f"/v1/jobs/{failed}")
            assert state["status"] == "failed" and state["result"] is None
            error = state["error"]
            assert error["status"] == 404
            assert error["error"].endswith("no version 'abc' (it went away)")
            assert error["errors"] == [{"field": "VERSION", "index": None,
                                        "message": "no version 'abc' (it went away)"}]  # fmt: skip
            interrupted = c.get(f"/v1/jobs/{'d' * 32}").json()
            assert interrupted["status"] == "interrupted"
            assert "ended without finishing" in interrupted["error"]["error"]
            is_error(c.get("/v1/jobs/nope"), 404, "no job 'nope'")
