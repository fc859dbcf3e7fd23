"""The team server over loopback: ``GET /v1/resolve`` requests/s and p99, and run
ingestion (``POST /v1/runs``, batches of 1,000) runs/s, against the issue's targets.

``python benchmarks/bench_server.py [--quick] [--workers N] [--replicas R] [--database-url URL]``
starts ``releasegate serve --workers N`` (default 2) as a subprocess on a free loopback
port, or with ``--replicas R`` R separate ``serve`` processes on R ports over the same store
(the issue's "2 replicas": ``--replicas 2 --workers 1``; the load generator then spreads
its requests over the ports round-robin, as a proxy without sticky sessions would), over
a fresh embedded SQLite store (or the PostgreSQL database
``--database-url`` names: an empty database, upgraded and filled here), with one version
promoted and a viewer and an operator token. The load comes from another process (aiohttp
client, keep-alive connections), so the client's own CPU is not the server's; on this
2-core machine client and server share the cores (and other work shares the machine), so
read the wall figures as a floor, and the CPU figures (the server's processes, from
/proc) as what the same work costs with the cores to itself: 2 s of CPU per second of
wall on two free cores bounds what they sustain.

- resolve: ``CONCURRENCY`` connections each issue GET resolve back to back for ``SECONDS``;
  requests/s over the window, and the latency percentiles of every request (p50, p99).
  The server answers from its resolver's memory within ``--resolve-ttl`` (1 s), as the SDK.
- ingest: ``BATCH_CLIENTS`` connections post pre-built batches of 1,000 runs (the JSON
  bodies built before the clock starts) until ``N_BATCHES`` are sent; runs/s from the
  first request to the last answer, and every run must land (``landed`` summed, and
  counted in the store afterwards: 0 lost).

Each figure is the median of ``--runs`` repetitions (5, 3 with --quick), every repetition
against a fresh server and store. Speed lives here, never in test asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import itertools
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench_loop import ENV, WORKFLOW, Figure, load, machine, project, ship, table
from releasegate.release.tokens import create_token
from releasegate.store.engine import Location, Store

TARGET_RESOLVE_RPS = 2_000.0
TARGET_RESOLVE_P99_MS = 50.0
TARGET_INGEST_RPS = 20_000.0
CONCURRENCY = 32
SECONDS = 5.0
BATCH = 1_000
BATCH_CLIENTS = 4
N_BATCHES = 60


@dataclass
class Server:
    urls: list[str]
    store: Store
    viewer: str
    operator: str
    version_id: str
    pids: list[int]

    def cpu(self) -> float:
        """CPU seconds the servers (each process and its workers) used so far (Linux /proc)."""
        total = 0
        try:
            for pid in self.pids:
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
                for each in [pid, *map(int, children)]:
                    fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
                    total += int(fields[11]) + int(fields[12])
        except OSError:
            return float("nan")
        return total / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(
    workers: int, database_url: str | None, extra: tuple[str, ...] = (), replicas: int = 1
) -> Iterator[Server]:
    """A fresh store with one version in production, and ``replicas`` ``serve`` processes
    over it until done."""
    with project() as (root, store):
        env = {**os.environ, "RELEASEGATE_ACTOR": "bench"}
        env.pop("RELEASEGATE_DATABASE_URL", None)
        if database_url is not None:
            store.close()
            store = fresh_postgres(database_url, root)
            env["RELEASEGATE_DATABASE_URL"] = store.location.url
        procs: list[subprocess.Popen[str]] = []
        try:
            vid = ship(root, store)
            viewer = create_token(store, "viewer", "viewer").secret
            operator = create_token(store, "operator", "operator").secret
            urls = []
            for _ in range(replicas):
                port = free_port()
                procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "releasegate", "serve", "--port", str(port)]
                        + ["--workers", str(workers), *extra],
                        cwd=root,
                        env={**env, "PYTHONPATH": str(root)},
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.PIPE,
                        text=True,
                    )
                )
                urls.append(f"http://127.0.0.1:{port}")
            for url, proc in zip(urls, procs, strict=True):
                wait_ready(url, proc)
            served = Server(urls, store, viewer, operator, vid, [p.pid for p in procs])
            settle(served)
            yield served
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=60)
            if database_url is not None:
                store.close()
                drop_postgres(database_url, store.location.url)


def fresh_postgres(admin_url: str, root: Path) -> Store:
    """An empty database beside ``admin_url``'s, upgraded: the bench's own, dropped when its
    figure is taken (``drop_postgres``), so repeated runs leave nothing behind."""
    import sqlalchemy as sa

    from releasegate.store.migrate import upgrade

    name = f"rg_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    engine = sa.create_engine(url)
    upgrade(engine)
    engine.dispose()
    home = root / ".releasegate"
    return Store.open(location=Location(url, home / "blobs", False, home))


def drop_postgres(admin_url: str, url: str) -> None:
    """Drop the bench's database ``url`` (its servers stopped), through ``admin_url``."""
    import sqlalchemy as sa

    name = url.rsplit("/", 1)[1]
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def wait_ready(url: str, proc: subprocess.Popen[str]) -> None:
    import urllib.request

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("serve did not become ready")


def settle(served: Server) -> None:
    """Wait until every worker has started (the first one ready answers /readyz while the
    others still import): until the server's processes use under 5% of a core for 0.5 s,
    so no worker's start-up is counted in a figure's CPU."""
    deadline = time.monotonic() + 60
    before = served.cpu()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = served.cpu()
        if now - before < 0.025:
            return
        before = now


# -- the load, in its own process ------------------------------------------------------------


def resolve_load(
    urls: list[str], token: str, seconds: float, concurrency: int
) -> tuple[int, list[float]]:
    """(requests answered 200 in the window, every latency in ms), from a fresh process."""
    return asyncio.run(_resolve_load(urls, token, seconds, concurrency))


async def _resolve_load(
    urls: list[str], token: str, seconds: float, concurrency: int
) -> tuple[int, list[float]]:
    import aiohttp

    headers = {"Authorization": f"Bearer {token}"}
    paths = [f"{url}/v1/resolve/{WORKFLOW}/{ENV}" for url in urls]
    turn = itertools.cycle(paths)  # round-robin over the replicas, request by request
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
        for path in paths:  # the first answer fills each resolver's memory
            async with session.get(path) as warm:
                assert warm.status == 200, await warm.text()
        end = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < end:
                t0 = time.perf_counter()
                async with session.get(next(turn)) as r:
                    await r.read()
                    if r.status != 200:
                        errors += 1
                        continue
                latencies.append((time.perf_counter() - t0) * 1000)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    if errors:
        raise RuntimeError(f"{errors} resolve requests failed")
    return len(latencies), latencies


def ingest_load(
    urls: list[str], token: str, bodies: list[bytes], clients: int
) -> tuple[float, int]:
    """(seconds from the first post to the last answer, runs landed), from a fresh process."""
    return asyncio.run(_ingest_load(urls, token, bodies, clients))


async def _ingest_load(
    urls: list[str], token: str, bodies: list[bytes], clients: int
) -> tuple[float, int]:
    import aiohttp

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    queue = list(reversed(bodies))
    turn = itertools.cycle([f"{url}/v1/runs" for url in urls])
    landed = 0
    timeout = aiohttp.ClientTimeout(total=600)
    async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
        started = time.perf_counter()

        async def worker() -> None:
            nonlocal landed
            while queue:
                body = queue.pop()
                async with session.post(next(turn), data=body) as r:
                    answer = await r.json()
                    if r.status != 200:
                        raise RuntimeError(f"POST /v1/runs {r.status}: {answer}")
                    landed += int(answer["landed"])

        await asyncio.gather(*(worker() for _ in range(clients)))
        return time.perf_counter() - started, landed


def batches(version_id: str, n: int) -> list[bytes]:
    at = datetime.now(UTC).timestamp()
    out = []
    for b in range(n):
        runs = [
            {
                "run_id": f"b{b:04d}-{i:04d}-{uuid.uuid4().hex[:8]}",
                "workflow": WORKFLOW,
                "env": ENV,
                "version_id": version_id,
                "started_at": at - 60 + i / 1000,
                "latency_ms": 100 + i % 300,
                "status": "ok",
                "tokens_in": 40 + i % 200,
                "tokens_out": 3,
                "cost_usd": 0.0001,
                "label": ("fraud", "card_lost", "complaint", "transfer")[i % 4],
                "input": f"message {i} of batch {b}",
                "output": "routed",
            }
            for i in range(BATCH)
        ]
        out.append(json.dumps(runs).encode())
    return out


def stored_runs(store: Store) -> int:
    with store.read() as conn:
        import sqlalchemy as sa

        return int(conn.execute(sa.text("SELECT count(*) FROM runs")).scalar_one())


# -- the figures ------------------------------------------------------------------------------


def bench(
    runs: int,
    workers: int,
    database_url: str | None,
    extra: tuple[str, ...] = (),
    replicas: int = 1,
) -> list[Figure]:
    rps, p50, p99, ingest, lost, cpu_req, cpu_run = [], [], [], [], [], [], []
    spawn = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=spawn) as client:
        for _ in range(runs):
            with server(workers, database_url, extra, replicas) as s:
                before = s.cpu()
                done, latencies = client.submit(
                    resolve_load, s.urls, s.viewer, SECONDS, CONCURRENCY
                ).result()
                cpu_req.append((s.cpu() - before) / done * 1e6)
                rps.append(done / SECONDS)
                cuts = statistics.quantiles(latencies, n=100)
                p50.append(cuts[49])
                p99.append(cuts[98])
                bodies = batches(s.version_id, N_BATCHES)
                before = s.cpu()
                seconds, landed = client.submit(
                    ingest_load, s.urls, s.operator, bodies, BATCH_CLIENTS
                ).result()
                cpu_run.append((s.cpu() - before) / landed * 1e6)
                ingest.append(landed / seconds)
                lost.append(float(N_BATCHES * BATCH - stored_runs(s.store)))
    where = ("PostgreSQL" if database_url else "SQLite") + (", no access log" if extra else "")
    shape = f"{workers} workers" if replicas == 1 else f"{replicas} replicas x {workers} worker(s)"
    return [
        Figure(
            f"GET resolve, {shape}, {where}, {CONCURRENCY} conns",
            "req/s",
            tuple(rps),
            TARGET_RESOLVE_RPS,
            higher_is_better=True,
        ),
        Figure("  p50 latency", "ms", tuple(p50)),
        Figure("  p99 latency", "ms", tuple(p99), TARGET_RESOLVE_P99_MS),
        Figure("  server CPU per request (all processes)", "us", tuple(cpu_req)),
        Figure(
            "  what 2 free cores sustain at that CPU",
            "req/s",
            tuple(2e6 / c for c in cpu_req),
            TARGET_RESOLVE_RPS,
            higher_is_better=True,
        ),
        Figure(
            f"POST /v1/runs, batches of {BATCH:,}, {BATCH_CLIENTS} clients",
            "runs/s",
            tuple(ingest),
            TARGET_INGEST_RPS,
            higher_is_better=True,
        ),
        Figure("  server CPU per run (all processes)", "us", tuple(cpu_run)),
        Figure(
            "  what 2 free cores sustain at that CPU",
            "runs/s",
            tuple(2e6 / c for c in cpu_run),
            TARGET_INGEST_RPS,
            higher_is_better=True,
        ),
        Figure("  runs lost", "runs", tuple(lost)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description="The team server's speed, against its targets.")
    parser.add_argument("--quick", action="store_true", help="3 runs per figure instead of 5")
    parser.add_argument("--workers", type=int, default=2, help="serve --workers (default 2)")
    parser.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="separate serve processes on their own ports, the load spread round-robin",
    )
    parser.add_argument(
        "--database-url",
        help="PostgreSQL server URL with a database to connect to for CREATE DATABASE, "
        "e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
    )
    parser.add_argument(
        "--no-access-log", action="store_true", help="serve --no-access-log (default: logged)"
    )
    args = parser.parse_args()
    extra = ("--no-access-log",) if args.no_access_log else ()
    runs = 3 if args.quick else 5
    started = time.perf_counter()
    before = load()
    figures = bench(runs, args.workers, args.database_url, extra, args.replicas)
    print(machine())
    print(f"{before} before, {load()} after (other work on the machine inflates wall times)")
    print(
        f"median of {runs} runs per figure, each against a fresh server and store; "
        "ratio = measured/target (throughput: target/measured), <= 1.0 is good\n"
    )
    print(table(figures))
    print(f"\n({time.perf_counter() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
