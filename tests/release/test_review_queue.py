"""The review queue's service on SQLite and PostgreSQL: what is queued, marking (stored,
audited, one per run and reviewer, an update on the record), a review turned into a
suite case with its provenance, and the review log's numbers."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from releasegate.domain.review_queue import QueueRules
from releasegate.errors import InputError, NotFoundError, RefusedError, SuiteError
from releasegate.monitor.ingest import ingest_dicts
from releasegate.release.evaluate import evaluate
from releasegate.release.register import register
from releasegate.release.review_queue import (
    check_suite_file,
    mark_run,
    review_log,
    review_queue,
    review_to_case,
)
from releasegate.store.audit import AuditRepo
from releasegate.store.engine import Store
from releasegate.store.suites import SuiteRepo
from tests.helpers import Project

NOW = datetime.now(UTC)


def runs(vid: str, n: int = 60) -> list[dict[str, Any]]:
    """``n`` production runs over the last few days: every 10th escalated, every 7th
    edited, every 9th with negative feedback."""
    out = []
    for i in range(n):
        at = NOW - timedelta(hours=i + 1)
        out.append(
            {
                "run_id": f"run-{i:03d}",
                "workflow": "router",
                "env": "production",
                "version_id": vid,
                "started_at": at.timestamp(),
                "latency_ms": 120,
                "status": "ok",
                "input": f"message {i} #fraud",
                "output": "complaint",
                "escalated": i % 10 == 0,
                "edited": i % 7 == 0,
                "feedback": -0.5 if i % 9 == 0 else 0.5,
            }
        )
    return out


@pytest.fixture
def loaded(store: Store, tmp_path: Path) -> Project:
    project = Project(root=tmp_path)
    vid = register(store, project.workflow("v1"), who="alice").version_id
    evaluate(store, vid, project.suite(n=8))  # the current suite, registered from its file
    landed = ingest_dicts(store, runs(vid), source="http")
    assert landed.landed == 60, landed.rejected
    return project


def test_the_queue_lists_flagged_and_sampled_runs_with_their_reasons(
    store: Store, loaded: Project
) -> None:
    q = review_queue(store, "router", rules=QueueRules(sample_share=0.1))
    why = {i.run_id: i.reasons for i in q.items}
    assert why["run-000"][:3] == ("escalated", "bad_feedback", "edited")
    assert why["run-010"][0] == "escalated"
    assert why["run-009"][0] == "bad_feedback"
    assert why["run-007"][0] == "edited"
    assert "run-001" not in why or why["run-001"] == ("sample",)
    assert q.runs == 60
    flagged = {f"run-{i:03d}" for i in range(60) if i % 10 == 0 or i % 7 == 0 or i % 9 == 0}
    assert flagged <= set(why)
    assert q.queued == len(flagged) + sum(1 for r in why.values() if r == ("sample",))
    # the first items are the escalations, newest first
    assert [i.run_id for i in q.items[:2]] == ["run-000", "run-010"]
    # the same queue for a second reader; another env has none
    assert review_queue(store, "router", rules=QueueRules(sample_share=0.1)).items == q.items
    assert review_queue(store, "router", "staging").queued == 0


def test_pages_cover_the_queue_once(store: Store, loaded: Project) -> None:
    seen: list[str] = []
    after = None
    while True:
        page = review_queue(store, "router", limit=4, after=after)
        seen += [i.run_id for i in page.items]
        after = page.next
        if after is None:
            break
    assert len(seen) == len(set(seen)) == review_queue(store, "router").queued


def test_a_mark_is_stored_audited_and_takes_the_run_out_of_the_queue(
    store: Store, loaded: Project
) -> None:
    marked = mark_run(store, "run-010", "bad", expected="fraud", note="missed it", who="bob")
    assert not marked.is_update
    assert marked.review.reasons == ("escalated",)
    q = review_queue(store, "router")
    assert "run-010" not in {i.run_id for i in q.items} and q.reviewed == 1
    with store.read() as conn:
        event = AuditRepo(conn).events(limit=1)[0]
    assert (event.kind, event.actor, event.subject) == ("review.marked", "bob", "run-010")
    assert event.payload["verdict"] == "bad" and event.payload["expected"] == "fraud"

    # again by bob: an update, audited with what it replaced
    again = mark_run(store, "run-010", "good", who="bob")
    assert again.is_update and again.previous is not None
    assert again.review.review_id == marked.review.review_id
    with store.read() as conn:
        event = AuditRepo(conn).events(limit=1)[0]
        count = AuditRepo(conn).count()
    assert event.kind == "review.updated"
    assert event.payload["previous"] == {"verdict": "bad", "expected": "fraud", "note": "missed it"}

    # the same review once more changes nothing: refused, nothing written
    with pytest.raises(RefusedError, match="already marked run run-010 good"):
        mark_run(store, "run-010", "good", who="bob")
    # a second reviewer has a review of their own
    mark_run(store, "run-010", "bad", who="carol")
    with store.read() as conn:
        assert AuditRepo(conn).count() == count + 1
    log = review_log(store, "router")
    assert {(r.reviewer, r.verdict) for r in log.reviews} == {("bob", "good"), ("carol", "bad")}


def test_an_unknown_run_or_verdict_writes_nothing(store: Store, loaded: Project) -> None:
    with store.read() as conn:
        before = AuditRepo(conn).count()
    with pytest.raises(NotFoundError, match="no run 'nope'"):
        mark_run(store, "nope", "bad", who="bob")
    with pytest.raises(Exception, match="unknown verdict"):
        mark_run(store, "run-010", "meh", who="bob")
    with store.read() as conn:
        assert AuditRepo(conn).count() == before
    assert review_log(store, "router").stats.reviews == 0


def test_a_review_becomes_a_suite_case_with_its_provenance(
    store: Store, loaded: Project, tmp_path: Path
) -> None:
    marked = mark_run(store, "run-020", "bad", expected="fraud", note="said complaint", who="bob")
    made = review_to_case(
        store, "run-020", reviewer="bob", suite_path=tmp_path / "suite.yaml", who="bob"
    )
    assert made.case_id == "case-9" and made.cases == 9
    case = json.loads((tmp_path / "suite.jsonl").read_text().splitlines()[-1])
    assert case["input"] == "message 20 #fraud" and case["expected"] == "fraud"
    meta = case["metadata"]
    assert meta["review_id"] == marked.review.review_id and meta["reviewer"] == "bob"
    assert meta["from_run"] == "run-020" and meta["output"] == "complaint"
    with store.read() as conn:
        kinds = [e.kind for e in AuditRepo(conn).events(limit=2)]
    assert kinds == ["suite.changed", "review.case_added"]
    log = review_log(store, "router")
    assert log.reviews[0].case_id == "case-9" and log.stats.cases == 1
    with pytest.raises(RefusedError, match="already case case-9"):
        review_to_case(store, "run-020", reviewer="bob", who="bob")
    with pytest.raises(NotFoundError, match="carol has not reviewed run run-020"):
        review_to_case(store, "run-020", reviewer="carol", who="carol")


def test_without_a_file_the_case_grows_the_stored_suite_and_no_file(
    store: Store, loaded: Project, tmp_path: Path
) -> None:
    before = (tmp_path / "suite.jsonl").read_text()
    (tmp_path / "suite.yaml").unlink()  # the file a suite was registered from is never read
    mark_run(store, "run-020", "bad", expected="fraud", who="bob")
    with pytest.raises(SuiteError):  # a failed attempt leaves the review free for the next
        review_to_case(
            store, "run-020", reviewer="bob", suite_path=tmp_path / "gone.yaml", who="bob"
        )
    made = review_to_case(store, "run-020", reviewer="bob", who="bob")
    assert (made.case_id, made.cases, made.cases_file) == ("case-9", 9, None)
    assert (tmp_path / "suite.jsonl").read_text() == before
    line = json.loads(made.appended or "")
    assert line["id"] == "case-9" and line["metadata"]["reviewer"] == "bob"
    with store.read() as conn:
        assert SuiteRepo(conn).current_id("router") == made.suite_id
    inline = tmp_path / "inline.yaml"
    inline.write_text("suite: s\nworkflow: router\ncases: []\nscorers: [{type: label_accuracy}]\n")
    with pytest.raises(SuiteError):
        check_suite_file(inline)


def test_the_log_numbers(store: Store, loaded: Project) -> None:
    mark_run(store, "run-000", "bad", who="bob")
    mark_run(store, "run-007", "good", who="bob")
    mark_run(store, "run-001", "bad", expected="fraud", who="bob")  # queued or not
    stats = review_log(store, "router", rules=QueueRules(sample_share=0.0)).stats
    queued = len({i for i in range(60) if i % 10 == 0 or i % 7 == 0 or i % 9 == 0})
    assert (stats.queued, stats.reviewed, stats.reviews) == (queued, 2, 3)
    assert stats.bad == 2 and stats.corrected == 1
    assert stats.edited == len([i for i in range(60) if i % 7 == 0]) and stats.runs == 60


def test_two_marks_at_once_by_one_reviewer_store_one_review(store: Store, loaded: Project) -> None:
    errors: list[BaseException] = []

    def mark(verdict: str) -> None:
        try:
            mark_run(store, "run-030", verdict, who="bob")
        except BaseException as exc:  # collected: the test asserts on them
            errors.append(exc)

    threads = [threading.Thread(target=mark, args=(v,)) for v in ("good", "bad")]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    reviews = review_log(store, "router").reviews
    assert len(reviews) == 1
    with store.read() as conn:
        kinds = sorted(e.kind for e in AuditRepo(conn).events(limit=2))
    assert kinds == ["review.marked", "review.updated"]


def test_the_memo_and_the_runbook_quote_the_review_numbers(store: Store, loaded: Project) -> None:
    from releasegate.monitor.memo import build_memo, parse_week
    from releasegate.monitor.runbook import build_runbook
    from releasegate.release.review_queue import review_numbers
    from releasegate.reports import memo as memo_report
    from releasegate.reports import runbook as runbook_report

    mark_run(store, "run-000", "bad", expected="fraud", who="bob")
    mark_run(store, "run-007", "good", who="bob")
    week = NOW.date().isoformat()
    memo = build_memo(store, "router", week, embeddings=False)
    production = next(e for e in memo["environments"] if e["env"] == "production")
    _, start, end = parse_week(week)
    expected = review_numbers(store, "router", "production", start, end).as_dict()
    assert production["review"] == expected
    assert "### Human review" in memo_report.render_markdown(memo)
    assert "Review coverage" in memo_report.render_markdown(memo)
    assert "Human review" in memo_report.render_html(memo)

    rb = build_runbook(store, "router")
    if rb.main_env == "production":
        assert rb.review is not None and rb.review.reviews == 2 and rb.review.bad == 1
        assert rb.as_dict()["review"]["bad_share"] == 0.5
        assert "Human review over four weeks: review coverage" in runbook_report.render_markdown(rb)


def test_a_run_is_not_made_a_case_of_another_workflows_suite(
    store: Store, loaded: Project, tmp_path: Path
) -> None:
    """A run of router made a case of billing's suite would gate billing on router's input."""
    other = tmp_path / "billing"
    other.mkdir()
    billing = Project(root=other)
    for made in (billing.workflow("v1"), billing.suite(n=8)):
        made.write_text(made.read_text().replace("workflow: router", "workflow: billing"))
    register(store, other / "v1.yaml", who="alice")
    before = (other / "suite.jsonl").read_text()
    mark_run(store, "run-020", "bad", expected="fraud", who="bob")
    with pytest.raises(InputError, match="run run-020 is of workflow router, and the suite"):
        review_to_case(store, "run-020", reviewer="bob", suite_path=other / "suite.yaml", who="bob")
    assert (other / "suite.jsonl").read_text() == before
    assert review_log(store, "router").stats.cases == 0
    made = review_to_case(store, "run-020", reviewer="bob", who="bob")  # still free
    assert made.cases == 9
