"""The fronts' own cost: what a command pays beyond the service it calls (issue 10).

``python benchmarks/bench_fronts.py [--quick]`` prints one table, each figure the median
of 5 runs (3 with --quick), every run in a fresh temp dir and store:

- ``releasegate eval`` as a new process against a new Python process that calls
  ``evaluate()`` (and, for information, against ``evaluate()`` in this warm process), on
  the same 5,000-case suite with the zero-latency python provider, so the figure is
  releasegate's own overhead: the CLI should stay within 1.3x of the service.
- ``releasegate resolve`` as a new process, cold (bytecode cached, as after
  ``pip install``): at most 0.3 s, beside the floors any Python CLI on this stack pays.
- The first ``monitor()`` call in a fresh process against the second (the work itself),
  and the import time the first call spends on modules the call never runs: every
  module imported during the first call whose code does not run during the second
  (``-X importtime`` for the time, ``sys.setprofile`` for what runs; a library counts
  as used when any of its modules runs, and so does each of our subpackages). Their sum should
  be about zero (at most 10 ms); the table names the biggest.

Rows marked "info" have no target. Speed lives here, never in test asserts.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_loop import (
    BIN,
    ENV,
    FRAMEWORK_FLOOR,
    N_CASES,
    WORKFLOW,
    Figure,
    _wall,
    cold_env,
    project,
    run_benches,
    ship,
    suite_file,
    workflow_file,
)
from releasegate.release.evaluate import evaluate
from releasegate.release.register import register

EVAL_RATIO_TARGET = 1.3
RESOLVE_TARGET = 0.3
UNUSED_IMPORTS_TARGET_MS = 10.0  # zero, give or take the clock of -X importtime
MONITOR_RUNS = 2_000  # production runs in the store the monitor reads (two weeks)


# -- eval: the CLI against the service ---------------------------------------------------------


SCRIPT_EVAL = """
import sys
from pathlib import Path
from releasegate.release.evaluate import evaluate
from releasegate.store.engine import Store
evaluate(Store.open(Path.cwd()), sys.argv[1], Path(sys.argv[2]), use_cache=False)
"""


def bench_eval_cli(runs: int) -> list[Figure]:
    """The same eval three ways, each on a fresh store: ``releasegate eval`` as a new process;
    a new Python process that imports ``evaluate`` and calls it (the same work with no CLI
    around it: the limit the CLI is held to); ``evaluate()`` in this warm process."""
    warm, script, cli = [], [], []
    outer_path = os.environ.get("PYTHONPATH")
    pycache = Path(tempfile.mkdtemp(prefix="rg-bench-pycache-"))
    env = cold_env(pycache)

    def fresh() -> tuple[Path, str, Path]:
        vid = register(store, workflow_file(root, 0), who="alice").version_id
        return root, vid, suite_file(root, N_CASES)

    try:
        for i in range(runs):
            with project() as (root, store):
                _, vid, suite = fresh()
                t0 = time.perf_counter()
                done = evaluate(store, vid, suite, who="alice", use_cache=False)
                warm.append(time.perf_counter() - t0)
                assert done.n_called == N_CASES, done
            for way, times in (("script", script), ("cli", cli)):
                with project() as (root, store):
                    _, vid, suite = fresh()
                    store.close()
                    # benchmod, the workflow's code (before any PYTHONPATH the caller set)
                    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), outer_path]))
                    cmd = (
                        [sys.executable, "-c", SCRIPT_EVAL, vid, suite.name]
                        if way == "script"
                        else [str(BIN / "releasegate"), "eval", vid[:12], "--suite", suite.name]
                        + ["--no-cache", "--json"]
                    )
                    if i == 0:  # fills the bytecode cache, as `pip install` would have
                        _wall(cmd, root, env)
                    times.append(_wall(cmd, root, env))
    finally:
        shutil.rmtree(pycache, ignore_errors=True)
    ratio = tuple(c / s for c, s in zip(cli, script, strict=True))
    return [
        Figure(
            f"`releasegate eval` ({N_CASES:,} cases) / a script calling evaluate()",
            "x",
            ratio,
            target=EVAL_RATIO_TARGET,
        ),
        Figure("  `releasegate eval ... --no-cache --json`, new process", "s", tuple(cli)),
        Figure("  python -c 'evaluate(...)', new process (the limit)", "s", tuple(script)),
        Figure("  evaluate() in this warm process (imports already paid)", "s", tuple(warm)),
        Figure(
            "  `releasegate eval` / warm evaluate()",
            "x",
            tuple(c / w for c, w in zip(cli, warm, strict=True)),
        ),
    ]


# -- resolve, cold -------------------------------------------------------------------------------


def bench_resolve_cold(runs: int) -> list[Figure]:
    cli = [str(BIN / "releasegate"), "resolve", WORKFLOW, "--env", ENV]
    framework = [sys.executable, "-c", FRAMEWORK_FLOOR]
    pycache = Path(tempfile.mkdtemp(prefix="rg-bench-pycache-"))
    env = cold_env(pycache)
    cold, floor = [], []
    try:
        for i in range(runs):
            with project() as (root, store):
                ship(root, store)
                if i == 0:
                    _wall(cli, root, env), _wall(framework, root, env)
                cold.append(statistics.median(_wall(cli, root, env) for _ in range(3)))
                floor.append(_wall(framework, root, env))
    finally:
        shutil.rmtree(pycache, ignore_errors=True)
    return [
        Figure("`releasegate resolve WF --env production`, cold", "s", tuple(cold), RESOLVE_TARGET),
        Figure("  floor: a one-command typer app importing sqlalchemy", "s", tuple(floor)),
    ]


# -- monitor: what the first call imports and never runs --------------------------------------

MONITOR_PROBE = r"""
import json, sys, time
from pathlib import Path

from releasegate.store.engine import Store

store = Store.open(Path.cwd())
before = set(sys.modules)
t0 = time.perf_counter()
from releasegate.monitor.service import monitor
monitor(store, "bench", "production", embeddings=False, alert=False)
first = time.perf_counter() - t0
imported = sorted(set(sys.modules) - before)

ran = set()
def seen(frame, event, arg):
    ran.add(frame.f_code.co_filename)
sys.setprofile(seen)
t0 = time.perf_counter()
monitor(store, "bench", "production", embeddings=False, alert=False)
second = time.perf_counter() - t0
sys.setprofile(None)
files = {m: getattr(sys.modules[m], "__file__", None) for m in imported if m in sys.modules}
def group(m):  # a library as a whole (numpy runs, so all of it counts), ours by subpackage
    return ".".join(m.split(".")[:2]) if m.startswith("releasegate.") else m.split(".")[0]
used = {group(m) for m, f in files.items() if f in ran}
unused = sorted(m for m in files if group(m) not in used)
print(json.dumps({"first": first, "second": second, "imported": imported, "unused": unused}))
"""


def monitor_store(root: Path) -> None:
    """A shipped version with two weeks of production runs (a few labels, some errors)."""
    from releasegate.monitor.ingest import ingest_dicts
    from releasegate.store.engine import Store

    store = Store.open(root)
    try:
        vid = ship(root, store)
        now = time.time()
        runs = [
            {
                "run_id": f"run-{i:06d}",
                "workflow": WORKFLOW,
                "version_id": vid,
                "env": ENV,
                "started_at": now - 14 * 86400 + i * (14 * 86400 - 60) / MONITOR_RUNS,
                "latency_ms": 20.0 + (i * 7919) % 50,
                "status": "error" if i % 37 == 0 else "ok",
                "failure_reason": "upstream timeout" if i % 37 == 0 else None,
                "input": f"message {i % 300}",
                "output": ("fraud", "card_lost", "complaint")[i % 3],
                "label": ("fraud", "card_lost", "complaint")[i % 3],
            }
            for i in range(MONITOR_RUNS)
        ]
        landed = ingest_dicts(store, runs, source="http")
        assert landed.landed == MONITOR_RUNS, landed.rejected[:3]
    finally:
        store.close()


def import_times(root: Path, env: dict[str, str]) -> dict[str, int]:
    """Module -> its own import time in microseconds, in the probe's process."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", MONITOR_PROBE],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    own: dict[str, int] = {}
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "cumulative" not in line:
            self_us, _, module = line.removeprefix("import time:").split("|")
            own[module.strip()] = int(self_us)
    return own


def bench_monitor_first_call(runs: int) -> list[Figure]:
    first, second, unused_ms, used_ms = [], [], [], []
    offenders: dict[str, list[float]] = {}
    pycache = Path(tempfile.mkdtemp(prefix="rg-bench-pycache-"))
    env = cold_env(pycache)
    try:
        for i in range(runs):
            with project() as (root, store):
                store.close()
                monitor_store(root)
                cmd = [sys.executable, "-c", MONITOR_PROBE]
                if i == 0:
                    subprocess.run(cmd, cwd=root, env=env, capture_output=True, check=True)
                out = subprocess.run(
                    cmd, cwd=root, env=env, capture_output=True, text=True, check=True
                )
                probe = json.loads(out.stdout.strip().splitlines()[-1])
                own = import_times(root, env)
                first.append(probe["first"])
                second.append(probe["second"])
                unused = set(probe["unused"])
                unused_ms.append(sum(own.get(m, 0) for m in unused) / 1000)
                used_ms.append(
                    sum(own.get(m, 0) for m in probe["imported"] if m not in unused) / 1000
                )
                for top in {m.split(".")[0] for m in unused}:
                    ms = sum(own.get(m, 0) for m in unused if m.split(".")[0] == top) / 1000
                    offenders.setdefault(top, []).append(ms)
    finally:
        shutil.rmtree(pycache, ignore_errors=True)
    biggest = sorted(offenders.items(), key=lambda kv: -statistics.median(kv[1]))[:6]
    return [
        Figure(
            "first monitor() in a process: imports of modules it never runs",
            "ms",
            tuple(unused_ms),
            target=UNUSED_IMPORTS_TARGET_MS,
        ),
        *(
            Figure(f"    of which {name}.*", "ms", tuple(v + [0.0] * (runs - len(v))))
            for name, v in biggest
        ),
        Figure("  imports of modules it runs", "ms", tuple(used_ms)),
        Figure("  first monitor() call, imports included", "s", tuple(first)),
        Figure("  second monitor() call: the work (the limit)", "s", tuple(second)),
    ]


def main() -> None:
    run_benches(
        "The fronts' own cost, against its targets.",
        (bench_eval_cli, bench_resolve_cold, bench_monitor_first_call),
    )


if __name__ == "__main__":
    main()
