"""The runtime SDK under load: sustained runs/s into SQLite from 4 threads, against the
physical limit of this machine, and the request path.

``python benchmarks/bench_sdk.py [--quick] [--runs N] [--total N]`` prints one table, each
figure the median of ``--runs`` repetitions (default 5, 3 with --quick), every repetition
in a fresh temp project and store:

- physical limit: a raw ``executemany`` of the very rows the SDK stores (``store.runs.encode`` of
  the same records, built before the clock starts) into the same ``runs`` table, one
  transaction per batch of ``batch_size``, nothing else: what SQLite takes on this machine.
- sustained: 4 application threads each run ``with client.run(version, input=...) as r:``
  with realistic fields (a banking77 query as input, its intent as output and label,
  token counts, a model name priced as it lands) as fast as they can, ``on_overflow=
  "block"`` so nothing is spilled or dropped; the clock runs from the first run to the
  end of ``flush()``, and every run must be stored. The ratio column of the second table
  is sustained / physical limit.
- request path: the same block in one thread with the writer idle (it wakes only at
  ``flush()``), µs per run; and the writer alone: ``flush()`` of those queued runs.

The CPU figures (``time.process_time`` of the whole process over the same trial) say
what the same work costs with a core to itself: the GIL serialises the application's
threads and the writer, so 10^6 / (CPU µs per run) is the rate one free core sustains.
Speed lives here, never in test asserts. Other work on the machine inflates every wall
figure alike: read the ratios and the CPU figures.
"""

from __future__ import annotations

import argparse
import csv
import gc
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_loop import ENV, WORKFLOW, Figure, load, machine, markdown, project, ship, table
from releasegate import Client
from releasegate.domain.runs import parse_batch
from releasegate.providers import prices
from releasegate.sdk.client import next_run_id
from releasegate.store.engine import Store
from releasegate.store.runs import RunRepo, encode

THREADS = 4
BATCH = 5000
TARGET_RUNS_S = 50_000.0
TARGET_REQUEST_US = 20.0
BANKING77 = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "banking77" / "train.csv"


def queries() -> list[tuple[str, str]]:
    """(query, intent) pairs: banking77 where it is shipped beside the project, else made up."""
    if BANKING77.is_file():
        with BANKING77.open(newline="") as f:
            rows = [(r[0], r[1]) for r in csv.reader(f)][1:]
        if rows:
            return rows
    return [
        (f"customer message number {i} about card {i % 77}", f"intent_{i % 77}")
        for i in range(5000)
    ]


QUERIES = queries()


def record_runs(client: Client, version: Any, start: int, n: int) -> None:
    """What an application does per request, ``n`` times (the code the figures time)."""
    pairs = QUERIES
    k = len(pairs)
    for i in range(start, start + n):
        query, intent = pairs[i % k]
        with client.run(version, input=query) as r:
            r.output = intent
            r.label = intent
            r.tokens_in, r.tokens_out = 40 + i % 50, 3
            r.model = "gpt-4o-mini"


def sustained(store: Store, total: int) -> tuple[float, float, list[dict[str, Any]]]:
    """runs/s from the first run of 4 threads to the end of flush(), the CPU µs per run of
    the whole process (all threads: the request path and the writer), and records like
    those runs, for the physical limit."""
    client = Client(
        store=store, on_overflow="block", batch_size=BATCH, max_queue=4 * BATCH, flush_every=0.2
    )
    version = client.resolve(WORKFLOW, env=ENV)
    per = total // THREADS
    go = threading.Barrier(THREADS + 1)

    def app(t: int) -> None:
        go.wait()
        record_runs(client, version, t * per, per)

    workers = [threading.Thread(target=app, args=(t,)) for t in range(THREADS)]
    for w in workers:
        w.start()
    gc.collect()
    go.wait()
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    for w in workers:
        w.join()
    client.flush(timeout=3600)
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    stats = client.stats
    assert stats.stored == per * THREADS and not (stats.spilled or stats.dropped), stats
    client.close()
    with store.read() as conn:
        assert RunRepo(conn).count() == per * THREADS
    sample = [_as_record(version, i) for i in range(per * THREADS)]
    return per * THREADS / elapsed, cpu / (per * THREADS) * 1e6, sample


def _as_record(version: Any, i: int) -> dict[str, Any]:
    query, intent = QUERIES[i % len(QUERIES)]
    now = time.time()
    return {
        "run_id": next_run_id(),  # the SDK's own ids: where they land in the index matters
        "workflow": version.workflow,
        "version_id": version.version_id,
        "env": version.env,
        "started_at": now,
        "ended_at": now,
        "latency_ms": 0.01,
        "tokens_in": 40 + i % 50,
        "tokens_out": 3,
        "cost_usd": None,
        "model": "gpt-4o-mini",
        "status": "ok",
        "failure_reason": None,
        "retries": 0,
        "escalated": False,
        "edited": False,
        "feedback": None,
        "input": query,
        "output": intent,
        "label": intent,
        "attributes": None,
    }


def physical_limit(store: Store, records: list[dict[str, Any]]) -> tuple[float, float]:
    """Raw executemany of the same rows, one transaction per batch, rows built beforehand:
    rows/s, and CPU µs per row."""
    parsed = parse_batch(records, now=datetime.now(UTC), source="sdk")
    price = prices.run_pricer()
    received = time.time()
    rows = [encode(r, received, price) for r in parsed.accepted]
    batches = [rows[k : k + BATCH] for k in range(0, len(rows), BATCH)]
    gc.collect()
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    for batch in batches:
        with store.write() as conn:
            RunRepo(conn).insert_many(batch)
    cpu = time.process_time() - cpu0
    return len(rows) / (time.perf_counter() - t0), cpu / len(rows) * 1e6


def request_path(store: Store, n: int) -> tuple[float, float, float]:
    """µs per run with the writer idle (wall, CPU), then runs/s of the flush storing them."""
    client = Client(store=store, flush_every=3600, batch_size=n + 1, max_queue=n + 1)
    version = client.resolve(WORKFLOW, env=ENV)
    record_runs(client, version, 0, 10)
    client.flush()
    gc.collect()
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    record_runs(client, version, 10, n)
    t1 = time.perf_counter()
    cpu = time.process_time() - cpu0
    client.flush(timeout=3600)
    t2 = time.perf_counter()
    assert client.stats.stored == n + 10, client.stats
    client.close()
    return (t1 - t0) / n * 1e6, cpu / n * 1e6, n / (t2 - t1)


def main() -> None:
    parser = argparse.ArgumentParser(description="The SDK's sustained write rate and request path.")
    parser.add_argument("--quick", action="store_true", help="3 runs per figure instead of 5")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--total", type=int, default=200_000, help="runs per sustained trial")
    args = parser.parse_args()
    runs = args.runs or (3 if args.quick else 5)
    os.environ.setdefault("RELEASEGATE_ACTOR", "bench")
    load_before = load()
    started = time.perf_counter()
    limit, rate, request, flush = [], [], [], []
    cpu_sdk, cpu_raw, request_cpu = [], [], []
    for _ in range(runs):
        with project() as (root, store):
            ship(root, store)
            r, cpu, records = sustained(store, args.total)
            rate.append(r)
            cpu_sdk.append(cpu)
        with project() as (root, store):
            ship(root, store)
            raw, cpu = physical_limit(store, records)
            limit.append(raw)
            cpu_raw.append(cpu)
        with project() as (root, store):
            ship(root, store)
            us, us_cpu, f = request_path(store, 100_000)
            request.append(us)
            request_cpu.append(us_cpu)
            flush.append(f)
    figures = [
        Figure("physical limit: raw executemany of the same rows", "runs/s", tuple(limit)),
        Figure(
            f"SDK sustained, {THREADS} threads, realistic fields (block: nothing dropped)",
            "runs/s",
            tuple(rate),
            target=TARGET_RUNS_S,
            higher_is_better=True,
        ),
        Figure(
            "SDK request path: with client.run(...) as r: (5 fields set)",
            "µs",
            tuple(request),
            target=TARGET_REQUEST_US,
        ),
        Figure("  CPU of the same", "µs", tuple(request_cpu)),
        Figure("  the writer alone: flush() of 100,000 queued runs", "runs/s", tuple(flush)),
        Figure("CPU per run, sustained (all threads: request path + writer)", "µs", tuple(cpu_sdk)),
        Figure("  so on one free core (10^6 / CPU µs per run)", "runs/s",
               tuple(1e6 / c for c in cpu_sdk), target=TARGET_RUNS_S, higher_is_better=True),
        Figure("CPU per row of the physical limit (executemany + commit)", "µs", tuple(cpu_raw)),
    ]  # fmt: skip
    print(machine())
    print(f"{load_before} before, {load()} after (other work on the machine inflates wall times)")
    print(f"median of {runs} runs per figure, {args.total:,} runs per sustained trial\n")
    print(table(figures))
    ratios = [(f"{s / p:.2f}", f"{s:,.0f} / {p:,.0f}") for s, p in zip(rate, limit, strict=True)]
    print()
    print(
        markdown(
            ("sustained / physical limit, per trial", "runs/s"),
            [(ratio, detail) for ratio, detail in ratios],
        )
    )
    print(f"\n({time.perf_counter() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
