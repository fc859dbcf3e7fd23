"""The runs per day, on both databases: every insert path counts what landed (and only
that: a re-sent run is not counted twice, a shadow run never), an import taken back is
uncounted, and two writers at once both count."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from releasegate.domain.program import DayTotals
from releasegate.domain.runs import RunRecord, parse_batch
from releasegate.store.engine import Store
from releasegate.store.run_days import DayRepo
from releasegate.store.runs import RunRepo

DAY = datetime(2026, 11, 30, tzinfo=UTC)


def runs(n: int, *, prefix: str = "run", day: datetime = DAY, **change: Any) -> list[RunRecord]:
    items = [
        {
            "run_id": f"{prefix}-{i}",
            "workflow": "router",
            "version_id": "a" * 64,
            "env": "production",
            "started_at": (day + timedelta(minutes=i)).timestamp(),
            "latency_ms": 100.0,
            "status": "error" if i % 4 == 0 else "ok",
            **({"failure_reason": "timeout"} if i % 4 == 0 else {}),
            "escalated": i % 5 == 0,
            "edited": i % 10 == 0,
            **({"cost_usd": 0.01} if i % 2 else {}),
            **change,
        }
        for i in range(n)
    ]
    parsed = parse_batch(items, now=day + timedelta(days=1), source="sdk")
    assert not parsed.rejected
    return list(parsed.accepted)


def days(store: Store) -> list[DayTotals]:
    with store.read() as conn:
        return DayRepo(conn).totals(DAY.date() - timedelta(days=3), DAY.date() + timedelta(days=3))


def test_inserted_runs_are_counted_per_day_once(store: Store) -> None:
    with store.write() as conn:
        RunRepo(conn).add(runs(40), received_at=1.0)
        RunRepo(conn).add(runs(20, prefix="next", day=DAY + timedelta(days=1)), received_at=1.0)
    with store.write() as conn:  # a re-send lands nothing and counts nothing
        assert RunRepo(conn).add(runs(40), received_at=2.0).landed == 0
        RunRepo(conn).add(runs(5, prefix="shadow", arm="shadow"), received_at=2.0)
    first, second = days(store)
    assert (first.day, first.env, first.runs, first.errors) == (DAY.date(), "production", 40, 10)
    assert (first.escalated, first.edited, first.costed) == (8, 4, 20)
    assert abs(first.cost_usd - 0.2) < 1e-9 and first.latency_ms == 4000.0
    assert (second.day, second.runs) == (DAY.date() + timedelta(days=1), 20)


def test_an_import_taken_back_is_uncounted(store: Store) -> None:
    with store.write() as conn:
        RunRepo(conn).add(runs(10), received_at=1.0)
        RunRepo(conn).add(runs(30, prefix="bad"), received_at=2.0)
        RunRepo(conn).add(runs(5, prefix="gone", day=DAY + timedelta(days=2)), received_at=2.0)
    assert [d.runs for d in days(store)] == [40, 5]
    with store.write() as conn:
        assert RunRepo(conn).unland(2.0) == 35
    assert [(d.day, d.runs, d.errors) for d in days(store)] == [(DAY.date(), 10, 3)]


def test_two_writers_at_once_both_count(store: Store) -> None:
    def write(prefix: str) -> None:
        for k in range(5):
            with store.write() as conn:
                RunRepo(conn).add(runs(50, prefix=f"{prefix}{k}"), received_at=3.0)

    threads = [threading.Thread(target=write, args=(p,)) for p in ("a", "b")]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    with store.read() as conn:
        assert RunRepo(conn).count() == 500
    assert [d.runs for d in days(store)] == [500]


def test_counting_an_insert_reads_only_the_runs_it_added(store: Store) -> None:
    """On SQLite the upkeep's GROUP BY could walk the whole (workflow, env, started_at)
    index, every stored run on every insert; it reads the new rows by their seq range."""
    if store.engine.dialect.name != "sqlite":
        return  # PostgreSQL's planner reads the seq range with the xmin filter
    from releasegate.store.rows import driver

    statements: list[str] = []
    with store.write() as conn:
        RunRepo(conn).add(runs(3), received_at=1.0)
        raw, _ = driver(conn)
        raw.set_trace_callback(statements.append)
        try:
            RunRepo(conn).add(runs(3, prefix="more"), received_at=2.0)
        finally:
            raw.set_trace_callback(None)
        [upkeep] = [s for s in statements if s.startswith("INSERT INTO run_days")]
        plan = " ".join(str(row[3]) for row in raw.execute("EXPLAIN QUERY PLAN " + upkeep))
    assert "INTEGER PRIMARY KEY (rowid>?)" in plan, plan
    assert "ix_runs_window" not in plan, plan
