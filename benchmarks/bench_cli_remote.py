"""The CLI through a server (issue 13): what ``RELEASEGATE_URL`` adds to a verb.

``python benchmarks/bench_cli_remote.py [--runs N] [--only VERB...]`` runs each verb as a
user does, a fresh ``releasegate`` process each time, alternately on the project's embedded
store and through ``releasegate serve`` (one worker, loopback, over the same store, an
admin's token), and prints per verb the p50 wall time of each, the difference (target: at
most 10 ms added) and the CPU time of the processes: the CLI's own (user + system, from
``wait4``) and the server's for the request (its ``/proc`` CPU before and after).

Speed lives here, never in test asserts. The machine is shared: read the CPU columns
beside the wall ones.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from bench_loop import BIN, ENV, WORKFLOW, cold_env, project, ship

if TYPE_CHECKING:
    from releasegate.store.engine import Store

TARGET_ADDED_MS = 10.0
VERBS: dict[str, tuple[str, ...]] = {
    "resolve": ("resolve", WORKFLOW, "--env", ENV),
    "resolve --json": ("resolve", WORKFLOW, "--env", ENV, "--json"),
    "versions --json": ("versions", WORKFLOW, "--json"),
    "show --json": ("show", "{vid}", "--json"),
    "history": ("history", WORKFLOW, "--env", ENV),
    "audit log --json": ("audit", "log", "--json"),
    "audit verify --json": ("audit", "verify", "--json"),
    "promote (already there)": ("promote", "{vid}", "--env", ENV, "--json"),
    "token list --json": ("token", "list", "--json"),
    "stage show --json": ("stage", "show", WORKFLOW, "--json"),
    "policy show --json": ("policy", "show", WORKFLOW, "--json"),
    "report handover --json": ("report", "handover", WORKFLOW, "--json"),
    "report runbook": ("report", "runbook", WORKFLOW),
    "report memo --json": ("report", "memo", WORKFLOW, "--json"),
    "review --json": ("review", WORKFLOW, "--json"),
    "queue list --json": ("queue", "list", WORKFLOW, "--json"),
    "queue log": ("queue", "log", WORKFLOW),
    "suite plan --json": (
        "suite",
        "plan",
        "{vid}",
        "--suite",
        "suite20.yaml",
        "--margin",
        "0.05",
        "--json",
    ),  # fmt: skip
    "monitor --no-alert --json": (
        "monitor",
        WORKFLOW,
        "--env",
        ENV,
        "--no-embeddings",
        "--no-quality",
        "--no-alert",
        "--json",
    ),  # fmt: skip
    # a job the server answers 202 and the CLI polls: every output cached, so it ends at once
    "eval (cached) --json": ("eval", "{vid}", "--suite", "suite20.yaml", "--json"),
}
RUNS = 500
"""Production runs of the shipped version over the last two days (the queue, the monitor)."""


class Sample(NamedTuple):
    wall: float
    cpu: float
    """The CLI process's user + system seconds."""
    server_cpu: float


def run_once(argv: list[str], cwd: Path, env: dict[str, str], server_pid: int | None) -> Sample:
    before = _proc_cpu(server_pid) if server_pid else 0.0
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    out, err = proc.communicate()
    if os.waitstatus_to_exitcode(status) not in (0, 1):  # 1: the answer is no (not ready)
        raise SystemExit(f"{' '.join(argv)} failed:\n{err.decode()}")
    after = _proc_cpu(server_pid) if server_pid else 0.0
    return Sample(wall, usage.ru_utime + usage.ru_stime, after - before)


def _proc_cpu(pid: int) -> float:
    """The CPU seconds (user + system) ``pid`` and its children have used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


@contextmanager
def serving(root: Path, env: dict[str, str]) -> Iterator[tuple[str, int]]:
    """``releasegate serve`` over ``root``'s store on a free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [str(BIN / "releasegate"), "serve", "--port", str(port), "--no-access-log"]
    server = subprocess.Popen(argv, cwd=root, env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("releasegate serve did not start") from None
            time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", server.pid
    finally:
        server.terminate()
        server.wait(timeout=30)


def token(root: Path, env: dict[str, str], role: str) -> str:
    argv = [str(BIN / "releasegate"), "token", "create", "--name", role, "--role", role]
    done = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="fresh processes per verb and side")
    parser.add_argument(
        "--only", nargs="*", default=[], metavar="VERB", help="only the verbs starting so"
    )
    args = parser.parse_args()
    verbs = {n: v for n, v in VERBS.items() if not args.only or n.startswith(tuple(args.only))}
    pycache = Path(tempfile.mkdtemp(prefix="rg-bench-pycache-"))
    env = cold_env(pycache)
    env["RELEASEGATE_ACTOR"] = "admin"  # the token's name: the same actor on both sides
    rows = []
    with project() as (root, store):
        vid = ship(root, store)
        _runs(store, vid)
        store.close()
        admin = token(root, env, "admin")
        with serving(root, env) as (url, pid):
            remote_env = {**env, "RELEASEGATE_URL": url, "RELEASEGATE_TOKEN": admin}
            elsewhere = Path(tempfile.mkdtemp(prefix="rg-bench-client-"))
            for name in ("suite20.yaml", "cases20.jsonl"):  # the files a verb sends
                shutil.copyfile(root / name, elsewhere / name)
            for name, verb in verbs.items():
                argv = [str(BIN / "releasegate"), *(vid if a == "{vid}" else a for a in verb)]
                run_once(argv, root, env, None)  # bytecode compiled, caches warm
                run_once(argv, elsewhere, remote_env, pid)
                local, remote = [], []
                for _ in range(args.runs):  # alternated: the machine's load hits both alike
                    local.append(run_once(argv, root, env, None))
                    remote.append(run_once(argv, elsewhere, remote_env, pid))
                rows.append((name, local, remote))
    _table(rows, args.runs)


def _runs(store: Store, vid: str) -> None:
    from releasegate.monitor.ingest import ingest_dicts

    now = time.time()
    rows = [
        {
            "run_id": f"run-{i:05d}",
            "workflow": WORKFLOW,
            "env": ENV,
            "version_id": vid,
            "started_at": now - 60 - i * 2 * 86400 / RUNS,
            "latency_ms": 100 + i % 50,
            "status": "ok",
            "input": f"message {i}",
            "output": "complaint",
            "escalated": i % 10 == 0,
            "edited": i % 7 == 0,
        }
        for i in range(RUNS)
    ]
    assert ingest_dicts(store, rows, source="jsonl").landed == RUNS


def _p50(samples: list[Sample], field: str) -> float:
    return statistics.median(getattr(s, field) for s in samples) * 1000


def _table(rows: list[tuple[str, list[Sample], list[Sample]]], runs: int) -> None:
    load = os.getloadavg()[0]
    print(
        f"\nthe CLI through a server: p50 of {runs} fresh processes per verb and side, "
        f"alternated (load average {load:.1f} on {os.cpu_count()} cores)\n"
    )
    head = (
        f"{'verb':<26}{'local ms':>10}{'server ms':>11}{'added ms':>10}{'target':>8}  "
        f"{'CPU local':>10}{'CPU client':>11}{'CPU server':>11}"
    )
    print(head)
    print("-" * len(head))
    worst = float("-inf")
    for name, local, remote in rows:
        added = _p50(remote, "wall") - _p50(local, "wall")
        worst = max(worst, added)
        mark = "ok" if added <= TARGET_ADDED_MS else "OVER"
        print(
            f"{name:<26}{_p50(local, 'wall'):>10.1f}{_p50(remote, 'wall'):>11.1f}"
            f"{added:>+10.1f}{mark:>8}  {_p50(local, 'cpu'):>10.1f}{_p50(remote, 'cpu'):>11.1f}"
            f"{_p50(remote, 'server_cpu'):>11.1f}"
        )
    print(
        f"\nworst added p50: {worst:+.1f} ms (target ≤ {TARGET_ADDED_MS:g} ms); CPU in ms "
        "(the CLI process's user + system; the server's for the request, 10 ms ticks)"
    )


if __name__ == "__main__":
    sys.exit(main())
