"""The builder's verbs over the API (register, eval, gate), on a real uvicorn on SQLite and
PostgreSQL: each answers the CLI verb's ``--json`` document byte for byte, a bad document is
422 naming its field with nothing written, and an eval runs off the event loop, visible as
running, then completed (or interrupted when its process died), from any replica."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from releasegate.release.audit import audit_log
from releasegate.release.inspect import list_versions
from releasegate.server.app import Settings, create_app
from releasegate.store.evals import EvalRepo
from tests.helpers import Project, rg
from tests.server import fns
from tests.server.conftest import Live, run_server
from tests.server.test_api import is_error


def cli_env(live: Live) -> dict[str, str]:
    """The environment a CLI run needs to open the live server's store."""
    url = live.store.location.url
    return {} if url.startswith("sqlite") else {"RELEASEGATE_DATABASE_URL": url}


def home(live: Live) -> Path:
    return live.store.location.home.parent


def kinds(live: Live) -> list[str]:
    return [e.kind for e in audit_log(live.store)]


def until_done(c: httpx.Client, location: str) -> dict[str, Any]:
    """Poll an eval until it is no longer running (the bound only stops a hung test)."""
    for _ in range(1200):
        state: dict[str, Any] = c.get(location).json()
        if state["status"] != "running":
            return state
        time.sleep(0.05)
    raise AssertionError(f"the eval never finished: {state}")


def test_register_is_the_clis_document_and_check_writes_nothing(live: Live) -> None:
    path = Project(root=home(live), stakes="high").workflow("v3", temperature=0.3)
    text = path.read_text()
    before = kinds(live)
    with live.client("builder") as c:
        checked = c.post(
            "/v1/versions", params={"check": "true"}, json={"document": text, "source": str(path)}
        )
        local = rg(home(live), "register", str(path), "--check", "--json", env=cli_env(live))
        assert local.returncode == 0, local.stderr
        assert checked.status_code == 200 and checked.text == local.stdout
        assert kinds(live) == before  # --check writes nothing
        made = c.post("/v1/versions", json={"document": text, "reason": "warmer"})
        assert made.status_code == 200, made.text
        doc = made.json()
        assert doc["is_new"] is True and doc["version_id"] == checked.json()["version_id"]
        assert doc["parent_id"] == live.v1  # what runs in staging, as the CLI's default
        event = audit_log(live.store)[-1]
        assert (event.kind, event.actor, event.subject) == (
            "version.registered",
            "builder",
            doc["version_id"],
        )
        again = c.post("/v1/versions", json={"document": text, "reason": "warmer"})
    local = rg(home(live), "register", str(path), "--json", env=cli_env(live))
    assert local.returncode == 0, local.stderr
    assert again.text == local.stdout  # "already registered": the same document, byte for byte
    assert json.loads(again.text)["is_new"] is False


def test_a_bad_document_is_422_naming_the_field_and_writes_nothing(live: Live) -> None:
    doc = yaml.safe_load(Project(root=home(live)).workflow("v4", temperature=0.4).read_text())
    before = (kinds(live), list_versions(live.store, "router"))
    with live.client("builder") as c:
        no_model = {k: v for k, v in doc.items() if k != "model"}
        r = c.post("/v1/versions", json={"document": yaml.safe_dump(no_model)})
        body = is_error(r, 422, "model")
        assert body["errors"][0]["field"] == "model"
        wrong = {**doc, "stakes": "medium"}
        r = c.post("/v1/versions", json={"document": json.dumps(wrong), "source": "wf.json"})
        assert is_error(r, 422, "wf.json", "stakes")["errors"][0]["field"] == "stakes"
        is_error(c.post("/v1/versions", json={"document": "workflow: [unclosed"}), 422)
        by_file = {**doc, "prompts": {"system": {"file": "prompts/system.txt"}}}
        r = c.post("/v1/versions", json={"document": yaml.safe_dump(by_file)})
        missing = is_error(r, 422, "prompts/system.txt", "not found")
        assert missing["errors"][0]["field"] == "prompts.system.file"
        is_error(c.post("/v1/versions", json={"document": "x", "extra": 1}), 422, "extra")
        is_error(
            c.post(
                "/v1/versions", json={"document": yaml.safe_dump(doc), "parent": "abcdef123456"}
            ),
            404,
        )
        assert (kinds(live), list_versions(live.store, "router")) == before
        # the file it names, sent beside it, is read from the body, never from the disk
        sent = c.post(
            "/v1/versions",
            json={
                "document": yaml.safe_dump(by_file),
                "files": {"./prompts/system.txt": "route it, politely"},
            },
        )
    assert sent.status_code == 200, sent.text
    with live.client("viewer") as c:
        manifest = c.get(f"/v1/versions/{sent.json()['version_id']}").json()["manifest"]
    assert manifest["prompts"]["system"] == "route it, politely"


def test_an_eval_runs_off_the_loop_and_any_replica_answers_it(live: Live) -> None:
    project = Project(root=home(live), stakes="high", fn="tests.server.fns:held")
    suite = project.suite(n=12, name="small")
    with live.client("builder") as c:
        made = c.post("/v1/versions", json={"document": project.workflow("held").read_text()})
        version = made.json()["version_id"]
        fns.GO.clear()
        try:
            started = c.post(
                f"/v1/versions/{version}/evals",
                json={
                    "suite": suite.read_text(),
                    "files": {"small.jsonl": (project.root / "small.jsonl").read_text()},
                },
            )
            assert started.status_code == 202, started.text
            location = started.headers["location"]
            assert (
                location == started.json()["location"] == f"/v1/evals/{started.json()['eval_id']}"
            )
            running = c.get(location).json()
            assert running["status"] == "running" and running["result"] is None
            assert running["progress"] is not None  # this process runs it
            # the event loop and the request threads are free while the model is called
            assert c.get("/v1/workflows/router").status_code == 200
        finally:
            fns.GO.set()
        done = until_done(c, location)
    assert done["status"] == "completed", done
    result = done["result"]
    assert result["eval_id"] == started.json()["eval_id"] and result["version_id"] == version
    assert (result["called"], result["cached"]) == (12, 0)
    assert result["metrics"]["accuracy"]["estimate"] == 1.0
    events = [e for e in audit_log(live.store) if e.kind == "eval.completed"]
    assert events[-1].actor == "builder" and events[-1].payload["eval_id"] == result["eval_id"]
    local = rg(home(live), "eval", version, "--suite", str(suite), "--json", env=cli_env(live))
    assert local.returncode == 0, local.stderr
    assert set(json.loads(local.stdout)) == set(result)  # the `eval --json` document's shape
    # another replica (a second app on the same store) answers the same, byte for byte
    other = create_app(live.store, Settings(token_ttl=0, allow_python="tests"))
    for url in run_server(other):
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {live.tokens['viewer']}"}
        ) as c2:
            assert c2.get(location).json()["result"] == result
    with live.client("builder") as c:
        # the workflow's current suite by default: the cached outputs make it free
        again = c.post(f"/v1/versions/{version}/evals", json={})
        assert again.status_code == 202, again.text
        assert until_done(c, again.headers["location"])["result"]["cached"] == 12


def test_an_eval_whose_server_died_reads_interrupted(live: Live) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    marker = {"pid": int(dead.stdout), "host": socket.gethostname(), "process_start": "1"}
    with live.store.write() as conn:
        EvalRepo(conn).start(
            eval_id="e" * 32,
            version_id=live.v2,
            suite_id=EvalRepo(conn).for_version(live.v2)[0].suite_id,
            epochs=1,
            summary={"running": marker},
        )
    with live.client("viewer") as c:
        state = c.get(f"/v1/evals/{'e' * 32}").json()
        assert state["status"] == "interrupted" and state["progress"] is None
        assert "ended without finishing" in state["interrupted"]["reason"]
        is_error(c.get("/v1/evals/nope"), 404, "no eval 'nope'")


def test_eval_input_errors_write_nothing(live: Live) -> None:
    before = kinds(live)
    with live.client("builder") as c:
        r = c.post(
            f"/v1/versions/{live.v2}/evals",
            json={"suite": "suite: x\nworkflow: router\ncases: c.jsonl\n"},
        )
        assert is_error(r, 422, "c.jsonl")["errors"][0]["field"] == "cases"
        is_error(c.post(f"/v1/versions/{live.v2}/evals", json={"epochs": 0}), 400, "epochs")
        is_error(c.post("/v1/versions/abcdef123456/evals", json={}), 404, "abcdef123456")
        is_error(
            c.post(f"/v1/versions/{live.v2}/evals", json={"suite_id": "f" * 64}), 404, "no suite"
        )
    assert kinds(live) == before


def test_gate_answers_the_decision_whatever_it_is(live: Live) -> None:
    with live.client("builder") as c:
        r = c.post(f"/v1/versions/{live.v2}/gate", json={"env": "staging"})
        assert r.status_code == 200, r.text
        decision = r.json()
        assert decision["verdict"] == "needs-approval" and decision["report_path"] is None
        assert audit_log(live.store)[-1].actor == "builder"
        is_error(c.post("/v1/versions/abcdef123456/gate", json={"env": "staging"}), 404)
        is_error(c.post(f"/v1/versions/{live.v2}/gate", json={"env": "moon"}), 400, "moon")
        is_error(c.post(f"/v1/versions/{live.v2}/gate", json={}), 422, "env")
    did = decision["decision_id"]
    with live.client("viewer") as c:
        stored = c.get(f"/v1/decisions/{did}")
    assert {**stored.json(), "report_path": None} == decision
    for fmt in ("markdown", "json", "junit"):
        with live.client("viewer") as c:
            shown = c.get(f"/v1/decisions/{did}", params={"format": fmt})
        local = rg(home(live), "report", "gate", did, "--format", fmt, env=cli_env(live))
        assert local.returncode == 0, local.stderr
        assert shown.text == local.stdout, fmt


def test_the_builder_needs_its_role(live: Live) -> None:
    with live.client("viewer") as c:
        is_error(c.post(f"/v1/versions/{live.v2}/gate", json={"env": "staging"}), 403, "builder")


def test_add_case_registers_the_grown_suite_and_answers_the_line(live: Live) -> None:
    from releasegate.release.evaluate import read_suite
    from tests.server.test_api import run

    project = Project(root=home(live))
    suite = project.suite(name="suite")
    files = {"suite.jsonl": (project.root / "suite.jsonl").read_text()}
    with live.client("operator") as c:
        c.post("/v1/runs", json=[run(live, 1, input="refund my card #card_lost")])
    before = kinds(live)
    with live.client("builder") as c:
        body = {"suite": suite.read_text(), "files": files, "reason": "incident 12"}
        is_error(
            c.post("/v1/suites/cases", json={**body, "input": "x", "from_run": "r-00001"}), 400
        )
        is_error(c.post("/v1/suites/cases", json={**body, "input": "x", "id": "c001"}), 400, "c001")
        is_error(c.post("/v1/suites/cases", json={**body, "input": "x", "reason": ""}), 422)
        inline = yaml.safe_dump(
            {
                "suite": "s",
                "workflow": "router",
                "scorers": [{"type": "exact_match"}],
                "cases": [{"id": "a", "input": "x", "expected": "y"}],
            }
        )
        r = c.post("/v1/suites/cases", json={**body, "suite": inline, "input": "x"})
        assert is_error(r, 422, "inline")["errors"][0]["field"] == "cases"
        assert kinds(live) == before  # nothing written on any of them
        added = c.post(
            "/v1/suites/cases",
            json={**body, "from_run": "r-00001", "expected": "card_lost", "tag": ["card_lost"]},
        )
    assert added.status_code == 200, added.text
    doc = added.json()
    assert (doc["case_id"], doc["cases"], doc["cases_file"]) == ("case-81", 81, "suite.jsonl")
    assert json.loads(doc["appended"])["metadata"]["from_run"] == "r-00001"
    event = audit_log(live.store)[-1]
    assert (event.kind, event.actor, event.subject) == ("suite.changed", "builder", doc["suite_id"])
    # the caller appends the line: its file and the registered suite are one
    with (project.root / "suite.jsonl").open("a") as fh:
        fh.write(doc["appended"])
    assert read_suite(suite).suite_id == doc["suite_id"]


def test_suite_plan_is_the_clis_document(live: Live) -> None:
    root = home(live)
    suite = {"suite": (root / "suite.yaml").read_text(), "source": "suite.yaml"}
    suite["files"] = {"suite.jsonl": (root / "suite.jsonl").read_text()}  # type: ignore[assignment]
    before = kinds(live)
    with live.client("viewer") as c:
        planned = c.post(f"/v1/versions/{live.v2}/plan", json={**suite, "env": "staging"})
        assert planned.status_code == 200, planned.text
        argv = ("suite", "plan", live.v2, "--suite", "suite.yaml", "--env", "staging", "--json")
        there = rg(root, *argv, env=cli_env(live))
        assert there.returncode == 0, there.stderr
        assert planned.text == there.stdout
        r = c.post(f"/v1/versions/{live.v2}/plan", json={**suite, "power": 1.5})
        is_error(r, 400, "--power")
        is_error(c.post("/v1/versions/abcdef123456/plan", json=suite), 404)
    # a version never evaluated on the suite: the CLI's exit 2, here 503 with the message
    with live.client("builder") as c:
        path = Project(root=root, stakes="high").workflow("v9", temperature=0.9)
        fresh = c.post("/v1/versions", json={"document": path.read_text()}).json()["version_id"]
        r = c.post(f"/v1/versions/{fresh}/plan", json={**suite, "env": "staging"})
    is_error(r, 503, "to plan from")
    assert kinds(live) == [*before, "version.registered"]


def test_a_nul_character_is_bad_input_on_both_databases(live: Live) -> None:
    """PostgreSQL refuses text with NUL where SQLite takes it: the answer is an input error
    (400) or a plain miss (404), never a 500, and nothing is written."""
    before = kinds(live)
    with live.client("admin") as c:
        answers = [
            c.post(f"/v1/versions/{live.v2}/evals", json={"suite_id": "\x00"}),
            c.get("/v1/runs/r-%00"),
            c.get("/v1/workflows/router/policy", params={"env": "\x00"}),
        ]
    for r in answers:
        assert r.status_code in (400, 404), r.text
        assert r.json()["ok"] is False
    assert kinds(live) == before
