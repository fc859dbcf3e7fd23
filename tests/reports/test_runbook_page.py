"""The runbook page an operator reads in an emergency: what it tells them to type."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from releasegate.monitor.runbook import build_runbook
from releasegate.reports.runbook import render_markdown
from releasegate.store.engine import Store
from tests.helpers import Project
from tests.release.test_rollout import shipped_pair


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(root=tmp_path)


def _section(page: str, title: str) -> str:
    return page.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_a_rollout_in_the_main_environment_is_stopped_first_and_review_is_weekly(
    store: Store, project: Project
) -> None:
    v1, _ = shipped_pair(store, project)  # v1 runs in staging
    rb = build_runbook(store, "router")
    page = render_markdown(rb)
    assert "rollout abort" not in _section(page, "In an emergency")  # none runs
    # the weekly checks name the governance review, as their sentence says
    assert "\nreleasegate review router\n" in _section(page, "Daily and weekly checks")

    running = "a rollout of v2 over v1 serves 10% of traffic (step 1 of 3)"
    serving = {"version_id": v1, "rollout": running}  # as if production ran v1 with a canary
    envs = tuple(replace(e, **serving) if e.env == rb.main_env else e for e in rb.environments)
    emergency = _section(render_markdown(replace(rb, environments=envs)), "In an emergency")
    abort = (
        f"releasegate rollout abort router --env {rb.main_env} --reason 'INCIDENT: what you saw'"
    )
    assert f"`{abort}`" in emergency and running in emergency
    assert "prints the version id (and says when it is paused, or who a rollout serves)" in (
        " ".join(emergency.split())
    )  # resolve's stderr note names the canary and its share
    commands = replace(rb, environments=envs).as_dict()["commands"]  # --json: the same line
    assert (
        commands[rb.main_env]["abort"] == abort
        and rb.as_dict()["commands"][rb.main_env]["abort"] is None
    )
