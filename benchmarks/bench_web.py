"""The web dashboard's pages over loopback, on the demo's store grown to many versions.

``python benchmarks/bench_web.py [--versions N] [--requests R]`` runs ``releasegate demo``
in a temp directory (SQLite: the whole loop, a canary, a rehearsal, ~4,500 production
runs, ~100 audit events), registers ``--versions`` (default 1,000) more versions of its
workflow through the ``register`` service (each a generation setting apart: real versions
with their audit events), then serves the store on uvicorn on loopback in this process
and times every page of the dashboard (home, workflow, its runbook, the production
signals, a version with its diffs, a gate report, the audit log with its verification)
with httpx, logged in with a viewer token: median, p95 and the page size over
``--requests`` requests (default 20) after one warm-up. The pages read no runs, except
the runbook (``bench_runbook.py`` measures it against 100,000 more runs) and the signals
page (a week and its reference, and 14 days for the charts). Speed lives here, never in
test asserts.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.server.conftest import run_server  # noqa: E402

from releasegate.release.register import register  # noqa: E402
from releasegate.release.store_access import open_store  # noqa: E402
from releasegate.release.tokens import create_token  # noqa: E402
from releasegate.server.app import Settings, create_app  # noqa: E402


def grow(project: Path, versions: int) -> float:
    """Register ``versions`` more versions of the demo's workflow; the seconds it took."""
    base = yaml.safe_load((project / "v2.yaml").read_text())
    store = open_store(create=False)
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


def measure(requests: int) -> list[tuple[str, float, float, int]]:
    store = open_store(create=False)
    token = create_token(store, "bench-viewer", "viewer", who="bench").secret
    rows = []
    try:
        for url in run_server(create_app(store, Settings())):
            with httpx.Client(base_url=url, timeout=60) as c:
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
                    "runbook": f"/web/workflows/{name}/runbook",
                    "signals (production)": f"/web/workflows/{name}/environments/production"
                    "/signals",
                    "version (diffs)": running.group(1),
                    "gate report": decision.group(1),
                    "audit log (verified)": "/web/audit",
                }
                for label, path in pages.items():
                    c.get(path)  # warm-up
                    times = []
                    for _ in range(requests):
                        t0 = time.perf_counter()
                        r = c.get(path)
                        times.append((time.perf_counter() - t0) * 1000)
                        assert r.status_code == 200, (path, r.status_code)
                    times.sort()
                    p95 = times[min(len(times) - 1, int(0.95 * len(times)))]
                    rows.append((label, statistics.median(times), p95, len(r.content)))
    finally:
        store.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "demo"
        subprocess.run(
            [sys.executable, "-m", "releasegate", "demo", "--dir", str(project)],
            check=True,
            capture_output=True,
            env={**os.environ, "RELEASEGATE_ACTOR": "alice"},
        )
        os.chdir(project)
        spent = grow(project, args.versions)
        print(f"demo store + {args.versions} versions registered in {spent:.1f} s")
        print(f"{'page':24s} {'median ms':>10s} {'p95 ms':>8s} {'KiB':>6s}")
        for label, median, p95, size in measure(args.requests):
            print(f"{label:24s} {median:10.1f} {p95:8.1f} {size / 1024:6.0f}")
        print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
