"""A suite sent over the API names a file on the sender's machine; a review made a case
of it over the server grows the suite the store keeps and never reads or writes a server
file at that path. A real ``releasegate serve`` (SQLite and PostgreSQL), the CLI through
it from another directory."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import PG_ADMIN, drop_pg_database, pg_database
from tests.helpers import Project, ok_json, rg
from tests.release.test_review_queue import runs
from tests.server.served import serve


@pytest.fixture
def server_env(
    dialect: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[dict[str, str]]:
    if dialect == "sqlite":
        yield {}
        return
    name = pg_database(request.getfixturevalue("pg_template"))
    try:
        yield {"RELEASEGATE_DATABASE_URL": f"{PG_ADMIN}/{name}"}
    finally:
        drop_pg_database(name)


def _token(cwd: Path, env: dict[str, str], name: str, role: str) -> str:
    made = rg(cwd, "token", "create", "--name", name, "--role", role, "--json", env=env)
    return str(ok_json(made)["token"])


def test_a_review_case_of_a_sent_suite_grows_the_stored_suite_not_a_server_file(
    tmp_path: Path, server_env: dict[str, str]
) -> None:
    srv, client = tmp_path / "srv", tmp_path / "client"
    srv.mkdir()
    client.mkdir()
    ok_json(rg(srv, "init", "--json", env=server_env))
    builder = _token(srv, server_env, "bea", "builder")
    operator = _token(srv, server_env, "otto", "operator")
    project = Project(root=client)
    project.workflow("v1")
    project.suite(n=8)
    # the server's directory holds a suite at the path the sender names, the same suite
    for name in ("suite.yaml", "suite.jsonl"):
        shutil.copy(client / name, srv / name)
    decoy = (srv / "suite.jsonl").read_text()
    sent = (client / "suite.jsonl").read_text()
    served = serve(srv, "--allow-python", "tests", env=server_env)
    try:
        remote = {"RELEASEGATE_URL": served.url, "RELEASEGATE_TOKEN": builder}
        vid = ok_json(rg(client, "register", "v1.yaml", "--json", env=remote))["version_id"]
        first = ok_json(rg(client, "eval", vid, "--suite", "suite.yaml", "--json", env=remote))
        rows = [{**r, "env": "staging"} for r in runs(vid)]
        auth = {"Authorization": f"Bearer {operator}"}
        with httpx.Client(base_url=served.url, headers=auth, timeout=60) as c:
            landed = c.post("/v1/runs", json={"runs": rows})
            assert landed.status_code == 200, landed.text
            marked = c.post(
                "/v1/reviews", json={"run": "run-010", "verdict": "bad", "expected": "fraud"}
            )
            assert marked.status_code == 200, marked.text
            made = c.post("/v1/reviews/case", json={"run": "run-010"})
        assert made.status_code == 200, made.text
        case = made.json()
        assert (case["case_id"], case["cases"], case["cases_file"]) == ("case-9", 9, None)
        assert case["previous_suite_id"] == first["suite_id"]
        assert (srv / "suite.jsonl").read_text() == decoy  # the server wrote no file
        assert (client / "suite.jsonl").read_text() == sent
        line = json.loads(case["appended"])
        assert line["input"] == "message 10 #fraud" and line["expected"] == "fraud"
        assert line["metadata"]["reviewer"] == "otto" and line["metadata"]["from_run"] == "run-010"

        # the sender appends the line: its file and the stored suite are one again
        with (client / "suite.jsonl").open("a") as fh:
            fh.write(case["appended"])
        again = ok_json(rg(client, "eval", vid, "--suite", "suite.yaml", "--json", env=remote))
        assert again["suite_id"] == case["suite_id"] and again["suite_changed"] is False
    finally:
        assert served.stop() == 0, served.logs()
