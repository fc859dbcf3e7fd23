"""The dashboard's views (``monitor.dashboard``) on SQLite and PostgreSQL: what runs where
and since when, paused environments, which alerts are firing (the latest of each signal,
within its cool-down), the newest versions first with the total."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from releasegate.monitor.dashboard import LATEST_VERSIONS, overview, workflow_view
from releasegate.release.evaluate import evaluate
from releasegate.release.gate import gate
from releasegate.release.pause import pause
from releasegate.release.promote import promote
from releasegate.release.register import register
from releasegate.store.alerts import AlertRepo, NewAlert
from releasegate.store.engine import Store
from tests.helpers import Project

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def alert(store: Store, signal: str, at: datetime, env: str = "staging") -> None:
    with store.write() as conn:
        AlertRepo(conn).add(
            NewAlert("router", env, signal, "warning", f"{signal} moved", {}), at=at
        )


def test_what_runs_where_paused_and_firing(store: Store, tmp_path: Path) -> None:
    project = Project(root=tmp_path, meta={"monitor": {"cooldown": "6h"}})
    v1 = register(store, project.workflow("v1"), who="alice").version_id
    evaluate(store, v1, project.suite())
    gate(store, v1, "staging")
    promote(store, v1, "staging", who="alice")
    pause(store, "router", "staging", reason="INCIDENT: odd labels", who="carol")
    alert(store, "error_rate", NOW - timedelta(hours=8))  # its cool-down is over
    alert(store, "latency_p95", NOW - timedelta(hours=3))  # superseded by the next one
    alert(store, "latency_p95", NOW - timedelta(hours=1))

    view = overview(store, now=NOW)
    (wf,) = view.workflows
    assert wf.stage == "experiment" and wf.stakes == "low"
    staging, production = wf.environments
    assert (staging.env, staging.version_id, staging.moved_by, staging.move) == (
        "staging", v1, "alice", "promote",
    )  # fmt: skip
    assert staging.since is not None and staging.pause is not None
    assert staging.pause.reason == "INCIDENT: odd labels" and staging.pause.by == "carol"
    assert production.version_id is None and production.since is None
    assert [(a.signal, a.created_at) for a in view.firing] == [
        ("latency_p95", NOW - timedelta(hours=1))
    ]
    assert [(w, e.env) for w, e in view.paused] == [("router", "staging")]
    assert view.rollouts == () and view.by_stage == {"experiment": 1}


def test_the_workflow_view_lists_the_newest_versions_first(store: Store, tmp_path: Path) -> None:
    project = Project(root=tmp_path)
    ids = [
        register(store, project.workflow(f"v{i}", temperature=i / 100), who="alice").version_id
        for i in range(LATEST_VERSIONS + 2)
    ]
    view = workflow_view(store, "router", now=NOW)
    assert view.version_count == LATEST_VERSIONS + 2
    assert [v.version_id for v in view.versions] == ids[::-1][:LATEST_VERSIONS]
    assert view.history == () and view.rollouts == () and view.alerts == ()
    assert view.rehearsal is None and view.rehearsal_text == "never rehearsed"
