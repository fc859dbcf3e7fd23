"""Set-ups the CLI tests share: a project, and one whose v1 already runs in staging."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.helpers import Project, register, ship
from tests.monitor.test_monitor import runs


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(root=tmp_path)


@pytest.fixture
def shipped(tmp_path: Path) -> tuple[Project, str]:
    """A project whose v1 went through the gate to staging, with a v2 file and runs beside it."""
    project = Project(root=tmp_path / "proj")
    project.root.mkdir()
    d = project.root
    vid = register(d, project.workflow("v1"))
    ship(project, vid)
    project.workflow("v2", revision="2")
    rows = runs(vid, days=1, until=time.time(), n=50, shift=False, seed=1)
    (d / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return project, vid
