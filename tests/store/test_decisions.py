"""The decisions repository takes and returns the typed gate report, on both databases."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import sqlalchemy as sa

from releasegate.domain.gate_report import GateReport
from releasegate.release.evaluate import evaluate
from releasegate.release.gate import gate
from releasegate.release.register import register
from releasegate.store import tables as t
from releasegate.store.decisions import DecisionRepo
from releasegate.store.engine import Store
from tests.domain.test_gate_report import STORED_BEFORE_THE_TYPE
from tests.helpers import Project


def test_the_stored_report_comes_back_as_the_type_and_older_rows_still_load(
    store: Store, tmp_path: Path
) -> None:
    project = Project(root=tmp_path)
    vid = register(store, project.workflow("v1"), who="alice").version_id
    evaluate(store, vid, project.suite(n=20), who="alice")
    outcome = gate(store, vid, "staging", who="ci")
    with store.read() as conn:
        found = DecisionRepo(conn).latest(vid, "staging")
    assert found is not None and isinstance(found.report, GateReport)
    assert found.report.to_json() == outcome.report.to_json()

    old = {**STORED_BEFORE_THE_TYPE, "decision_id": outcome.decision_id}
    with store.write() as conn:  # the row as the release before the type wrote it
        conn.execute(sa.update(t.gate_decisions).values(report_json=json.dumps(old)))
    with store.read() as conn:
        (again,) = DecisionRepo(conn).by_prefix(outcome.decision_id[:8])
    expected = copy.deepcopy(old)
    expected["schema_version"] = 1
    expected["metrics"][0]["comparison"]["se"] = None
    assert again.report.to_json() == expected
