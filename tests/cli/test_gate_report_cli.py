"""`gate --json` and `report gate --format json` publish the versioned gate report schema."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from releasegate.domain.gate_report import SCHEMA_PATH
from tests.domain.test_gate_report import STORED_BEFORE_THE_TYPE
from tests.helpers import REPO, Project, rg


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(root=tmp_path)


def validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads((REPO / SCHEMA_PATH).read_text()))


def out_json(*args: Any) -> dict[str, Any]:
    result = rg(*args)
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_gate_and_report_gate_json_validate_against_the_published_schema(
    project: Project,
) -> None:
    d = project.root
    project.suite()
    ids = []
    for name, temperature in (("v1", 0.0), ("v2", 0.5)):
        vid = out_json(
            d, "register", str(project.workflow(name, temperature=temperature)), "--json"
        )
        ids.append(vid["version_id"])
        assert rg(d, "eval", ids[-1][:10], "--suite", "suite.yaml").returncode == 0
    assert rg(d, "gate", ids[0][:10], "--env", "staging").returncode == 0
    assert rg(d, "promote", ids[0][:10], "--env", "staging").returncode == 0

    gated = out_json(d, "gate", ids[1][:10], "--env", "staging", "--json")
    validator().validate(gated)
    assert gated["schema_version"] == 1 and gated["baseline"]["id"] == ids[0]
    assert {m["name"] for m in gated["metrics"] if m["comparison"]} >= {"accuracy", "macro_f1"}

    again = out_json(d, "report", "gate", gated["decision_id"][:10], "--format", "json")
    validator().validate(again)
    assert again == {k: v for k, v in gated.items() if k != "report_path"}


def test_a_report_stored_before_the_schema_still_renders(project: Project) -> None:
    d = project.root
    project.suite()
    vid = out_json(d, "register", str(project.workflow("v1")), "--json")["version_id"]
    rg(d, "eval", vid[:10], "--suite", "suite.yaml")
    decided = out_json(d, "gate", vid[:10], "--env", "staging", "--json")
    old = {**STORED_BEFORE_THE_TYPE, "decision_id": decided["decision_id"]}
    with sqlite3.connect(d / ".releasegate" / "releasegate.db") as db:
        db.execute("UPDATE gate_decisions SET report_json = ?", (json.dumps(old),))

    published = out_json(d, "report", "gate", vid[:10], "--env", "staging", "--format", "json")
    validator().validate(published)
    assert published["schema_version"] == 1 and published["reasons"] == ["every check passed"]
    markdown = rg(d, "report", "gate", vid[:10], "--env", "staging")
    assert markdown.returncode == 0, markdown.stderr
    assert "## Release gate **PASS** · router@staging" in markdown.stdout
    assert "| `x1` | lost my card | card\\_lost | fraud |" in markdown.stdout
