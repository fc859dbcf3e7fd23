"""The human review queue on a store of 1,000 versions and 1,000,000 runs.

``python benchmarks/bench_queue.py [--requests R] [--rebuild]``

The store is ``bench_web.py``'s (the demo grown by 1,000 versions and 1,000,000
SYNTHETIC runs over 13 weeks: about 65,000 production runs a week, 4% escalated, 7%
edited; built once under ``~/.cache/releasegate-bench/``), copied to a temp dir. Timed,
median and p95 wall over ``--requests`` calls after one warm-up, and the CPU this process
spent per call (the machine is shared: CPU is the steadier figure):

- the services in-process: ``review_queue`` over the last 7 days of production (a page
  of 50), the same over 30 days, ``review_log`` (7 days), and ``mark_run`` (a write and
  an audit event each);
- over loopback (uvicorn in this process, httpx): ``GET .../queue`` and the dashboard's
  ``/web/workflows/NAME/queue`` page.

The floor is reading the period's runs once (the sample's draw needs every run of the
period, and the rules read each run's flags): the table prints that read alone beside
the queue.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_web import WF, built  # noqa: E402
from tests.server.conftest import run_server  # noqa: E402

from releasegate.domain.review_queue import parse_period  # noqa: E402
from releasegate.release.review_queue import mark_run, review_log, review_queue  # noqa: E402
from releasegate.release.store_access import open_store  # noqa: E402
from releasegate.release.tokens import create_token  # noqa: E402
from releasegate.server.app import Settings, create_app  # noqa: E402
from releasegate.store.reviews import ReviewRepo  # noqa: E402


def timed(fn: Callable[[], Any], n: int) -> tuple[float, float, float]:
    """(median ms, p95 ms, CPU ms per call) of ``n`` calls after one warm-up."""
    fn()
    times = []
    cpu0 = time.process_time()
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    cpu = (time.process_time() - cpu0) * 1000 / n
    times.sort()
    return statistics.median(times), times[min(n - 1, int(0.95 * n))], cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--rebuild", action="store_true", help="build the cached store again")
    args = parser.parse_args()
    cached = built(1000, 1_000_000, args.rebuild)
    n = args.requests
    rows: list[tuple[str, float, float, float, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "demo"
        shutil.copytree(cached, project)
        os.chdir(project)
        store = open_store(project, create=False)
        try:
            q = review_queue(store, WF, "production")
            week = parse_period("7d", q.period.end)
            start, end = week.start.timestamp(), week.end.timestamp()
            note = f"{q.runs:,} runs, {q.queued:,} queued"

            def read_only() -> None:
                with store.read() as conn:
                    ReviewRepo(conn).period_runs(WF, "production", start, end)

            rows.append(("read the week's runs (floor)", *timed(read_only, n), note))
            rows.append(
                (
                    "review_queue 7d",
                    *timed(lambda: review_queue(store, WF, "production"), n),
                    note,
                )
            )
            q30 = review_queue(store, WF, "production", period="30d")
            rows.append(
                (
                    "review_queue 30d",
                    *timed(lambda: review_queue(store, WF, "production", period="30d"), n),
                    f"{q30.runs:,} runs, {q30.queued:,} queued",
                )
            )
            rows.append(
                ("review_log 7d", *timed(lambda: review_log(store, WF, "production"), n), "")
            )
            items = iter(review_queue(store, WF, "production", limit=500).items)

            def mark() -> None:
                mark_run(store, next(items).run_id, "bad", note="bench", who="bench")

            rows.append(("mark_run (a write + audit)", *timed(mark, min(n, 100)), ""))
            token = create_token(store, f"bench-op-{os.getpid()}", "operator", who="bench").secret
            for url in run_server(create_app(store, Settings())):
                headers = {"Authorization": f"Bearer {token}"}
                with httpx.Client(base_url=url, timeout=120, headers=headers) as c:
                    api = f"/v1/workflows/{WF}/environments/production/queue"
                    rows.append(("GET .../queue (API)", *timed(partial(c.get, api), n), ""))
                    c.post("/web/login", data={"token": token})
                    web = f"/web/workflows/{WF}/queue"
                    size = len(c.get(web).content)
                    rows.append(
                        ("web queue page", *timed(partial(c.get, web), n), f"{size // 1024} KiB")
                    )
        finally:
            store.close()
    print(f"{'what':30s} {'median ms':>10s} {'p95 ms':>8s} {'CPU ms':>8s}  note")
    for label, median, p95, cpu, note in rows:
        print(f"{label:30s} {median:10.1f} {p95:8.1f} {cpu:8.1f}  {note}")
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
