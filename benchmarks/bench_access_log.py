"""What the access line costs a request: the server's application in-process, the same
resolve sent again and again through its whole middleware stack, with ``serve``'s logging
(``logs.log_config``, stdout to /dev/null), the access line on and off in turns.

``python benchmarks/bench_access_log.py [--runs N] [--requests N]``

The application is the one ``serve`` runs (``create_app``: the edge middleware with its
request id, metrics and access line, the hot resolve path) over a fresh embedded store with
one version in production; each request is an ASGI call (no socket, no uvicorn), so what
is measured is the application's own CPU per request (this process, every thread: the
access log's writer thread included). Blocks of ``--requests`` requests alternate between
the access line on (``releasegate.access`` at INFO, as by default) and off (as
``--no-access-log``), ``--runs`` blocks each, for each ``--log-format``; the figures are
medians, and the line's cost is on minus off. In-process, so the machine's other work
moves both sides of the difference alike (``bench_server.py``'s CPU per request, over
loopback with uvicorn, moves by 40% with the load on this shared machine).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import logging.config
import os
import statistics
import sys
import time
from typing import Any

from bench_loop import ENV, WORKFLOW, load, machine, markdown, project, ship
from releasegate.release.tokens import create_token
from releasegate.server.app import create_app
from releasegate.server.logs import ACCESS, log_config

PATH = f"/v1/resolve/{WORKFLOW}/{ENV}"


def scope(token: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": PATH,
        "raw_path": PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }


async def block(app: Any, token: str, n: int) -> float:
    """CPU µs per request over ``n`` resolves (every one must answer 200)."""
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    started = time.process_time()
    for _ in range(n):
        await app(scope(token), receive, send)
    spent = time.process_time() - started
    assert statuses == [200] * n, sorted(set(statuses))
    return spent / n * 1e6


async def measure(app: Any, token: str, runs: int, n: int) -> dict[bool, list[float]]:
    access = logging.getLogger(ACCESS)
    await block(app, token, n)  # warm: the hot path's memory, the middleware stack
    spent: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(runs):
        for on in (True, False):
            access.setLevel(logging.INFO if on else logging.CRITICAL)
            spent[on].append(await block(app, token, n))
    access.setLevel(logging.INFO)
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="blocks each way (default 7)")
    parser.add_argument("--requests", type=int, default=5_000, help="per block (5,000)")
    args = parser.parse_args()
    before = load()
    rows = []
    stdout, sys.stdout = sys.stdout, open(os.devnull, "w")  # noqa: SIM115 (the lines' sink)
    try:
        with project() as (root, store):
            ship(root, store)
            token = create_token(store, "viewer", "viewer").secret
            app = create_app(store)
            for fmt in ("text", "json"):
                logging.config.dictConfig(log_config(fmt, "info"))
                spent = asyncio.run(measure(app, token, args.runs, args.requests))
                on, off = statistics.median(spent[True]), statistics.median(spent[False])
                diffs = [a - b for a, b in zip(spent[True], spent[False], strict=True)]
                rows.append(
                    (
                        fmt,
                        f"{on:.1f} µs",
                        f"{off:.1f} µs",
                        f"{statistics.median(diffs):.1f} µs",
                        f"{min(diffs):.1f} - {max(diffs):.1f} µs",
                    )
                )
            logging.shutdown()
    finally:
        sys.stdout.close()
        sys.stdout = stdout
    print(machine())
    print(f"{before} before, {load()} after")
    print(
        f"median of {args.runs} blocks of {args.requests:,} resolves each way, in turns; "
        "CPU of this process (all threads) per request"
    )
    print()
    print(
        markdown(
            ("--log-format", "access line on", "off", "the line (on - off)", "range"),
            rows,
        )
    )


if __name__ == "__main__":
    main()
