"""The web dashboard's pages over loopback, on a store of 1,000 versions and 1,000,000 runs.

``python benchmarks/bench_web.py [--versions N] [--runs N] [--requests R] [--rebuild]``

The store: ``releasegate demo`` in a directory (SQLite: the whole loop, a canary, a
rehearsal, ~4,500 production runs, ~100 audit events), ``--versions`` (default 1,000)
more versions of its workflow registered through the ``register`` service (each a
generation setting apart: real versions with their audit events), then ``--runs``
(default 1,000,000) SYNTHETIC production runs over the last 13 weeks inserted through
the store's bulk path (``RunRepo.insert_many`` in one transaction, as an import lands
them): 85% in production, 15% in staging, of the versions that run there, with about
2% errors, 4% escalated, 7% edited and a cost per run. It is built once and kept under
``~/.cache/releasegate-bench/`` (the build time is printed); each run of the benchmark
works on a copy (the copy is upgraded on open if the schema moved since).

Then the store is served on uvicorn on loopback in this process and every page of the
dashboard is timed (home, workflow, its runbook, the production signals, its review
queue, a version with its diffs, a gate report, the audit log with its verification; or
``--only`` the pages whose label has the text given) with httpx, logged in
with a viewer token: median and p95 wall time over ``--requests`` requests (default 20)
after one warm-up, the CPU time this process spent per request (server and client: the
server runs in a thread here; the machine is shared, so CPU is the steadier figure), and
the page size. Target: every page <= 200 ms (median). Speed lives here, never in test
asserts.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.server.conftest import run_server  # noqa: E402

from releasegate.release.register import register  # noqa: E402
from releasegate.release.store_access import open_store  # noqa: E402
from releasegate.release.tokens import create_token  # noqa: E402
from releasegate.server.app import Settings, create_app  # noqa: E402
from releasegate.store.runs import RUN_COLUMNS, RunRepo  # noqa: E402

CACHE = Path.home() / ".cache" / "releasegate-bench"
WF = "support-triage"
DAYS = 91
TARGET_MS = 200.0
"""Every page, median wall time."""


def grow(project: Path, versions: int) -> float:
    """Register ``versions`` more versions of the demo's workflow; the seconds it took."""
    base = yaml.safe_load((project / "v2.yaml").read_text())
    store = open_store(project, create=False)
    started = time.perf_counter()
    try:
        for i in range(versions):
            doc = {**base, "generation": {**(base.get("generation") or {}), "bench": i}}
            path = project / "grown.yaml"
            path.write_text(yaml.safe_dump(doc, sort_keys=False))
            register(store, path, reason=f"bench variant {i}", who="bench")
    finally:
        store.close()
    return time.perf_counter() - started


def add_runs(project: Path, n: int, batch: int = 50_000) -> float:
    """``n`` synthetic runs over the last ``DAYS`` days through the bulk insert path."""
    store = open_store(project, create=False)
    started = time.perf_counter()
    try:
        with store.read() as conn:
            from releasegate.store.environments import EnvironmentRepo

            serving = {
                env: rec.version_id
                for env in ("staging", "production")
                if (rec := EnvironmentRepo(conn).current(WF, env)) is not None
            }
        rng = np.random.default_rng(13)
        now = time.time()
        # a busier week day than week end, and a slow growth over the quarter
        ages = rng.uniform(0, DAYS * 86400, n)
        starts = now - ages
        env_is_prod = rng.random(n) < 0.85
        failed = rng.random(n) < 0.02
        escalated = rng.random(n) < 0.04
        edited = rng.random(n) < 0.07
        latency = rng.lognormal(5.5, 0.4, n)
        cost = rng.lognormal(-8.0, 0.3, n)
        chars = rng.integers(20, 400, n)
        labels = np.array(["card", "transfer", "refund", "fraud", "other"])[rng.integers(0, 5, n)]
        blank = dict.fromkeys(RUN_COLUMNS, "")
        blank.update(
            workflow=WF, tokens_in=120, tokens_out=30, retries=0, feedback=float("nan"),
            input=None, output=None, source="sdk", received_at=now,
        )  # fmt: skip
        with store.write() as conn:
            repo = RunRepo(conn)
            with repo.bulk():
                for lo in range(0, n, batch):
                    rows = []
                    for i in range(lo, min(n, lo + batch)):
                        env = "production" if env_is_prod[i] else "staging"
                        row = dict(blank)
                        row.update(
                            run_id=f"web-{i:08d}",
                            env=env,
                            version_id=serving.get(env) or serving["production"],
                            started_at=float(starts[i]),
                            ended_at=float(starts[i]) + latency[i] / 1000,
                            latency_ms=float(latency[i]),
                            cost_usd=float(cost[i]),
                            status="error" if failed[i] else "ok",
                            failure_reason="upstream timeout" if failed[i] else "",
                            escalated=int(escalated[i]),
                            edited=int(edited[i]),
                            label=str(labels[i]),
                            output_chars=int(chars[i]),
                        )
                        rows.append(tuple(row[c] for c in RUN_COLUMNS))
                    repo.insert_many(rows)
    finally:
        store.close()
    return time.perf_counter() - started


def built(versions: int, runs: int, rebuild: bool) -> Path:
    """The cached project directory with the demo's store grown as asked (built if missing)."""
    folder = CACHE / f"web-{versions}v-{runs}r"
    done = folder / "BUILT"
    if done.exists() and not rebuild:
        print(f"store from the cache: {folder} ({done.read_text().strip()})")
        t0 = time.perf_counter()
        open_store(folder / "demo", create=False).close()  # upgrades it if the schema moved
        print(f"opened (and upgraded if the schema moved) in {time.perf_counter() - t0:.1f} s")
        return folder / "demo"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    project = folder / "demo"
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "releasegate", "demo", "--dir", str(project)],
        check=True,
        capture_output=True,
        env={**os.environ, "RELEASEGATE_ACTOR": "alice"},
    )
    demo = time.perf_counter() - t0
    spent_versions = grow(project, versions)
    spent_runs = add_runs(project, runs)
    note = (
        f"built in {demo + spent_versions + spent_runs:.0f} s: demo {demo:.0f} s, "
        f"{versions:,} versions {spent_versions:.0f} s, {runs:,} runs {spent_runs:.0f} s"
    )
    done.write_text(note + "\n")
    print(f"store {note}; cached in {folder}")
    return project


def measure(
    project: Path, requests: int, only: list[str]
) -> list[tuple[str, float, float, float, int]]:
    store = open_store(project, create=False)
    token = create_token(store, f"bench-viewer-{os.getpid()}", "viewer", who="bench").secret
    rows = []
    try:
        for url in run_server(create_app(store, Settings())):
            with httpx.Client(base_url=url, timeout=120) as c:
                c.post("/web/login", data={"token": token})
                home = c.get("/web/").text
                wf = re.search(r'href="/web/workflows/([^"/]+)"', home)
                assert wf, home
                name = wf.group(1)
                page = c.get(f"/web/workflows/{name}").text
                running = re.search(
                    r'production/signals">signals</a></div></td><td><a class="id" href="([^"]+)"',
                    page,
                )
                assert running, page
                version = c.get(running.group(1)).text
                decision = re.search(r'href="(/web/decisions/[0-9a-f]+)"', version)
                assert decision, version
                pages = {
                    "home": "/web/",
                    "workflow": f"/web/workflows/{name}",
                    "signals (production)": f"/web/workflows/{name}/environments/production"
                    "/signals",
                    "version (diffs)": running.group(1),
                    "gate report": decision.group(1),
                    "audit log (verified)": "/web/audit",
                    "runbook": f"/web/workflows/{name}/runbook",
                    "review queue (7 days)": f"/web/workflows/{name}/queue",
                }
                if only:
                    pages = {k: v for k, v in pages.items() if any(o in k for o in only)}
                for label, path in pages.items():
                    c.get(path)  # warm-up
                    times = []
                    cpu0 = time.process_time()
                    for _ in range(requests):
                        t0 = time.perf_counter()
                        r = c.get(path)
                        times.append((time.perf_counter() - t0) * 1000)
                        assert r.status_code == 200, (path, r.status_code)
                    cpu = (time.process_time() - cpu0) * 1000 / requests
                    times.sort()
                    p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
                    rows.append((label, statistics.median(times), p95, cpu, len(r.content)))
    finally:
        store.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--rebuild", action="store_true", help="build the cached store again")
    parser.add_argument(
        "--only", action="append", default=[], help="time only the pages whose label has this"
    )
    args = parser.parse_args()
    cached = built(args.versions, args.runs, args.rebuild)
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "demo"
        t0 = time.perf_counter()
        shutil.copytree(cached, project)
        print(f"copied in {time.perf_counter() - t0:.1f} s")
        os.chdir(project)
        print(f"{'page':24s} {'median ms':>10s} {'p95 ms':>8s} {'CPU ms':>8s} {'KiB':>6s}  target")
        print(f"load average before {os.getloadavg()[0]:.1f}")
        for label, median, p95, cpu, size in measure(project, args.requests, args.only):
            verdict = f"{TARGET_MS:.0f} ms " + ("ok" if median <= TARGET_MS else "MISS")
            print(f"{label:24s} {median:10.1f} {p95:8.1f} {cpu:8.1f} {size / 1024:6.0f}  {verdict}")
        print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
