"""A document sent over the server names its files (prompts, cases) by path, and they come
from what was sent alone: a path naming a file of the server's own disk, absolute, with
``..`` or plain, is "not found" (422 over the API), never read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from releasegate.domain.sent_code import SentCodePolicy
from releasegate.errors import ManifestError, SuiteError
from releasegate.release.evaluate import read_suite_text
from releasegate.release.register import read_workflow_text

POLICY = {"floors": {"accuracy": 0.5}}

TESTS = SentCodePolicy(python_modules=("tests",))  # the test functions may run


def _workflow(prompt_file: str) -> str:
    return json.dumps(
        {
            "workflow": "router",
            "stakes": "low",
            "owners": {"change": "alice", "approvers": ["bob"]},
            "model": {"provider": "python", "name": "tests.release.fns:route"},
            "prompts": {"system": {"file": prompt_file}},
            "policy": {"staging": POLICY, "production": POLICY},
        }
    )


def _server_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Files that exist where the server runs: absolute, relative and climbing out."""
    (tmp_path / "secret.txt").write_text("do not read me\n")
    (tmp_path / "cases.jsonl").write_text('{"input": "x", "expected": "y"}\n')
    inner = tmp_path / "a" / "b"
    inner.mkdir(parents=True)
    monkeypatch.chdir(inner)
    return [str(tmp_path / "secret.txt"), "../../secret.txt", "/etc/hostname"]


def test_a_workflow_names_a_server_file_and_it_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for path in _server_files(tmp_path, monkeypatch):
        with pytest.raises(ManifestError, match="not found") as caught:
            read_workflow_text(_workflow(path), "workflow.yaml", {}, policy=TESTS)
        assert caught.value.field == "prompts.system.file"
    sent = read_workflow_text(
        _workflow("../../secret.txt"), "w.yaml", {"../../secret.txt": "hi"}, policy=TESTS
    )
    assert "do not read me" not in json.dumps(sent.manifest)


def test_a_suite_names_a_server_cases_file_and_it_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = [*_server_files(tmp_path, monkeypatch), str(tmp_path / "cases.jsonl")]
    paths.append("../../cases.jsonl")
    for path in paths:
        suite = json.dumps(
            {"suite": "s", "workflow": "router", "cases": path, "scorers": [{"type": "exact"}]}
        )
        with pytest.raises(SuiteError, match="not found"):
            read_suite_text(suite, "suite.yaml", {}, policy=TESTS)
