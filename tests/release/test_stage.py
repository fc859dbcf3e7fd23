"""``stage set`` on real SQLite and PostgreSQL stores: two writers at once."""

from __future__ import annotations

import threading
from datetime import date
from pathlib import Path

import pytest

from releasegate.errors import RefusedError, WriteConflictError
from releasegate.release.audit import audit_verify
from releasegate.release.register import register
from releasegate.release.stage import StageSet, set_stage, show_stage
from releasegate.store.audit import AuditRepo
from releasegate.store.engine import Store
from tests.helpers import Project


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(root=tmp_path)


def test_two_stage_sets_at_once_record_the_stage_once(store: Store, project: Project) -> None:
    register(store, project.workflow("v1"), who="alice")
    day = date(2026, 12, 18)
    start = threading.Barrier(2)
    done: list[StageSet] = []
    refused: list[str] = []

    def set_pilot(who: str) -> None:
        start.wait()
        try:
            done.append(set_stage(store, "router", "pilot", handover_date=day, who=who))
        except (RefusedError, WriteConflictError) as e:
            refused.append(str(e))

    threads = [threading.Thread(target=set_pilot, args=(w,)) for w in ("alice", "bob")]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(done) == 1 and len(refused) == 1, (done, refused)
    with store.read() as conn:
        kinds = [e.kind for e in AuditRepo(conn).events()]
    assert kinds.count("workflow.stage_set") == 1
    state = show_stage(store, "router", today=day)
    assert state.stage == "pilot" and state.current is not None
    assert state.current.actor == done[0].record.actor
    assert audit_verify(store).broken is None
