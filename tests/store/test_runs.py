"""Runs in the store, on both databases: records go in as ``RunRecord``s, a re-sent run
with other content is named, and a window reads each run's facts (error, escalated,
edited, feedback) by the very rule ``domain.runs`` judges a record by."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from releasegate.domain.runs import (
    HAS_FEEDBACK,
    IS_ERROR,
    IS_NEGATIVE_FEEDBACK,
    SIGNAL_FACTS,
    RunRecord,
    parse_batch,
)
from releasegate.store.engine import Store
from releasegate.store.rows import fetch
from releasegate.store.runs import Added, RunRepo

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


def records(*changes: dict[str, Any]) -> list[RunRecord]:
    base = NOW.timestamp() - 3600
    items = [
        {
            "run_id": f"run-{i}",
            "workflow": "router",
            "version_id": "a" * 64,
            "env": "staging",
            "started_at": base + i,
            "latency_ms": 100.0 + i,
            "status": "ok",
            "input": f"message {i}",
            "output": "fraud",
            **change,
        }
        for i, change in enumerate(changes)
    ]
    parsed = parse_batch(items, now=NOW, source="sdk")
    assert not parsed.rejected
    return list(parsed.accepted)


def test_a_window_reads_each_fact_by_the_domain_rule(store: Store) -> None:
    runs = records(
        {},
        {"status": "error", "failure_reason": "timeout"},
        {"escalated": True},
        {"edited": True},
        {"feedback": -0.5},
        {"feedback": 0.0},
        {"feedback": 1.0, "output": None},
    )
    with store.write() as conn:
        assert RunRepo(conn).add(runs, received_at=NOW.timestamp()) == Added(len(runs), [])
    with store.read() as conn:
        window = RunRepo(conn).signal_window(
            "router", "staging", 0, NOW.timestamp(), extra=("run_id",)
        )
    by_id = {r.run_id: r for r in runs}
    ids = window.column("run_id").tolist()
    assert ids == [r.run_id for r in runs]  # oldest first
    for fact in SIGNAL_FACTS:
        expected = [fact.holds(getattr(by_id[i], fact.field)) for i in ids]
        assert window.has(fact).tolist() == expected, fact.name
    assert window.has(IS_ERROR).tolist() == [False, True, False, False, False, False, False]
    assert window.has(HAS_FEEDBACK).tolist() == [False] * 4 + [True] * 3
    assert window.has(IS_NEGATIVE_FEEDBACK).tolist() == [False] * 4 + [True, False, False]
    chars = window.column("output_chars").tolist()
    assert chars[:6] == [5.0] * 6 and math.isnan(chars[6])  # no output: missing, not 0
    assert window.between(1, 3).column("run_id").tolist() == ["run-1", "run-2"]


def test_a_resent_run_lands_once_and_a_changed_one_is_named(store: Store) -> None:
    first = records({}, {})
    with store.write() as conn:
        assert RunRepo(conn).add(first, received_at=1.0) == Added(2, [])
    changed = records({}, {"latency_ms": 999.0})
    with store.write() as conn:
        assert RunRepo(conn).add(first, received_at=2.0) == Added(0, [])
        assert RunRepo(conn).add(changed, received_at=2.0) == Added(0, ["run-1"])
        assert RunRepo(conn).count() == 2


def test_a_large_batch_with_some_runs_already_stored_lands_the_rest_each_as_sent(
    store: Store,
) -> None:
    # more runs than one multi-row statement takes, and not a multiple of it: the whole
    # statements and the tail each meet runs already stored
    k = RunRepo.ROWS_PER_INSERT
    runs = records(
        *({"escalated": i % 3 == 0, "feedback": None if i % 2 else -0.5} for i in range(2 * k + 5))
    )
    stored_before = [runs[1], runs[k + 2], runs[-1]]
    with store.write() as conn:
        assert RunRepo(conn).add(stored_before, received_at=1.0) == Added(3, [])
    with store.write() as conn:
        assert RunRepo(conn).add(runs, received_at=2.0) == Added(len(runs) - 3, [])
    with store.read() as conn:
        repo = RunRepo(conn)
        assert repo.count() == len(runs)
        for run in runs:
            row = repo.get(run.run_id)
            assert row is not None
            assert (row["input"], row["escalated"], row["feedback"], row["latency_ms"]) == (
                run.input,
                run.escalated,
                run.feedback,
                run.latency_ms,
            )
            assert row["received_at"] == (1.0 if run in stored_before else 2.0)


def test_batches_in_one_transaction_land_in_order_each_run_once(store: Store) -> None:
    runs = records(*({"cost_usd": 0.5, "label": "fraud"} if i % 3 else {} for i in range(300)))
    runs.reverse()  # not the order run_id or started_at sort in
    with store.write() as conn:  # as a streamed import does: chunks in one transaction
        assert RunRepo(conn).add(runs[:200], received_at=1.0).landed == 200
        assert RunRepo(conn).add(runs[100:], received_at=1.0).landed == 100
        assert RunRepo(conn).add([], received_at=1.0).landed == 0
    with store.read() as conn:
        stored = RunRepo(conn)
        assert stored.count() == 300
        in_order = fetch(conn, "SELECT run_id FROM runs ORDER BY seq", [])
        assert [row[0] for row in in_order] == [r.run_id for r in runs]
        plain = stored.get("run-0")
        priced = stored.get("run-1")
    assert plain is not None and priced is not None
    assert (plain["cost_usd"], plain["label"], plain["model"], plain["feedback"]) == (None,) * 4
    assert (plain["escalated"], plain["edited"], plain["output_chars"]) == (False, False, 5)
    assert (priced["cost_usd"], priced["label"]) == (0.5, "fraud")
