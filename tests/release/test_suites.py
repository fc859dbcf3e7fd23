"""Suites learn from incidents: a new case is a new suite version, and the next gate needs it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from releasegate.errors import InputError, PromotionRefusedError, SuiteError
from releasegate.release.evaluate import evaluate
from releasegate.release.gate import gate
from releasegate.release.promote import promote
from releasegate.release.register import register
from releasegate.release.suites import add_case
from releasegate.store.engine import Store
from tests.helpers import Project


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(root=tmp_path)


def test_an_incident_case_makes_a_new_suite_the_next_gate_uses(
    store: Store, project: Project
) -> None:
    suite = project.suite(n=40)
    v1 = register(store, project.workflow("v1")).version_id
    first = evaluate(store, v1, suite)
    assert gate(store, v1, "staging").verdict == "pass"

    added = add_case(
        store,
        suite,
        input="easy wire gone missing #transfer",
        expected="transfer",
        must_pass=True,
        tags=["incident"],
        reason="INC-42: a transfer routed to complaints",
    )
    assert added.previous_id == first.suite_id and added.suite_id != first.suite_id
    assert added.cases == 41 and added.case_id == "case-41"
    last = json.loads((project.root / "suite.jsonl").read_text().splitlines()[-1])
    assert last == {
        "id": "case-41",
        "input": "easy wire gone missing #transfer",
        "expected": "transfer",
        "tags": ["incident"],
        "must_pass": True,
    }

    with pytest.raises(PromotionRefusedError, match="suite changed"):
        promote(store, v1, "staging")  # the old decision was on the old suite
    held = gate(store, v1, "staging")
    assert held.verdict == "hold" and "not evaluated on the current suite" in held.reasons_text()
    again = evaluate(store, v1, suite)
    assert (again.n_called, again.n_cached) == (1, 40)  # only the new case runs
    assert gate(store, v1, "staging").verdict == "pass"
    with store.read() as conn:
        reason = conn.execute(
            sa.text(
                "SELECT payload_json FROM audit_events WHERE kind = 'suite.changed' "
                "ORDER BY seq DESC LIMIT 1"
            )
        ).scalar_one()
    assert "INC-42" in reason


def test_bad_additions_change_nothing(store: Store, project: Project) -> None:
    suite = project.suite(n=8)
    cases_file = project.root / "suite.jsonl"
    before = cases_file.read_text()
    with pytest.raises(InputError, match="say why"):
        add_case(store, suite, input="x #fraud", expected="fraud", reason=" ")
    with pytest.raises(InputError, match="already has a case 'c001'"):
        add_case(store, suite, input="x #fraud", expected="fraud", case_id="c001", reason="r")
    with pytest.raises(SuiteError, match="has no 'expected'"):
        add_case(store, suite, input="x #fraud", reason="no answer given")
    assert cases_file.read_text() == before
    inline = project.root / "inline.yaml"
    inline.write_text(
        "suite: s\nworkflow: router\ncases:\n  - {id: a, input: x, expected: y}\n"
        "scorers: [{type: equals}]\n"
    )
    with pytest.raises(SuiteError, match="cases inline") as err:
        add_case(store, inline, input="x", expected="y", reason="r")
    assert str(err.value).startswith(f"{inline}:3: field 'cases'")


def test_concurrent_additions_are_all_kept(store: Store, project: Project) -> None:
    from concurrent.futures import ThreadPoolExecutor

    suite = project.suite(n=8)

    def add(i: int) -> str:
        return add_case(
            store,
            suite,
            input=f"easy incident {i} #fraud",
            expected="fraud",
            case_id=f"inc-{i}",
            reason=f"INC-{i}",
        ).case_id

    with ThreadPoolExecutor(6) as pool:
        added = sorted(pool.map(add, range(6)))
    assert added == [f"inc-{i}" for i in range(6)]
    lines = (project.root / "suite.jsonl").read_text().splitlines()
    assert len(lines) == 8 + 6  # no writer overwrote another's case
    assert {json.loads(line)["id"] for line in lines[8:]} == set(added)
