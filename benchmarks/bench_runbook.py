"""``report runbook`` and ``report handover``: how long the operator's page takes.

``python benchmarks/bench_runbook.py [--quick] [--runs N] [--extra N]`` builds the demo's
store (``releasegate demo``, in a temp dir: its 1,400 production runs, gate decisions and
alerts), then prints one table (figure | median | target | ratio | status):

1. in-process: ``build_runbook`` + Markdown, ``build_runbook`` + HTML, the handover
   checklist alone; median of ``--runs`` calls each, after one warm-up call;
2. a fresh process per call (``python -m releasegate report runbook ...``, and
   ``report handover``): what an operator or a cron job waits for, imports included;
   median of ``--runs``;
3. the same two after ``--extra`` SYNTHETIC production runs (default 100,000, spread over
   the last 28 days, the demo's version) are added to the store: the page reads one
   four-week window of runs, so this is where it grows.

Target: <= 1 s for ``report runbook``; ratio = median / target (<= 1.0 is on target).
Speed lives here, never in test asserts; other work on the machine inflates the figures.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench_loop import store_run_rows
from releasegate.cli.demo import run_demo
from releasegate.monitor.runbook import build_runbook
from releasegate.release.handover import check
from releasegate.release.store_access import open_store
from releasegate.reports.runbook import render_html, render_markdown
from releasegate.store.runs import RUN_COLUMNS

WF = "support-triage"
TARGET = 1.0
ROWS: list[tuple[str, float, float | None]] = []


def median_of(runs: int, fn: Callable[[], Any]) -> float:
    fn()  # warm-up: the first call imports and fills caches
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cold(project: Path, runs: int, *args: str) -> tuple[float, float]:
    """(wall, CPU) seconds of a fresh ``releasegate`` process, medians of ``runs``: the CPU
    (user + system of the child) is what the machine's other load inflates least."""
    env = {**os.environ, "RELEASEGATE_ACTOR": "bench"}
    env.pop("RELEASEGATE_DATABASE_URL", None)
    times, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "releasegate", *args],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
        )
        times.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        assert done.returncode in (0, 1), done.stderr
    return statistics.median(times), statistics.median(cpus)


def measure(project: Path, runs: int, label: str) -> None:
    store = open_store(project, create=False)
    try:
        ROWS.append(
            (
                f"runbook, in-process, Markdown ({label})",
                median_of(runs, lambda: render_markdown(build_runbook(store, WF))),
                TARGET,
            )
        )
        ROWS.append(
            (
                f"runbook, in-process, HTML ({label})",
                median_of(runs, lambda: render_html(build_runbook(store, WF))),
                TARGET,
            )
        )
        ROWS.append(
            (
                f"handover checklist, in-process ({label})",
                median_of(runs, lambda: check(store, WF)),
                None,
            )
        )
    finally:
        store.close()
    for what, target in (("runbook", TARGET), ("handover", None)):
        wall, cpu = cold(project, runs, "report", what, WF)
        ROWS.append((f"report {what}, fresh process, wall ({label})", wall, target))
        ROWS.append((f"report {what}, fresh process, CPU ({label})", cpu, target))


def add_runs(project: Path, n: int) -> None:
    """``n`` synthetic production runs of the running version over the last 28 days."""
    store = open_store(project, create=False)
    try:
        with store.read() as conn:
            from releasegate.store.environments import EnvironmentRepo

            current = EnvironmentRepo(conn).current(WF, "production")
            assert current is not None
        rng = np.random.default_rng(5)
        now = time.time()
        started = np.sort(now - rng.uniform(0, 28 * 86400, n))
        failed = rng.random(n) < 0.02
        latency = rng.lognormal(3.2, 0.3, n)
        blank = dict.fromkeys(RUN_COLUMNS, "")
        blank.update(
            tokens_in=10, tokens_out=2, cost_usd=0.0002, retries=0, escalated=0, edited=0,
            feedback=float("nan"), output_chars=-1, input=None, output=None, source="sdk",
            received_at=now, workflow=WF, env="production", version_id=current.version_id,
        )  # fmt: skip
        rows = []
        for i in range(n):
            row = dict(blank)
            row.update(
                run_id=f"bench-{i:08d}",
                started_at=float(started[i]),
                ended_at=float(started[i]) + latency[i] / 1000,
                latency_ms=float(latency[i]),
                status="error" if failed[i] else "ok",
                failure_reason="upstream timeout" if failed[i] else "",
            )
            rows.append(tuple(row[c] for c in RUN_COLUMNS))
        store_run_rows(store, rows)
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="median of 3, 20,000 extra runs")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--extra", type=int, default=100_000)
    args = parser.parse_args()
    runs, extra = (3, 20_000) if args.quick else (args.runs, args.extra)
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "demo"
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            run_demo(project)
        print(f"demo store built in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        measure(project, runs, "demo, 1,400 runs")
        add_runs(project, extra)
        measure(project, runs, f"demo + {extra:,} runs")
    print(f"{'figure':<58} {'median':>9} {'target':>7} {'ratio':>6}  status")
    for name, value, target in ROWS:
        if target is None:
            print(f"{name:<58} {value:>8.3f}s {'-':>7} {'-':>6}  info")
        else:
            ratio = value / target
            status = "ok" if ratio <= 1.0 else "MISS"
            print(f"{name:<58} {value:>8.3f}s {target:>6.1f}s {ratio:>6.2f}  {status}")


if __name__ == "__main__":
    main()
