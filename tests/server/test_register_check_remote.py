"""``register --check`` through a server (``RELEASEGATE_URL``) prints what it prints
locally: the data-class warnings on stderr, the same stdout (table and ``--json``), the
same exit code, for one file and for several. A real uvicorn on SQLite and PostgreSQL;
no data rules file on either side, so both apply the default rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import Project, rg
from tests.server.conftest import Live


def _hosted(project: Project) -> Path:
    path = project.workflow("hosted")
    path.write_text(
        path.read_text().replace(
            f"provider: python\n  name: {project.fn}\n  revision: '1'",
            "provider: openai\n  name: gpt-4o-2024-08-06",
        )
    )
    return path


@pytest.mark.parametrize(
    "argv",
    [
        ("register", "hosted.yaml", "--check"),
        ("register", "hosted.yaml", "--check", "--json"),
        ("register", "local.yaml", "hosted.yaml", "--check"),
        ("register", "local.yaml", "hosted.yaml", "--check", "--json"),
    ],
    ids=["one", "one --json", "two", "two --json"],
)
def test_register_check_through_a_server_warns_as_locally(
    live: Live, tmp_path: Path, argv: tuple[str, ...]
) -> None:
    project = Project(root=tmp_path, meta={"data_class": "restricted"})
    _hosted(project)
    project.workflow("local")
    local = rg(tmp_path, *argv)
    remote = rg(
        tmp_path,
        *argv,
        env={"RELEASEGATE_URL": live.url, "RELEASEGATE_TOKEN": live.tokens["builder"]},
    )
    assert local.returncode == 0, local.stderr
    assert "warning: hosted.yaml: restricted data would reach openai model" in local.stderr
    assert (remote.returncode, remote.stdout, remote.stderr) == (
        local.returncode,
        local.stdout,
        local.stderr,
    )
    if "--json" in argv:
        docs = json.loads(remote.stdout)
        hosted = docs if isinstance(docs, dict) else docs[-1]
        assert "local runtimes only" in hosted["data_warnings"][0]
