"""Reviews made cases of the stored suite at once, on SQLite and PostgreSQL: each grows the
suite the other grew, so the current suite ends with every case (none lost to the other)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from releasegate.errors import RefusedError
from releasegate.monitor.ingest import ingest_dicts
from releasegate.release.evaluate import evaluate, stored_suite
from releasegate.release.register import register
from releasegate.release.review_queue import ReviewCase, mark_run, review_to_case
from releasegate.store.engine import Store
from releasegate.store.reviews import ReviewRepo
from releasegate.store.suites import SuiteRepo
from tests.helpers import Project
from tests.release.test_review_queue import runs


def test_cases_made_at_once_all_land_in_the_current_suite(store: Store, tmp_path: Path) -> None:
    project = Project(root=tmp_path)
    vid = register(store, project.workflow("v1"), who="alice").version_id
    evaluate(store, vid, project.suite(n=8))
    assert ingest_dicts(store, runs(vid), source="http").landed == 60
    chosen = [f"run-{i:03d}" for i in (10, 20, 30, 40)]
    for run in chosen:
        mark_run(store, run, "bad", expected="fraud", who="bob")
    made: list[ReviewCase] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(chosen))

    def case(run: str) -> None:
        start.wait()
        try:
            made.append(review_to_case(store, run, reviewer="bob", who="bob"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=case, args=(r,)) for r in chosen]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    with store.read() as conn:
        current = SuiteRepo(conn).current_id("router")
    assert current is not None
    suite = stored_suite(store, current)
    from_runs = {c.metadata.get("from_run") for c in suite.cases}
    assert set(chosen) <= from_runs
    assert len(suite.cases) == 8 + len(chosen)
    assert sorted(m.cases for m in made) == [9, 10, 11, 12]


def test_one_review_made_a_case_twice_at_once_lands_once(store: Store, tmp_path: Path) -> None:
    """A double-sent "make a case" (two clicks, two tabs): one case, the other refused."""
    project = Project(root=tmp_path)
    vid = register(store, project.workflow("v1"), who="alice").version_id
    evaluate(store, vid, project.suite(n=8))
    assert ingest_dicts(store, runs(vid), source="http").landed == 60
    mark_run(store, "run-010", "bad", expected="fraud", who="bob")
    made: list[ReviewCase] = []
    refused: list[RefusedError] = []
    start = threading.Barrier(2)

    def case() -> None:
        start.wait()
        try:
            made.append(review_to_case(store, "run-010", reviewer="bob", who="bob"))
        except RefusedError as exc:
            refused.append(exc)

    with ThreadPoolExecutor(2) as pool:
        for _ in range(2):
            pool.submit(case)
    assert len(made) == 1 and len(refused) == 1, (made, refused)
    with store.read() as conn:
        current = SuiteRepo(conn).current_id("router")
        review = ReviewRepo(conn).get("run-010", "bob")
    assert current is not None
    suite = stored_suite(store, current)
    assert [c.metadata.get("from_run") for c in suite.cases].count("run-010") == 1
    assert review is not None
    assert review.case_id == made[0].case_id and review.case_suite_id == current
    with pytest.raises(RefusedError, match="already case"):  # and it stays made
        review_to_case(store, "run-010", reviewer="bob", who="bob")
