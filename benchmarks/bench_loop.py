"""The release loop's speed: register, resolve (hot and cold), evaluate (cold and cached).

``python benchmarks/bench_loop.py [--quick]`` prints one table: each figure is
the median of 5 runs (3 with --quick), every run in a fresh temp dir with a
fresh embedded SQLite store, measured end to end through the public services
(``register``, ``Resolver``/``resolve``, ``evaluate``) or the installed
``releasegate`` command. Rows marked "info" have no target: they are floors or
context for the row above. Diagnostics (import-time offenders) go to stderr.
Speed lives here, never in test asserts.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from releasegate.release.evaluate import evaluate, read_suite
from releasegate.release.gate import gate
from releasegate.release.promote import promote
from releasegate.release.register import read_workflow, register
from releasegate.release.resolve import Resolver, resolve
from releasegate.store.engine import Store

WORKFLOW = "bench"
ENV = "production"
N_VERSIONS = 1_000
N_CASES = 5_000
N_HOT_CALLS = 200_000
N_UNCACHED_CALLS = 1_000
COLD_CALLS_PER_RUN = 3
COLD_TARGET = 0.4
LABELS = ("fraud", "card_lost", "complaint", "transfer")
BIN = Path(sys.executable).parent

# What any typer CLI over SQLAlchemy pays before doing anything: the floor for a cold command.
FRAMEWORK_FLOOR = """\
import sqlalchemy, typer
app = typer.Typer(add_completion=False)
@app.command()
def resolve(workflow: str, env: str = typer.Option(...)) -> None:
    print(workflow, env)
app(["wf", "--env", "production"], standalone_mode=False)
"""

# A zero-latency workflow-as-code: the label is the word after '#'.
BENCHMOD = """\
def route(message):
    return {"label": message.rsplit("#", 1)[-1]}
"""


@dataclass(frozen=True)
class Figure:
    name: str
    unit: str
    runs: tuple[float, ...]
    target: float | None = None  # None: information only
    higher_is_better: bool = False

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def ratio(self) -> float | None:
        if self.target is None:
            return None
        return self.target / self.median if self.higher_is_better else self.median / self.target

    @property
    def status(self) -> str:
        if self.ratio is None:
            return "info"
        return "ok" if self.ratio <= 1.0 else "MISSED"


# -- fixtures: a temp project with a store, workflow files and a suite -----------------------


@contextlib.contextmanager
def project() -> Iterator[tuple[Path, Store]]:
    """A fresh temp dir holding ``benchmod.py`` (importable) and a fresh embedded store."""
    root = Path(tempfile.mkdtemp(prefix="rg-bench-"))
    (root / "benchmod.py").write_text(BENCHMOD)
    sys.modules.pop("benchmod", None)
    sys.path.insert(0, str(root))
    store = Store.open(root)
    try:
        yield root, store
    finally:
        store.close()
        sys.path.remove(str(root))
        sys.modules.pop("benchmod", None)
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def temp_pg_database(server: str) -> Iterator[str]:
    """A fresh PostgreSQL database at the schema head on ``server`` (an admin URL such as
    ``postgresql+psycopg://postgres@127.0.0.1:5432``), its URL yielded, dropped after."""
    import sqlalchemy as sa

    from releasegate.store.migrate import upgrade

    name = f"rg_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = f"{server}/{name}"
    try:
        engine = sa.create_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def store_run_rows(store: Store, rows: list[tuple[Any, ...]], batch: int = 50_000) -> None:
    """Stored ``runs`` rows (``store.runs.RUN_COLUMNS`` order) in one bulk transaction, as
    the benchmarks that need a million runs behind a command build their stores."""
    from releasegate.store.runs import RunRepo

    with store.write() as conn:
        repo = RunRepo(conn)
        with repo.bulk():
            for i in range(0, len(rows), batch):
                repo.insert_many(rows[i : i + batch])


def workflow_file(root: Path, i: int) -> Path:
    doc = {
        "workflow": WORKFLOW,
        "stakes": "low",
        "owners": {"change": "alice", "approvers": ["bob"]},
        "model": {"provider": "python", "name": "benchmod:route"},
        "prompts": {"system": "Route the message to one queue."},
        "generation": {"temperature": round(i / N_VERSIONS, 6), "max_tokens": 64},
        "policy": {
            "staging": {"floors": {"accuracy": 0.5}},
            "production": {"floors": {"accuracy": 0.5}},
        },
    }
    path = root / f"v{i:04d}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def suite_file(root: Path, n: int) -> Path:
    rows = [
        {"id": f"c{i:05d}", "input": f"message {i} #{LABELS[i % 4]}", "expected": LABELS[i % 4]}
        for i in range(n)
    ]
    (root / f"cases{n}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    doc = {
        "suite": f"bench-{n}",
        "workflow": WORKFLOW,
        "cases": f"cases{n}.jsonl",
        "scorers": [{"type": "label_accuracy", "name": "accuracy"}],
    }
    path = root / f"suite{n}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def ship(root: Path, store: Store) -> str:
    """Register, evaluate (20 cases), gate and promote one version into production."""
    vid = register(store, workflow_file(root, 0), who="alice").version_id
    evaluate(store, vid, suite_file(root, 20), who="alice")
    decision = gate(store, vid, ENV, who="ci")
    assert decision.verdict == "pass", decision.report.to_json()["reasons"]
    promote(store, vid, ENV, who="alice")
    return vid


# -- the figures ------------------------------------------------------------------------------


def bench_register(runs: int) -> list[Figure]:
    per_call, mean, floor = [], [], []
    for _ in range(runs):
        with project() as (root, store):
            paths = [workflow_file(root, i) for i in range(N_VERSIONS)]
            times = []
            for path in paths:
                t0 = time.perf_counter()
                result = register(store, path, who="alice")
                times.append(time.perf_counter() - t0)
                assert result.is_new
            per_call.append(statistics.median(times) * 1e3)
            mean.append(sum(times) / len(times) * 1e3)
            parse = []
            for path in paths[:200]:
                t0 = time.perf_counter()
                read_workflow(path).version_id  # noqa: B018  (the hash is the work)
                parse.append(time.perf_counter() - t0)
            floor.append(statistics.median(parse) * 1e3)
    return [
        Figure(
            f"register: median per version ({N_VERSIONS:,} distinct)",
            "ms",
            tuple(per_call),
            target=5.0,
        ),
        Figure("  mean per version (same runs)", "ms", tuple(mean)),
        Figure(
            "  of which read_workflow: read, parse, validate, hash (no store)", "ms", tuple(floor)
        ),
    ]


def bench_resolve_hot(runs: int) -> list[Figure]:
    hot, uncached = [], []
    for _ in range(runs):
        with project() as (root, store):
            vid = ship(root, store)
            resolver = Resolver(store)
            assert resolver(WORKFLOW, ENV).version_id == vid  # the first call fills the cache
            t0 = time.perf_counter()
            for _ in range(N_HOT_CALLS):
                resolver(WORKFLOW, ENV)
            hot.append((time.perf_counter() - t0) / N_HOT_CALLS * 1e6)
            t0 = time.perf_counter()
            for _ in range(N_UNCACHED_CALLS):
                resolve(store, WORKFLOW, ENV)
            uncached.append((time.perf_counter() - t0) / N_UNCACHED_CALLS * 1e6)
    return [
        Figure("resolve in-process, hot: Resolver(store)(wf, env)", "µs", tuple(hot), target=20.0),
        Figure("  uncached: resolve(store, wf, env), one read transaction", "µs", tuple(uncached)),
    ]


def _wall(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()}")
    return wall


def bench_resolve_cold(runs: int) -> list[Figure]:
    cli = [str(BIN / "releasegate"), "resolve", WORKFLOW, "--env", ENV]
    floors = {
        "floor: `python -c pass` (interpreter start)": [sys.executable, "-c", "pass"],
        "floor: a one-command typer app importing sqlalchemy (the CLI's framework)": [
            sys.executable,
            "-c",
            FRAMEWORK_FLOOR,
        ],
    }
    pycache = Path(tempfile.mkdtemp(prefix="rg-bench-pycache-"))
    env = cold_env(pycache)
    cold: list[float] = []
    floor: dict[str, list[float]] = {name: [] for name in floors}
    try:
        for i in range(runs):
            with project() as (root, store):
                ship(root, store)
                if i == 0:  # fills the bytecode cache, as `pip install` would have
                    for cmd in [cli, *floors.values()]:
                        _wall(cmd, root, env)
                cold.append(
                    statistics.median(_wall(cli, root, env) for _ in range(COLD_CALLS_PER_RUN))
                )
                for name, cmd in floors.items():
                    floor[name].append(_wall(cmd, root, env))
                if i == runs - 1 and statistics.median(cold) > COLD_TARGET:
                    import_offenders(cli, root, env)
    finally:
        shutil.rmtree(pycache, ignore_errors=True)
    return [
        Figure(
            "`releasegate resolve WF --env production`, cold process",
            "s",
            tuple(cold),
            target=COLD_TARGET,
        ),
        *(Figure("  " + name, "s", tuple(v)) for name, v in floor.items()),
    ]


def cold_env(pycache: Path) -> dict[str, str]:
    """The environment of a user's shell: bytecode cached (in a temp dir, not the repo)."""
    env = dict(os.environ)
    for name in ("RELEASEGATE_DATABASE_URL", "RELEASEGATE_DIR", "PYTHONDONTWRITEBYTECODE"):
        env.pop(name, None)
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def import_offenders(cli: list[str], cwd: Path, env: dict[str, str], top: int = 12) -> None:
    """``python -X importtime`` of the cold command: the biggest cumulative imports, to stderr."""
    script = (
        f"import sys; sys.argv = {['releasegate', *cli[1:]]!r}; "
        "from releasegate.cli import main; main()"
    )
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
    )
    rows: list[tuple[int, int, int, str]] = []  # (cumulative us, self us, depth, module)
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        own_us, cum_us, module = line.removeprefix("import time:").split("|")
        depth = (len(module) - len(module.lstrip()) - 1) // 2
        rows.append((int(cum_us), int(own_us), depth, module.strip()))
    top_level = sorted((r for r in rows if r[2] == 0), reverse=True)[:top]
    print(
        "\ncold resolve missed its target; top-level imports by cumulative time "
        "(python -X importtime):",
        file=sys.stderr,
    )
    for cum, own, _, name in top_level:
        print(
            f"  {cum / 1000:8.1f} ms cumulative {own / 1000:7.1f} ms self  {name}", file=sys.stderr
        )
    heavy = sorted((r for r in rows if r[2] > 0), reverse=True)[:top]
    print("  heaviest nested imports:", file=sys.stderr)
    for cum, own, depth, name in heavy:
        print(
            f"  {cum / 1000:8.1f} ms cumulative {own / 1000:7.1f} ms self  {'  ' * depth}{name}",
            file=sys.stderr,
        )


def bench_evaluate(runs: int) -> list[Figure]:
    cold, cached, floor = [], [], []
    for _ in range(runs):
        with project() as (root, store):
            vid = register(store, workflow_file(root, 0), who="alice").version_id
            suite = suite_file(root, N_CASES)
            t0 = time.perf_counter()
            first = evaluate(store, vid, suite, who="alice")
            cold.append(N_CASES / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            again = evaluate(store, vid, suite, who="alice")
            cached.append(N_CASES / (time.perf_counter() - t0))
            assert (first.n_called, first.n_cached) == (N_CASES, 0), first
            assert (again.n_called, again.n_cached) == (0, N_CASES), again
            assert first.summary["metrics"]["accuracy"]["estimate"] == 1.0
            t0 = time.perf_counter()
            read_suite(suite).suite_id  # noqa: B018  (the hash is the work)
            floor.append(N_CASES / (time.perf_counter() - t0))
    return [
        Figure(
            f"eval overhead, cold ({N_CASES:,} cases, python provider)",
            "cases/s",
            tuple(cold),
            target=3_000,
            higher_is_better=True,
        ),
        Figure(
            "eval re-run, fully cached (same suite)",
            "cases/s",
            tuple(cached),
            target=20_000,
            higher_is_better=True,
        ),
        Figure(
            "  ceiling: read_suite + suite_id alone (no store, no eval)", "cases/s", tuple(floor)
        ),
    ]


# -- the table ---------------------------------------------------------------------------------


def fmt(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    text = f"{value:,.0f}" if value >= 1000 else f"{value:.3g}" if value < 10 else f"{value:.1f}"
    return f"{text} {unit}".strip()


def target_text(f: Figure) -> str:
    if f.target is None:
        return "—"
    return ("≥ " if f.higher_is_better else "≤ ") + fmt(f.target, f.unit)


def table(figures: list[Figure]) -> str:
    head = ("figure", "measured (median)", "target", "ratio", "status")
    rows = [
        (
            f.name,
            fmt(f.median, f.unit),
            target_text(f),
            "—" if f.ratio is None else f"{f.ratio:.2f}",
            f.status,
        )
        for f in figures
    ]
    return markdown(head, rows)


def markdown(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    """A Markdown table with its columns padded, readable as plain text too."""
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |"
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    ]
    return "\n".join([line, rule, *body])


def machine() -> str:
    import sqlite3

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"machine: nproc {cpus}, "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, {platform.system()} {platform.machine()}; "
        f"store and files in {tempfile.gettempdir()}"
    )


def load() -> str:
    if not hasattr(os, "getloadavg"):
        return "load average unknown"
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


BENCHES: tuple[Callable[[int], list[Figure]], ...] = (
    bench_register,
    bench_resolve_hot,
    bench_resolve_cold,
    bench_evaluate,
)


def main() -> None:
    run_benches("The release loop's speed, against its targets.", BENCHES)


def run_benches(description: str, benches: tuple[Callable[[int], list[Figure]], ...]) -> None:
    """Parse ``--quick``, run every bench and print the machine, the load and the table."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="3 runs per figure instead of 5")
    args = parser.parse_args()
    runs = 3 if args.quick else 5
    os.environ.setdefault("RELEASEGATE_ACTOR", "bench")
    started = time.perf_counter()
    load_before = load()
    figures: list[Figure] = []
    for bench in benches:
        figures.extend(bench(runs))
    print(machine())
    print(f"{load_before} before, {load()} after (other work on the machine inflates wall times)")
    print(
        f"median of {runs} runs per figure, each in a fresh temp dir and store; "
        f"ratio = measured/target (throughput: target/measured), <= 1.0 is good\n"
    )
    print(table(figures))
    print(f"\n({time.perf_counter() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
