"""Bad input refused at the door, through the real command: exit 2, the file, line and
field named, nothing written. YAML control characters, depth and alias bombs, deep JSON,
runs naming what the store does not know, a run_id re-sent with other content, more
than 1,000 rejections, suite thresholds, literal id prefixes, and add-case's file mode."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import Project, ok_json, register, rg
from tests.monitor.test_monitor import runs

# nine levels of nine references: 9**9 (387 million) strings once expanded
BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{b}: &{b} [{', '.join(['*' + a] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Project, str, str]:
    """Workflow ``router`` (staging, production) with one version, and a workflow
    ``other`` with one version of its own."""
    project = Project(root=tmp_path_factory.mktemp("untrusted"))
    d = project.root
    vid = register(d, project.workflow("v1"))
    doc = yaml.safe_load((d / "v1.yaml").read_text())
    doc["workflow"] = "other"
    (d / "other.yaml").write_text(yaml.safe_dump(doc))
    other = register(d, "other.yaml")
    project.suite()
    return project, vid, other


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def stored_runs(d: Path) -> int:
    listed = rg(d, "monitor", "router", "--env", "staging", "--no-embeddings", "--json")
    return int(json.loads(listed.stdout)["runs"])


def versions(d: Path) -> int:
    return len(json.loads(rg(d, "versions", "router", "--json").stdout))


# -- YAML ---------------------------------------------------------------------------------------


def test_a_yaml_alias_bomb_is_refused_not_expanded(registered: tuple[Project, str, str]) -> None:
    project, _, _ = registered
    d = project.root
    (d / "bomb.yaml").write_text(BOMB + (d / "v1.yaml").read_text())
    assert len(BOMB.encode()) < 600
    for args in (["register", "bomb.yaml", "--check"], ["register", "bomb.yaml"]):
        result = rg(d, *args, timeout=60)
        assert result.returncode == 2, result.stderr
        assert "bomb.yaml:" in result.stderr and "excessive aliasing" in result.stderr
    assert versions(d) == 1


@pytest.mark.parametrize(
    ("byte", "shown"), [("\x00", "U+0000 (NUL)"), ("\x1b", "U+001B (ESC)"), ("\x07", "U+0007")]
)
def test_a_control_character_in_yaml_is_named_with_line_and_column(
    registered: tuple[Project, str, str], byte: str, shown: str
) -> None:
    project, _, _ = registered
    d = project.root
    lines = (d / "v1.yaml").read_text().splitlines(keepends=True)
    lines[2] = lines[2][:4] + byte + lines[2][4:]
    (d / "ctrl.yaml").write_text("".join(lines))
    result = rg(d, "register", "ctrl.yaml")
    assert result.returncode == 2, result.stderr
    assert f"ctrl.yaml:3: control character {shown} at column 5" in result.stderr
    assert "Traceback" not in result.stderr
    assert versions(d) == 1


def test_yaml_nested_too_deep_is_refused(registered: tuple[Project, str, str]) -> None:
    project, _, _ = registered
    d = project.root
    for depth in (150, 5000):
        deep = "[" * depth + "]" * depth
        (d / "deep.yaml").write_text((d / "v1.yaml").read_text() + f"description: {deep}\n")
        result = rg(d, "register", "deep.yaml")
        assert result.returncode == 2, result.stderr
        assert "nested deeper than 100 levels" in result.stderr and "deep.yaml:" in result.stderr


def test_an_unquoted_date_stays_the_string_it_was_written_as(
    registered: tuple[Project, str, str],
) -> None:
    project, _, _ = registered
    d = project.root
    text = (d / "v1.yaml").read_text()
    doc = text.replace("  mode: good\n", "  mode: good\n  since: 2024-05-01\n")
    assert "since: 2024-05-01" in doc
    (d / "dated.yaml").write_text(doc)
    checked = ok_json(rg(d, "register", "dated.yaml", "--check", "--json"))
    assert checked["valid"] is True  # was a traceback: a date object cannot be hashed
    same = (d / "dated.yaml").read_text().replace("2024-05-01", "'2024-05-01'")
    (d / "quoted.yaml").write_text(same)
    quoted = ok_json(rg(d, "register", "quoted.yaml", "--check", "--json"))
    assert quoted["version_id"] == checked["version_id"]  # the same string either way


def test_a_suite_threshold_outside_0_to_1_is_refused(registered: tuple[Project, str, str]) -> None:
    project, vid, _ = registered
    d = project.root
    doc = yaml.safe_load((d / "suite.yaml").read_text())
    doc["thresholds"] = {"accuracy": 60}
    (d / "pct.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    result = rg(d, "eval", vid, "--suite", "pct.yaml")
    assert result.returncode == 2, result.stderr
    assert "field 'thresholds.accuracy': must be between 0 and 1" in result.stderr
    assert "write 0.6 for 60%" in result.stderr


# -- JSON ---------------------------------------------------------------------------------------


def test_deep_json_in_a_suite_case_is_refused(registered: tuple[Project, str, str]) -> None:
    project, vid, _ = registered
    d = project.root
    deep = {"id": "deep", "input": json.loads("[" * 150 + "]" * 150), "expected": "fraud"}
    (d / "deep.jsonl").write_text((d / "suite.jsonl").read_text() + json.dumps(deep) + "\n")
    doc = yaml.safe_load((d / "suite.yaml").read_text())
    doc["cases"] = "deep.jsonl"
    (d / "deep-suite.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    result = rg(d, "eval", vid, "--suite", "deep-suite.yaml")
    assert result.returncode == 2, result.stderr
    assert "deep.jsonl:81: JSON nested deeper than 100 levels" in result.stderr


def test_deep_json_in_runs_and_otlp_is_refused(registered: tuple[Project, str, str]) -> None:
    project, vid, _ = registered
    d = project.root
    rows = runs(vid, days=1, until=time.time(), n=3, shift=False, seed=21)
    rows[1]["input"] = json.loads("[" * 150 + "]" * 150)
    write(d / "deep-runs.jsonl", rows)
    (d / "deeper-runs.jsonl").write_text("[" * 5000 + "]" * 5000 + "\n")
    for name, line in (("deep-runs.jsonl", 2), ("deeper-runs.jsonl", 1)):
        result = rg(d, "runs", "import", name)
        assert result.returncode == 2, result.stderr
        assert f"{name}:{line}" in result.stderr and "nested deeper than 100" in result.stderr
    value: dict[str, Any] = {"stringValue": "x"}
    for _ in range(300):
        value = {"arrayValue": {"values": [value]}}
    otlp = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "deep", "value": value}]},
                "scopeSpans": [{"spans": []}],
            }
        ]
    }
    (d / "deep-otlp.json").write_text(json.dumps(otlp))
    result = rg(d, "runs", "import", "deep-otlp.json")
    assert result.returncode == 2, result.stderr
    assert "deep-otlp.json" in result.stderr and "nested deeper than 100" in result.stderr
    assert stored_runs(d) == 0


# -- runs the store does not know ---------------------------------------------------------------


def test_runs_for_an_unknown_workflow_or_environment_are_refused(
    registered: tuple[Project, str, str],
) -> None:
    project, vid, other = registered
    d = project.root
    rows = runs(vid, days=1, until=time.time(), n=6, shift=False, seed=22)
    rows[1]["workflow"] = "ruoter"
    rows[3]["env"] = "stagign"
    rows[4]["version_id"] = other
    write(d / "typos.jsonl", rows)
    result = rg(d, "runs", "import", "typos.jsonl")
    assert result.returncode == 2, result.stderr
    err = result.stderr
    assert "3 record(s) rejected, nothing imported" in err
    assert "typos.jsonl:2" in err and "field 'workflow': no workflow 'ruoter'" in err
    assert "did you mean 'router'?" in err
    assert "typos.jsonl:4" in err and "has no environment 'stagign'" in err
    assert "typos.jsonl:5" in err and f"version {other[:12]} belongs to workflow 'other'" in err
    assert stored_runs(d) == 0


def test_otlp_spans_of_an_unknown_workflow_are_refused(
    registered: tuple[Project, str, str],
) -> None:
    project, vid, _ = registered
    d = project.root
    now_ns = int(time.time() * 1e9)
    attrs = {
        "releasegate.version": vid,
        "releasegate.workflow": "nope",
        "releasegate.env": "staging",
    }
    span = {
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": "b7ad6b7169203331",
        "name": "chat",
        "startTimeUnixNano": str(now_ns - 10**9),
        "endTimeUnixNano": str(now_ns - 10**8),
        "attributes": [{"key": k, "value": {"stringValue": v}} for k, v in attrs.items()],
    }
    otlp = {"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}
    (d / "spans.json").write_text(json.dumps(otlp))
    result = rg(d, "runs", "import", "spans.json")
    assert result.returncode == 2, result.stderr
    assert "field 'workflow': no workflow 'nope' is registered" in result.stderr
    assert stored_runs(d) == 0


def test_a_run_id_resent_with_other_content_is_refused(
    registered: tuple[Project, str, str],
) -> None:
    project, vid, _ = registered
    d = project.root
    rows = runs(vid, days=1, until=time.time(), n=5, shift=False, seed=23)
    for i, row in enumerate(rows):
        row["run_id"] = f"resent-{i}"
    write(d / "first.jsonl", rows)
    assert rg(d, "runs", "import", "first.jsonl").returncode == 1  # lands, outside the gate
    again = ok_json_or_1(rg(d, "runs", "import", "first.jsonl", "--json"))
    assert (again["landed"], again["duplicates"]) == (0, 5)  # identical: a duplicate
    changed = [dict(r) for r in rows]
    changed[2]["latency_ms"] = 99999.0
    write(d / "changed.jsonl", changed)
    result = rg(d, "runs", "import", "changed.jsonl")
    assert result.returncode == 2, result.stderr
    assert "changed.jsonl:3 (run resent-2): field 'run_id': already stored with other content" in (
        result.stderr
    )


def ok_json_or_1(result: Any) -> dict[str, Any]:
    assert result.returncode in (0, 1), result.stderr  # 1: outside the gate
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_every_rejection_is_counted_beyond_the_first_thousand(
    registered: tuple[Project, str, str],
) -> None:
    project, vid, _ = registered
    d = project.root
    rows = runs(vid, days=1, until=time.time(), n=1500, shift=False, seed=24)
    for row in rows:
        row["status"] = "maybe"
    write(d / "many.jsonl", rows)
    result = rg(d, "runs", "import", "many.jsonl", "--json")
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert report["rejected_total"] == 1500 and report["landed"] == 0
    text = rg(d, "runs", "import", "many.jsonl")
    assert "1500 record(s) rejected" in text.stderr and "and 1480 more" in text.stderr


# -- ids and files ------------------------------------------------------------------------------


def test_an_id_prefix_is_matched_literally(registered: tuple[Project, str, str]) -> None:
    project, vid, _ = registered
    d = project.root
    for pattern in ("______", "%%%%%%", vid[:5] + "_"):
        result = rg(d, "show", pattern)
        assert result.returncode == 2, (pattern, result.stdout)
        assert vid not in result.stdout


def test_add_case_keeps_the_cases_file_mode(registered: tuple[Project, str, str]) -> None:
    project, _, _ = registered
    d = project.root
    cases = d / "suite.jsonl"
    os.chmod(cases, 0o664)
    added = rg(
        d, "suite", "add-case", "suite.yaml", "--input", "easy message 9 #fraud",
        "--expected", "fraud", "--reason", "INC-7: a fraud case", "--json",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert stat.S_IMODE(cases.stat().st_mode) == 0o664
