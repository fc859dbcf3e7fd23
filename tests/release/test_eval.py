"""Evaluation: cached by (version, case, scorer, epoch), resumable after Ctrl-C, errors counted."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from releasegate.errors import SuiteError
from releasegate.release.evaluate import evaluate
from releasegate.release.register import register
from releasegate.store.engine import Store
from tests.helpers import Project


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(root=tmp_path)


def count(store: Store, sql: str) -> int:
    with store.read() as conn:
        return int(conn.execute(sa.text(sql)).scalar_one())


def test_a_rerun_makes_no_calls_and_epochs_multiply_calls(store: Store, project: Project) -> None:
    vid = register(store, project.workflow("v1")).version_id
    first = evaluate(store, vid, project.suite(n=40))
    assert (first.n_called, first.n_cached) == (40, 0)
    again = evaluate(store, vid, project.suite(n=40))
    assert (again.n_called, again.n_cached) == (0, 40)
    assert again.summary["metrics"] == first.summary["metrics"]
    three = evaluate(store, vid, project.suite(n=40), epochs=3)
    assert (three.n_called, three.n_cached) == (80, 40)  # epoch 0 is reused
    assert three.summary["epochs"] == 3 and three.summary["flaky"] == []
    fresh = evaluate(store, vid, project.suite(n=40), use_cache=False)
    assert fresh.n_called == 40


def test_a_changed_case_is_the_only_one_run_again(store: Store, project: Project) -> None:
    vid = register(store, project.workflow("v1")).version_id
    evaluate(store, vid, project.suite(n=40))
    extra = [{"id": "new", "input": "easy fresh #fraud", "expected": "fraud"}]
    grown = evaluate(store, vid, project.suite(n=40, extra=extra, name="s2"))
    assert (grown.n_called, grown.n_cached) == (1, 40)
    assert grown.suite_changed


def test_interrupted_eval_keeps_what_finished_and_resumes(
    store: Store, project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.fn = "tests.release.fns:interrupt_after"
    monkeypatch.setenv("RG_TEST_COUNTER", str(tmp_path / "calls"))
    monkeypatch.setenv("RG_TEST_INTERRUPT_AT", "30")
    vid = register(store, project.workflow("v1")).version_id
    suite = project.suite(n=80)
    with pytest.raises(KeyboardInterrupt):
        evaluate(store, vid, suite, concurrency=1)
    kept = count(store, "SELECT count(*) FROM outputs WHERE error IS NULL")
    assert kept == 29
    assert count(store, "SELECT count(*) FROM eval_runs WHERE status = 'interrupted'") == 1
    assert count(store, "SELECT count(*) FROM eval_runs WHERE status = 'completed'") == 0
    monkeypatch.setenv("RG_TEST_INTERRUPT_AT", "0")
    resumed = evaluate(store, vid, suite, concurrency=4)
    assert (resumed.n_called, resumed.n_cached) == (51, 29)
    assert resumed.summary["metrics"]["accuracy"]["estimate"] == 1.0


def test_provider_errors_are_counted_not_silent_and_retried_next_time(
    store: Store, project: Project
) -> None:
    project.fn = "tests.release.fns:flaky_io"
    vid = register(store, project.workflow("v1")).version_id
    extra = [{"id": "boom-1", "input": "easy boom #fraud", "expected": "fraud", "must_pass": True}]
    outcome = evaluate(store, vid, project.suite(n=20, extra=extra))
    assert outcome.summary["errors"]["count"] == 1
    assert outcome.summary["errors"]["examples"][0]["error"].startswith("TimeoutError")
    failure = outcome.summary["must_pass"]["failures"][0]
    assert failure["case_id"] == "boom-1" and "upstream took too long" in failure["detail"]
    assert outcome.summary["metrics"]["accuracy"]["estimate"] == pytest.approx(20 / 21)
    again = evaluate(store, vid, project.suite(n=20, extra=extra))
    assert again.n_called == 1  # the errored case is tried again, the rest come from cache


def test_a_case_without_the_expected_a_scorer_needs_fails_before_any_write(
    store: Store, project: Project
) -> None:
    vid = register(store, project.workflow("v1")).version_id
    extra = [{"id": "no-answer", "input": "easy #fraud"}]
    with pytest.raises(SuiteError, match="case 'no-answer' has no 'expected'") as err:
        evaluate(store, vid, project.suite(n=8, extra=extra))
    assert err.value.source is not None and err.value.source.endswith("suite.yaml")
    assert count(store, "SELECT count(*) FROM eval_runs") == 0
    assert count(store, "SELECT count(*) FROM suites") == 0
    assert count(store, "SELECT count(*) FROM outputs") == 0
