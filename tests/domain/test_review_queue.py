"""The review queue's rules without a database: who is queued and why, the seeded sample,
the order and pages, periods, and the review log's numbers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from releasegate.domain.review_queue import (
    Period,
    Queue,
    QueueRules,
    Review,
    RunSummary,
    build_queue,
    choose_sample,
    iso_week,
    parse_period,
    parse_verdict,
    review_stats,
)
from releasegate.errors import InputError

NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)
WEEK = parse_period("2026-W49", NOW)


def run(
    i: int,
    *,
    escalated: bool = False,
    edited: bool = False,
    feedback: float | None = None,
    hours_ago: float = 1.0,
) -> RunSummary:
    at = (NOW - timedelta(hours=hours_ago)).timestamp()
    return RunSummary(f"r{i:04d}", at, "v" * 64, "ok", escalated, edited, feedback, None)


def queue(flagged: Sequence[RunSummary], sampled: Sequence[RunSummary] = (), **kw: object) -> Queue:
    """The queue of ``flagged`` and ``sampled`` runs among 1,000 quiet ones."""
    quiet = [run(5000 + i, hours_ago=100) for i in range(1000 - len(flagged) - len(sampled))]
    args: dict[str, object] = {
        "workflow": "router",
        "env": "production",
        "period": WEEK,
        "rules": QueueRules(),
        "runs": [*flagged, *sampled, *quiet],
        "sample_ids": {r.run_id for r in sampled},
        "reviewed": set(),
        **kw,
    }
    return build_queue(**args)  # type: ignore[arg-type]


def test_each_item_says_why_and_the_order_is_escalated_then_feedback_then_edited() -> None:
    q = queue(
        [
            run(1, edited=True, hours_ago=1),
            run(2, escalated=True, hours_ago=5),
            run(3, feedback=-0.5, edited=True, hours_ago=2),
            run(4, escalated=True, hours_ago=3),
            run(5, feedback=0.5),  # feedback above the threshold: no reason
        ],
        [run(6, hours_ago=0.5)],
        sample_ids={"r0006", "r0001"},  # r0001 is flagged and sampled
    )
    assert [(i.run_id, i.reasons) for i in q.items] == [
        ("r0004", ("escalated",)),  # newest escalation first
        ("r0002", ("escalated",)),
        ("r0003", ("bad_feedback", "edited")),
        ("r0001", ("edited", "sample")),
        ("r0006", ("sample",)),
    ]
    assert q.queued == 5 and q.open == 5 and q.sampled == 2
    assert {c.reason: c.runs for c in q.by_reason} == {
        "escalated": 2,
        "bad_feedback": 1,
        "edited": 2,
        "sample": 2,
    }
    assert "2 of 1,000 runs = 0.20% of traffic" in q.sample_note
    assert q.edited == 2  # r0001, r0003: the edit rate's numerator


def test_reviewed_runs_leave_the_queue_but_count_in_coverage() -> None:
    q = queue([run(1, escalated=True), run(2, edited=True)], reviewed={"r0001", "elsewhere"})
    assert [i.run_id for i in q.items] == ["r0002"]
    assert (q.queued, q.reviewed, q.open) == (2, 1, 1)
    assert q.as_dict()["coverage"] == 0.5


def test_pages_follow_the_cursor_even_when_an_item_before_it_was_reviewed() -> None:
    flagged = [run(i, escalated=True, hours_ago=i) for i in range(1, 8)]
    first = queue(flagged, limit=3)
    assert [i.run_id for i in first.items] == ["r0001", "r0002", "r0003"]
    assert first.next is not None
    # r0003 (the cursor's own run) is reviewed meanwhile: the next page still starts at r0004
    second = queue(flagged, limit=3, after=first.next, reviewed={"r0003"})
    assert [i.run_id for i in second.items] == ["r0004", "r0005", "r0006"]
    last = queue(flagged, limit=3, after=second.next)
    assert [i.run_id for i in last.items] == ["r0007"] and last.next is None


@pytest.mark.parametrize("bad", ["nope", "9:1.0:r1", "1:x:r1", "1:2.0:"])
def test_a_bad_cursor_or_page_size_is_an_input_error(bad: str) -> None:
    with pytest.raises(InputError, match="cursor") as err:
        queue([run(1, escalated=True)], after=bad)
    assert err.value.field == "after"
    with pytest.raises(InputError, match="page size"):
        queue([run(1, escalated=True)], limit=0)


def test_the_sample_is_the_same_everywhere_bounded_and_about_its_share() -> None:
    ids = [(f"run-{i}", NOW.timestamp() - i) for i in range(20_000)]
    rules = QueueRules(sample_share=0.02, sample_max=10_000)
    chosen, total = choose_sample(ids, "router", rules)
    assert total == 20_000
    assert 300 < len(chosen) < 500  # 2% of 20,000 = 400, binomial sd 20
    again, _ = choose_sample(list(reversed(ids)), "router", rules)
    assert again == chosen  # order, process and replica do not matter
    other, _ = choose_sample(ids, "router", QueueRules(sample_share=0.02, seed="other"))
    assert other != chosen
    capped, _ = choose_sample(ids, "router", QueueRules(sample_share=0.02, sample_max=5))
    assert len(capped) == 5 and capped <= chosen
    none, _ = choose_sample(ids, "router", QueueRules(sample_share=0.0))
    assert none == set()


def test_the_sample_rotates_by_week() -> None:
    """The same run ids in another week are a fresh draw."""
    rules = QueueRules(sample_share=0.1, sample_max=10_000)
    this_week = [(f"run-{i}", NOW.timestamp()) for i in range(2000)]
    next_week = [(f"run-{i}", (NOW + timedelta(days=7)).timestamp()) for i in range(2000)]
    a, _ = choose_sample(this_week, "router", rules)
    b, _ = choose_sample(next_week, "router", rules)
    assert len(a & b) < len(a) / 2


def test_periods() -> None:
    assert parse_period(None, NOW) == Period("last 7d", NOW - timedelta(days=7), NOW)
    week = parse_period("2026-w49", NOW)
    assert week.label == "2026-W49"
    assert week.start == datetime(2026, 11, 30, tzinfo=UTC)
    assert week.end - week.start == timedelta(days=7)
    assert parse_period("2026-12-02", NOW) == week
    for bad in ("yesterday", "2026-W60", "2026-13-01", "-3d"):
        with pytest.raises(InputError) as err:
            parse_period(bad, NOW)
        assert err.value.field == "--period"


def test_rules_and_verdicts_refuse_what_makes_no_sense() -> None:
    with pytest.raises(InputError, match="feedback threshold"):
        QueueRules(feedback_below=-1.0)
    with pytest.raises(InputError, match="sample share"):
        QueueRules(sample_share=1.5)
    assert parse_verdict(" Bad ") == "bad"
    with pytest.raises(InputError, match="unknown verdict 'meh'"):
        parse_verdict("meh")


def _review(run_id: str, verdict: str, minutes: int, **kw: object) -> Review:
    at = NOW + timedelta(minutes=minutes)
    args: dict[str, object] = {
        "review_id": f"{run_id}-{minutes}",
        "run_id": run_id,
        "workflow": "router",
        "env": "production",
        "version_id": "v" * 64,
        "run_started_at": NOW.timestamp(),
        "reviewer": "bob",
        "verdict": verdict,
        "expected": None,
        "note": "",
        "reasons": ("escalated",),
        "created_at": at,
        "updated_at": at,
        **kw,
    }
    return Review(**args)  # type: ignore[arg-type]


def test_review_numbers_count_a_run_once_by_its_latest_verdict() -> None:
    reviews = [
        _review("a", "bad", 1),
        _review("a", "good", 5, reviewer="carol"),  # the latest word on run a: good
        _review("b", "bad", 2, expected="card_lost", case_id="case-81"),
        _review("c", "bad", 3),  # a run outside the queue, reviewed anyway
    ]
    stats = review_stats(runs=200, edited=10, queued_ids={"a", "b", "d", "e"}, reviews=reviews)
    assert (stats.reviewed, stats.queued, stats.coverage) == (2, 4, 0.5)
    assert (stats.reviews, stats.bad, stats.bad_share) == (3, 2, 2 / 3)
    assert (stats.edit_rate, stats.corrected, stats.cases) == (0.05, 1, 1)
    assert stats.reviewers == ("bob", "carol")
    assert "review coverage 50% (2 of 4 queued runs reviewed)" in stats.sentence()
    empty = review_stats(runs=0, edited=0, queued_ids=set(), reviews=[])
    assert empty.coverage is None and empty.edit_rate is None and empty.bad_share is None
    assert "n/a" in empty.sentence()


@given(st.floats(min_value=946684800, max_value=4e9))
def test_the_week_of_a_run_is_its_iso_week_in_utc(at: float) -> None:
    iso = datetime.fromtimestamp(at, UTC).isocalendar()
    assert iso_week(at) == f"{iso.year}-W{iso.week:02d}"
