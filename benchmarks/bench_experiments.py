"""Experiments that expire: ``expired_experiments`` (what ``review`` lists) and ``gc``.

A synthetic store of 100 workflows x 100 versions (half of them experiments, all past a
14-day retention, 200 of them still holding 20 cached outputs each), on SQLite in a temp
dir. Prints the median of 5 listings before and after a collection, a dry run, and the
collection itself (one write transaction and one audit event per experiment).

    .venv/bin/python benchmarks/bench_experiments.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from releasegate.release.experiments import collect_expired, expired_experiments
from releasegate.store import tables as t
from releasegate.store.engine import Store
from releasegate.store.versions import VersionRecord, VersionRepo
from releasegate.store.workflows import WorkflowRepo

WORKFLOWS, VERSIONS, CASES = 100, 100, 20


def vid(w: int, v: int) -> str:
    return f"{w:03d}{v:03d}".ljust(64, "0")


def build(store: Store) -> None:
    old = datetime.now(UTC) - timedelta(days=30)
    with store.write() as conn:
        for w in range(WORKFLOWS):
            WorkflowRepo(conn).upsert(
                name=f"wf{w}",
                description="",
                stakes="low",
                owners={},
                environments=["staging", "production"],
                experiments_retention_days=14,
            )
            for v in range(VERSIONS):
                track = "experiment" if v % 2 else "release"
                VersionRepo(conn).add(
                    VersionRecord(vid(w, v), f"wf{w}", {"v": v}, "a", None, "", track, None, old)
                )
        outputs = [
            {
                "version_id": vid(w, v),
                "case_hash": str(c).ljust(64, "c"),
                "epoch": 0,
                "text": "x",
                "data_json": None,
                "latency_ms": 1.0,
                "tokens_in": 1,
                "tokens_out": 1,
                "cost_usd": 0.0,
                "error": None,
                "created_at": old,
            }
            for w in range(WORKFLOWS)
            for v in (1, 3)
            for c in range(CASES)
        ]
        conn.execute(insert(t.outputs), outputs)


def median_listing(store: Store) -> tuple[float, int]:
    times, found = [], 0
    for _ in range(5):
        start = time.perf_counter()
        found = len(expired_experiments(store))
        times.append(time.perf_counter() - start)
    return statistics.median(times), found


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp))
        build(store)
        listed, found = median_listing(store)
        print(f"expired_experiments, {WORKFLOWS * VERSIONS:,} versions: {listed:.3f} s ({found})")
        start = time.perf_counter()
        collect_expired(store, dry_run=True)
        print(f"gc --dry-run: {time.perf_counter() - start:.3f} s")
        start = time.perf_counter()
        done = collect_expired(store, who="bench")
        took = time.perf_counter() - start
        print(f"gc: {took:.3f} s for {len(done.collected)} experiments, {done.outputs:,} outputs")
        listed, found = median_listing(store)
        print(f"expired_experiments after gc: {listed:.3f} s ({found})")
        store.close()


if __name__ == "__main__":
    main()
