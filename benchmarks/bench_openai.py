"""Eval against an OpenAI-compatible server with 50 ms latency, beside promptfoo.

``python benchmarks/bench_openai.py [--quick] [--no-cli] [--no-promptfoo]`` starts
the loopback server of the provider tests (``tests/providers/openai_server.py``,
asyncio backend) in its own process, each chat completion sleeping 50 ms, and
runs one workload against it: 2,000 BANKING77 queries at concurrency 64, so the
physical limit is 2,000 x 0.05 s / 64 = 1.56 s. Every figure is the median of 5
runs (3 with --quick); each cold run has a fresh temp dir, store and cache:

- the server alone, driven by a trivial raw-socket client: the practical floor,
  and the proof that the server is not the bottleneck;
- releasegate ``evaluate()`` in-process, cold (fresh store) and warm (the same
  store again: every output from the cache), storage included;
- the ``releasegate eval`` command, cold and warm, as a user runs it, and
  ``releasegate --help`` as that command's process floor;
- promptfoo's ``promptfoo eval -c ... -j 64 --no-progress-bar --no-table -o
  out.json`` (the binary ``npx promptfoo`` runs, started directly), its
  ``openai:chat`` provider pointed at the same server: cold (empty cache and
  results database) and warm (the same cache again), with ``promptfoo --version``
  as its process floor. It runs when ``npm install promptfoo`` was done in
  ``--promptfoo-dir`` (default /tmp/pf); otherwise the output says so and shows
  releasegate alone.

Both tools send the same two messages per case, score with an exact match, and
store every result (releasegate in its SQLite store, promptfoo in its own
database plus the JSON it is asked to write, which is how the run is checked).
The 1-minute load average is printed with each figure: on a shared machine wall
times rise with it. Speed lives here, never in test asserts.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.providers.openai_server, when run as a script

from bench_loop import markdown  # noqa: E402  (benchmarks/ is on the path when run as a script)
from releasegate.release.evaluate import evaluate  # noqa: E402
from releasegate.release.register import register  # noqa: E402
from releasegate.store.engine import Store  # noqa: E402

N_CASES = 2_000
CONCURRENCY = 64
LATENCY_S = 0.05
PHYSICAL_LIMIT_S = N_CASES * LATENCY_S / CONCURRENCY  # 1.5625 s
COLD_TARGET_S = 1.25 * PHYSICAL_LIMIT_S
WARM_TARGET_S = 0.3
MODEL = "gpt-4o-mini"
KEY_ENV = "RG_BENCH_OPENAI_KEY"
SYSTEM = "Route each customer message to the team that handles it. Answer with the intent only."
USER_TEMPLATE = "Customer says: {input}"
DATASET = ROOT.parent / "shared" / "datasets" / "banking77" / "test.csv"
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Figure:
    name: str
    runs: tuple[float, ...]  # seconds
    loads: tuple[float, ...]  # 1-minute load average after each run
    target: float | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def status(self) -> str:
        if self.target is None:
            return "info"
        return "ok" if self.median <= self.target else "MISSED"


# -- the server ----------------------------------------------------------------------------------


@contextlib.contextmanager
def server(latency_s: float = LATENCY_S, backend: str = "asyncio") -> Iterator[str]:
    """The fake OpenAI server in its own process; yields its base URL."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.providers.openai_server",
            "--latency",
            str(latency_s),
            "--backend",
            backend,
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        if not base_url.startswith("http://"):
            raise RuntimeError(f"the fake server did not start (said {base_url!r})")
        yield base_url
    finally:
        if proc.stdin is not None:
            proc.stdin.close()  # the server stops when its stdin closes
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def request_bytes(host: str, port: int, text: str) -> bytes:
    body = json.dumps(
        {
            "model": MODEL,
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": USER_TEMPLATE.format(input=text)},
            ],
            "temperature": 0,
        }
    ).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def trivial_client(base_url: str, texts: list[str], concurrency: int) -> None:
    """Raw HTTP/1.1 keep-alive over ``concurrency`` sockets: next to no client-side cost."""
    hostport = base_url.removeprefix("http://").split("/")[0]
    host, port = hostport.rsplit(":", 1)
    queue = list(reversed(texts))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while queue:
                writer.write(request_bytes(host, int(port), queue.pop()))
                head = await reader.readuntil(b"\r\n\r\n")
                status = head.split(b" ", 2)[1]
                if status != b"200":
                    raise RuntimeError(f"server answered {status.decode()}")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def bench_server_alone(runs: int, base_url: str, rows: list[tuple[str, str]]) -> Figure:
    texts = [f"{text} #{label}" for text, label in rows]
    times, loads = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        asyncio.run(trivial_client(base_url, texts, CONCURRENCY))
        times.append(time.perf_counter() - t0)
        loads.append(os.getloadavg()[0])
    return Figure("server alone, trivial raw-socket client", tuple(times), tuple(loads))


# -- the workload --------------------------------------------------------------------------------


def load_rows(n: int) -> list[tuple[str, str]]:
    """(query, intent) pairs: BANKING77's test split if present, else generated ones."""
    if DATASET.exists():
        with DATASET.open(newline="") as f:
            rows = [(r["text"], r["category"]) for r in csv.DictReader(f)][:n]
        if len(rows) == n:
            return rows
    labels = ("card_arrival", "lost_or_stolen_card", "transfer_timing", "exchange_rate")
    return [(f"customer message number {i}", labels[i % 4]) for i in range(n)]


def write_project(
    root: Path, base_url: str, rows: list[tuple[str, str]], client: str = "builtin"
) -> tuple[Path, Path]:
    """A workflow file (provider openai at the server) and a suite of ``rows``."""
    workflow = {
        "workflow": "bench-openai",
        "stakes": "low",
        "owners": {"change": "alice", "approvers": ["bob"]},
        "model": {
            "provider": "openai",
            "name": MODEL,
            "base_url": base_url,
            "api_key_env": KEY_ENV,
            "options": {"max_retries": 2, "timeout_s": 30, "client": client},
        },
        "prompts": {"system": SYSTEM, "templates": {"user": USER_TEMPLATE}},
        "generation": {"temperature": 0},
    }
    # The fake server answers with the message's #tag: every case passes when the whole
    # path (template, request, response, scoring, storage) worked.
    cases = [
        {"id": f"b{i:05d}", "input": f"{text} #{label}", "expected": label}
        for i, (text, label) in enumerate(rows)
    ]
    (root / "cases.jsonl").write_text("\n".join(json.dumps(c) for c in cases) + "\n")
    suite = {
        "suite": "bench-openai",
        "workflow": "bench-openai",
        "cases": "cases.jsonl",
        "scorers": [{"type": "label_accuracy", "name": "accuracy"}],
    }
    (root / "workflow.yaml").write_text(yaml.safe_dump(workflow, sort_keys=False))
    (root / "suite.yaml").write_text(yaml.safe_dump(suite, sort_keys=False))
    return root / "workflow.yaml", root / "suite.yaml"


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def bench_releasegate(
    runs: int, base_url: str, rows: list[tuple[str, str]], client: str = "builtin"
) -> tuple[Figure, Figure]:
    """``evaluate()`` in-process: cold on a fresh store, then warm on the same store."""
    cold, warm, cold_loads, warm_loads = [], [], [], []
    for _ in range(runs):
        with temp_dir("rg-bench-openai-") as root:
            workflow, suite = write_project(root, base_url, rows, client)
            store = Store.open(root)
            try:
                vid = register(store, workflow, who="alice").version_id
                t0 = time.perf_counter()
                first = evaluate(store, vid, suite, concurrency=CONCURRENCY, who="alice")
                cold.append(time.perf_counter() - t0)
                cold_loads.append(os.getloadavg()[0])
                t0 = time.perf_counter()
                again = evaluate(store, vid, suite, concurrency=CONCURRENCY, who="alice")
                warm.append(time.perf_counter() - t0)
                warm_loads.append(os.getloadavg()[0])
            finally:
                store.close()
            check_outcome(first.summary, first.n_called, first.n_cached, cold=True)
            check_outcome(again.summary, again.n_called, again.n_cached, cold=False)
    how = "" if client == "builtin" else f" with client: {client}"
    return (
        Figure(f"releasegate evaluate(){how}, cold", tuple(cold), tuple(cold_loads), COLD_TARGET_S),
        Figure(f"releasegate evaluate(){how}, warm", tuple(warm), tuple(warm_loads), WARM_TARGET_S),
    )


def check_outcome(summary: Mapping[str, Any], n_called: int, n_cached: int, *, cold: bool) -> None:
    """Every case called (cold) or cached (warm), none failed, all answered right."""
    expected = (N_CASES, 0) if cold else (0, N_CASES)
    if (n_called, n_cached) != expected:
        raise RuntimeError(f"expected (called, cached) = {expected}, got {(n_called, n_cached)}")
    if summary["errors"]["count"]:
        errors = summary["errors"]
        raise RuntimeError(f"{errors['count']} cases failed, e.g. {errors['examples'][:2]}")
    if summary["metrics"]["accuracy"]["estimate"] != 1.0:
        raise RuntimeError(f"accuracy {summary['metrics']['accuracy']['estimate']}, expected 1.0")


def _timed(
    cmd: list[str], cwd: Path, env: dict[str, str], judge: Callable[[], None] | None = None
) -> float:
    """Wall time of ``cmd``; ``judge`` (if given) decides success from its output instead."""
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if judge is not None:
        judge()  # promptfoo has exited 1 after a fully passing run: its results decide
        if proc.returncode != 0:
            print(
                f"note: {Path(cmd[0]).name} exited {proc.returncode}, every case passed",
                file=sys.stderr,
            )
    elif proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip()[-2000:]
        raise RuntimeError(f"{' '.join(cmd[:3])} ... exited {proc.returncode}: {tail}")
    return wall


def bench_releasegate_cli(runs: int, base_url: str, rows: list[tuple[str, str]]) -> list[Figure]:
    """``releasegate eval`` as a new process: cold (fresh store) and warm (same store)."""
    cold, warm, floor, cold_loads, warm_loads, floor_loads = [], [], [], [], [], []
    pycache = Path(tempfile.mkdtemp(prefix="rg-bench-pycache-"))
    try:
        for i in range(runs):
            with temp_dir("rg-bench-openai-cli-") as root:
                env = dict(os.environ, RELEASEGATE_DIR=str(root), PYTHONPYCACHEPREFIX=str(pycache))
                env.pop("RELEASEGATE_DATABASE_URL", None)
                env.pop("PYTHONDONTWRITEBYTECODE", None)
                if i == 0:  # fill the bytecode cache, as `pip install` would have: untimed
                    _timed(eval_command(root, base_url, rows[:20]), root, env)
                    shutil.rmtree(root / ".releasegate")
                cmd = eval_command(root, base_url, rows)
                cold.append(_timed(cmd, root, env))
                cold_loads.append(os.getloadavg()[0])
                warm.append(_timed(cmd, root, env))
                warm_loads.append(os.getloadavg()[0])
                floor.append(_timed([str(BIN / "releasegate"), "--help"], root, env))
                floor_loads.append(os.getloadavg()[0])
    finally:
        shutil.rmtree(pycache, ignore_errors=True)
    return [
        Figure("`releasegate eval` command, cold", tuple(cold), tuple(cold_loads)),
        Figure("`releasegate eval` command, warm", tuple(warm), tuple(warm_loads)),
        Figure(
            "  floor: `releasegate --help` (start and CLI import)", tuple(floor), tuple(floor_loads)
        ),
    ]


def eval_command(root: Path, base_url: str, rows: list[tuple[str, str]]) -> list[str]:
    """Write the project into ``root``, register it, and return its `releasegate eval`."""
    workflow, suite = write_project(root, base_url, rows)
    store = Store.open(root)
    try:
        vid = register(store, workflow, who="alice").version_id
    finally:
        store.close()
    concurrency = str(CONCURRENCY)
    return [
        str(BIN / "releasegate"),
        "eval",
        vid,
        "--suite",
        str(suite),
        "--concurrency",
        concurrency,
        "--json",
    ]


# -- promptfoo -----------------------------------------------------------------------------------


def promptfoo_bin(pf_dir: Path) -> Path | None:
    found = pf_dir / "node_modules" / ".bin" / "promptfoo"
    return found if found.exists() and shutil.which("node") else None


def promptfoo_config(root: Path, base_url: str, rows: list[tuple[str, str]]) -> Path:
    """The same workload for promptfoo: same messages, model, server and scoring."""
    prompt = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": USER_TEMPLATE.replace("{input}", "{{input}}")},
    ]
    (root / "prompt.json").write_text(json.dumps(prompt))
    with (root / "tests.csv").open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["input", "__expected"])
        out.writerows([f"{text} #{label}", f"equals:{label}"] for text, label in rows)
    config = {
        "description": "bench-openai",
        "prompts": ["file://prompt.json"],
        "providers": [
            {
                "id": f"openai:chat:{MODEL}",
                "config": {
                    "apiBaseUrl": base_url,
                    "apiKeyEnvar": KEY_ENV,
                    "temperature": 0,
                },
            }
        ],
        "tests": "file://tests.csv",
        "evaluateOptions": {"maxConcurrency": CONCURRENCY},
    }
    path = root / "promptfooconfig.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def promptfoo_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "PROMPTFOO_CONFIG_DIR": str(home / "config"),  # its results database
            "PROMPTFOO_CACHE_PATH": str(home / "cache"),
            "PROMPTFOO_CACHE_ENABLED": "true",
            "PROMPTFOO_DISABLE_TELEMETRY": "1",
            "PROMPTFOO_DISABLE_UPDATE": "1",
            "PROMPTFOO_DISABLE_REMOTE_GENERATION": "true",
            "PROMPTFOO_DISABLE_SHARING": "1",
            "PROMPTFOO_SELF_HOSTED": "1",
            "NO_COLOR": "1",
        }
    )
    return env


def bench_promptfoo(
    runs: int, base_url: str, rows: list[tuple[str, str]], exe: Path
) -> list[Figure]:
    """``promptfoo eval -j 64``: cold (empty cache, fresh database), then warm (same cache)."""
    cold, warm, floor, cold_loads, warm_loads, floor_loads = [], [], [], [], [], []
    for i in range(runs):
        with temp_dir("rg-bench-promptfoo-") as root:
            config = promptfoo_config(root, base_url, rows)
            env = promptfoo_env(root)
            cmd = [
                str(exe),
                "eval",
                "-c",
                str(config),
                "-j",
                str(CONCURRENCY),
                "--no-progress-bar",
                "--no-table",
                "-o",
                str(root / "out.json"),
            ]
            if i == 0:  # first start of node compiles promptfoo's modules: untimed
                _timed([str(exe), "--version"], root, env)
            cold.append(_timed(cmd, root, env, judge=lambda: check_promptfoo(root / "out.json")))
            cold_loads.append(os.getloadavg()[0])
            warm.append(_timed(cmd, root, env, judge=lambda: check_promptfoo(root / "out.json")))
            warm_loads.append(os.getloadavg()[0])
            floor.append(_timed([str(exe), "--version"], root, env))
            floor_loads.append(os.getloadavg()[0])
    return [
        Figure("promptfoo eval -j 64, cold (empty cache)", tuple(cold), tuple(cold_loads)),
        Figure("promptfoo eval -j 64, warm (same cache)", tuple(warm), tuple(warm_loads)),
        Figure(
            "  floor: `promptfoo --version` (node start, CLI load)",
            tuple(floor),
            tuple(floor_loads),
        ),
    ]


def check_promptfoo(path: Path) -> None:
    stats = json.loads(path.read_text())["results"]["stats"]
    if (stats.get("successes"), stats.get("failures", 0) + stats.get("errors", 0)) != (N_CASES, 0):
        raise RuntimeError(f"promptfoo did not pass every case: {stats}")


# -- the table -----------------------------------------------------------------------------------


def table(figures: list[Figure]) -> str:
    head = ("figure", "median", "runs (s)", "load 1m", "÷ physical limit", "target", "status")
    rows = [
        (
            f.name,
            f"{f.median:.3f} s",
            " ".join(f"{r:.2f}" for r in f.runs),
            f"{statistics.median(f.loads):.2f}",
            "—" if f.name.lstrip().startswith("floor") else f"{f.median / PHYSICAL_LIMIT_S:.2f}",
            "—" if f.target is None else f"≤ {f.target:.3g} s",
            f.status,
        )
        for f in figures
    ]
    return markdown(head, rows)


def side_by_side(by_name: dict[str, Figure]) -> str | None:
    """One table: each tool's cold and warm run as seconds and as a multiple of the limit."""
    rows = [
        ("cold", "releasegate evaluate(), cold", "`releasegate eval` command, cold",
         "promptfoo eval -j 64, cold (empty cache)"),
        ("warm", "releasegate evaluate(), warm", "`releasegate eval` command, warm",
         "promptfoo eval -j 64, warm (same cache)"),
    ]  # fmt: skip
    if not all(name in by_name for row in rows for name in row[1:]):
        return None

    def cell(name: str) -> str:
        median = by_name[name].median
        return f"{median:.2f} s = {median / PHYSICAL_LIMIT_S:.2f}× limit"

    head = (
        "| run | releasegate evaluate() | `releasegate eval` (CLI) | `promptfoo eval` (CLI) "
        "| promptfoo ÷ releasegate (CLI) |"
    )
    lines = [head, "|---|---|---|---|---|"]
    for label, api, cli, pf in rows:
        ratio = by_name[pf].median / by_name[cli].median
        lines.append(f"| {label} | {cell(api)} | {cell(cli)} | {cell(pf)} | {ratio:.1f}× |")
    return "\n".join(lines)


def machine() -> str:
    import sqlite3

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"machine: nproc {cpus}, {platform.python_implementation()} {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, {platform.system()} {platform.machine()}"
    )


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def promptfoo_version(exe: Path) -> str:
    proc = subprocess.run([str(exe), "--version"], capture_output=True, text=True)
    return proc.stdout.strip().splitlines()[-1] if proc.returncode == 0 else "?"


def main() -> None:
    parser = argparse.ArgumentParser(description="Eval against a 50 ms server, beside promptfoo.")
    parser.add_argument("--quick", action="store_true", help="3 runs per figure instead of 5")
    parser.add_argument("--no-promptfoo", action="store_true", help="releasegate's figures only")
    parser.add_argument("--no-cli", action="store_true", help="skip the `releasegate eval` rows")
    parser.add_argument(
        "--no-sdk", action="store_true", help="skip the rows with the official openai client"
    )
    parser.add_argument(
        "--promptfoo-dir",
        type=Path,
        default=Path("/tmp/pf"),
        help="where `npm install promptfoo` was run (default /tmp/pf)",
    )
    args = parser.parse_args()
    runs = 3 if args.quick else 5
    os.environ.setdefault("RELEASEGATE_ACTOR", "bench")
    os.environ[KEY_ENV] = "sk-bench-not-a-real-key"
    rows = load_rows(N_CASES)
    load_before = load()
    started = time.perf_counter()
    figures: list[Figure] = []
    note = ""
    with server() as base_url:
        figures.append(bench_server_alone(runs, base_url, rows))
        figures.extend(bench_releasegate(runs, base_url, rows))
        if not args.no_sdk:
            figures.extend(bench_releasegate(runs, base_url, rows, "openai-sdk"))
        benches: list[Callable[[], list[Figure]]] = []
        if not args.no_cli:
            benches.append(lambda: bench_releasegate_cli(runs, base_url, rows))
        exe = promptfoo_bin(args.promptfoo_dir)
        if args.no_promptfoo:
            note = "promptfoo: skipped (--no-promptfoo)"
        elif exe is None:
            note = (
                f"promptfoo: not installed in {args.promptfoo_dir} (run `npm install promptfoo` "
                "there; needs node), so releasegate's figures are shown alone"
            )
        else:
            note = f"promptfoo {promptfoo_version(exe)} from {args.promptfoo_dir}"
            benches.append(lambda: bench_promptfoo(runs, base_url, rows, exe))
        for bench in benches:
            try:
                figures.extend(bench())
            except (RuntimeError, OSError) as exc:
                note += f"\n  a benchmark failed and is left out: {exc}"
    print(machine())
    print(f"{load_before} before, {load()} after (other work on the machine inflates wall times)")
    print(
        f"{N_CASES:,} cases, concurrency {CONCURRENCY}, {LATENCY_S * 1000:.0f} ms per request: "
        f"physical limit {PHYSICAL_LIMIT_S:.3f} s; median of {runs} runs per figure"
    )
    if DATASET.exists():
        print("cases: BANKING77 test split (CC BY 4.0, Casanueva et al. 2020)")
    print(note + "\n")
    print(table(figures))
    ratios = side_by_side({f.name: f for f in figures})
    if ratios:
        print("\nside by side (× = ÷ physical limit):\n")
        print(ratios)
    print(f"\n({time.perf_counter() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
