"""What operators and approvers read and change over the API, on a real uvicorn on SQLite and
PostgreSQL: a run, a diff, the stage, the policies, the runbook, the handover checklist, the
review, the monitor and the memo are the CLI's documents (byte for byte where the document
holds no clock), reading sends no alert, and each change is audited as the token's name."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from releasegate.release.audit import audit_log
from tests.helpers import rg
from tests.server.conftest import Live
from tests.server.test_api import is_error, run
from tests.server.test_loop_api import cli_env, home


def local(live: Live, *argv: str) -> str:
    done = rg(home(live), *argv, env=cli_env(live))
    assert done.returncode in (0, 1), done.stderr
    return done.stdout


def without(doc: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in keys}


def unclocked(text: str) -> list[str]:
    return [line for line in text.splitlines() if "enerated" not in line]


def alerts(live: Live) -> list[Any]:
    with live.store.read() as conn:
        return list(conn.execute(sa.text("SELECT * FROM alerts")).all())


def test_the_reads_are_the_clis_documents(live: Live) -> None:
    with live.client("operator") as c:
        landed = c.post("/v1/runs", json=[run(live, i) for i in range(5)])
        assert landed.status_code == 200, landed.text
    wf = "/v1/workflows/router"
    same = {  # path -> the CLI's argv: the same bytes
        "/v1/runs/r-00003": ("runs", "show", "r-00003", "--json"),
        f"/v1/versions/{live.v1[:12]}/diff/{live.v2[:12]}": (
            "diff",
            live.v1[:12],
            live.v2[:12],
            "--json",
        ),
        f"{wf}/stage": ("stage", "show", "router", "--json"),
        f"{wf}/policy?env=staging": ("policy", "show", "router", "--env", "staging", "--json"),
    }
    clocked = {  # the same but for the minute it was generated at
        f"{wf}/runbook?format=md": ("report", "runbook", "router"),
        f"{wf}/runbook?format=html": ("report", "runbook", "router", "--format", "html"),
    }
    with live.client("viewer") as c:
        for path, argv in same.items():
            r = c.get(path)
            assert r.status_code == 200, (path, r.text)
            assert r.text == local(live, *argv), path
        for path, argv in clocked.items():
            r = c.get(path)
            assert r.status_code == 200, (path, r.text)
            assert unclocked(r.text) == unclocked(local(live, *argv)), path
        assert c.get(f"{wf}/runbook?format=html").headers["content-type"].startswith("text/html")
        book = c.get(f"{wf}/runbook").json()
        there = json.loads(local(live, "report", "runbook", "router", "--json"))
        assert without(book, "generated_at", "readiness") == without(
            there, "generated_at", "readiness"
        )
        assert book["readiness"]["failing"] == there["readiness"]["failing"]
        ready = c.get(f"{wf}/handover").json()
        there = json.loads(local(live, "report", "handover", "router", "--json"))
        assert without(ready, "checked_at") == without(there, "checked_at")
        found = c.get("/v1/review", params={"workflow": "router"}).json()
        theirs = json.loads(local(live, "review", "router", "--json"))
        assert without(found, "at") == without(theirs, "at")
        is_error(c.get("/v1/runs/r-99999"), 404)
        is_error(c.get(f"/v1/versions/{live.v1}/diff/abcdef123456"), 404)
        is_error(c.get("/v1/workflows/nope/stage"), 404, "nope")
        is_error(c.get("/v1/workflows/nope/policy"), 404, "nope")
        is_error(c.get("/v1/workflows/nope/runbook"), 404, "nope")
        is_error(c.get("/v1/review", params={"period": "soon"}), 400, "--period")


def test_reading_the_monitor_sends_no_alert_and_an_operator_asks_for_them(live: Live) -> None:
    with live.client("operator") as c:
        c.post("/v1/runs", json=[run(live, i, status="error") for i in range(40)])
    before = alerts(live)
    path = "/v1/workflows/router/environments/staging/monitor"
    quiet = {"embeddings": "false", "quality": "false"}
    with live.client("viewer") as c:
        read = c.get(path, params=quiet)
        assert read.status_code == 200, read.text
        prom = c.get(path, params={**quiet, "format": "prometheus"})
        assert prom.headers["content-type"].startswith("text/plain")
        assert "releasegate_" in prom.text
        is_error(c.get("/v1/workflows/router/environments/moon/monitor", params=quiet), 400)
        is_error(c.post(path, json={"embeddings": False, "quality": False}), 403, "operator")
    there = json.loads(
        local(
            live,
            "monitor",
            "router",
            "--env",
            "staging",
            "--no-embeddings",
            "--no-quality",
            "--no-alert",
            "--json",
        )
    )
    doc = read.json()
    assert set(doc) == set(there) and doc["runs"] == there["runs"]
    assert alerts(live) == before  # reading sent nothing
    with live.client("operator") as c:
        asked = c.post(path, json={"embeddings": False, "quality": False})
    assert asked.status_code == 200, asked.text
    assert asked.json()["status"] == doc["status"]


def test_the_memo_in_three_formats(live: Live) -> None:
    with live.client("viewer") as c:
        doc = c.get("/v1/workflows/router/memo")
        assert doc.status_code == 200, doc.text
        memo = doc.json()
        assert memo["workflow"] == "router" and memo["written"] is None
        there = json.loads(local(live, "report", "memo", "router", "--json"))
        assert set(memo) == set(there) and memo["week"] == there["week"]
        md = c.get("/v1/workflows/router/memo", params={"format": "markdown"})
        assert md.text.startswith("# router: stability memo, week ")
        html = c.get("/v1/workflows/router/memo", params={"format": "html", "week": memo["week"]})
        assert html.headers["content-type"].startswith("text/html") and "<html" in html.text
        is_error(c.get("/v1/workflows/router/memo", params={"week": "someday"}), 400)
        is_error(c.get("/v1/workflows/router/memo", params={"format": "pdf"}), 422, "format")


def test_governance_changes_carry_the_tokens_name(live: Live) -> None:
    with live.client("operator") as c:
        staged = c.post("/v1/workflows/router/stage", json={"stage": "pilot"})
        assert staged.status_code == 200, staged.text
        assert staged.json()["stage"] == "pilot"
        assert audit_log(live.store)[-1].actor == "operator"
        is_error(c.post("/v1/workflows/router/stage", json={"stage": "done"}), 400, "done")
        is_error(c.post("/v1/workflows/router/stage", json={"stage": "pilot", "date": "x"}), 400)
        fixed = c.post("/v1/review", json={"workflow": "router"})
        assert fixed.status_code == 200 and "fixed" in fixed.json()
    path = "/v1/workflows/router/environments/staging/policy/proposals"
    with live.client("alice") as c:
        proposed = c.post(path, json={"floor": ["accuracy=0.6"], "reason": "incident 7"})
        assert proposed.status_code == 200, proposed.text
        pid = proposed.json()["proposal_id"]
        assert proposed.json()["proposer"] == "alice"
        is_error(c.post(path, json={"floor": ["accuracy=2"], "reason": "x"}), 400, "accuracy")
        is_error(c.post(f"/v1/policy/proposals/{pid}/approve", json={}), 409)  # her own
    with live.client("bob") as c:
        is_error(c.post(f"/v1/policy/proposals/{pid}/approve", json={"as": "carol"}), 422, "as")
        done = c.post(f"/v1/policy/proposals/{pid}/approve", json={"note": "ok"})
        assert done.status_code == 200, done.text
        assert (done.json()["state"], done.json()["approver"]) == ("approved", "bob")
    with live.client("viewer") as c:
        shown = c.get("/v1/workflows/router/policy", params={"env": "staging"}).json()
    assert shown[0]["policy"]["floors"]["accuracy"] == 0.6
