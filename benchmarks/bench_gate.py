"""A gate whose evals are all stored: the demo's 300-case suite, v2 against v1 in staging.

``python benchmarks/bench_gate.py [--runs N]`` copies the demo project into a temp dir,
registers v1 and v2, evaluates both on the demo suite with the embedded model (untimed),
gates v1 into staging and promotes it, then times ``gate(store, v2, "staging")`` N times
(default 7): every output and score comes from the store, so the figure is the gate's own
work (reading the evals, the paired statistics, the typed report, the write). It also
times ``releasegate report gate V2 --env staging --format json`` and ``releasegate gate``
as new processes, for information. Target: <= 0.5 s wall per in-process gate.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from releasegate.cli.demo import _copy_project
from releasegate.release.evaluate import evaluate
from releasegate.release.gate import gate
from releasegate.release.promote import approve, promote
from releasegate.release.register import register
from releasegate.store.engine import Store, locate

TARGET_S = 0.5
BIN = Path(sys.executable).parent


def _setup(root: Path) -> tuple[Store, str]:
    _copy_project(root)
    os.environ.pop("RELEASEGATE_DATABASE_URL", None)
    store = Store.open(location=locate(root))
    suite = root / "suite.yaml"
    v1 = register(store, root / "v1.yaml", reason="v1", who="alice").version_id
    v2 = register(store, root / "v2.yaml", reason="v2", who="alice").version_id
    evaluate(store, v1, suite, who="alice")
    evaluate(store, v2, suite, who="alice")
    gate(store, v1, "staging", who="ci")
    approve(store, v1, "staging", approver="bob")
    approve(store, v1, "staging", approver="dana")
    promote(store, v1, "staging", who="alice")
    return store, v2


def _cli(root: Path, *args: str) -> float:
    started = time.perf_counter()
    subprocess.run([str(BIN / "releasegate"), *args], cwd=root, capture_output=True, check=False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        store, v2 = _setup(root)
        gate(store, v2, "staging", who="ci")  # untimed: warms imports and the page cache
        walls = []
        for _ in range(runs):
            started = time.perf_counter()
            outcome = gate(store, v2, "staging", who="ci")
            walls.append(time.perf_counter() - started)
        cold_gate = [_cli(root, "gate", v2[:12], "--env", "staging", "--json") for _ in range(3)]
        cold_report = [
            _cli(root, "report", "gate", v2[:12], "--env", "staging", "--format", "json")
            for _ in range(3)
        ]
    median = statistics.median(walls)
    print(f"# releasegate gate benchmark: demo suite, all evals stored, {runs} runs")
    print(f"# load average {load_before} before, {os.getloadavg()} after")
    print(f"# verdict of the timed gate: {outcome.verdict}")
    print(
        f"gate(v2, staging) in-process   median {median:.3f} s  min {min(walls):.3f} s  "
        f"target <= {TARGET_S} s  ratio {median / TARGET_S:.2f}"
    )
    print(
        "`releasegate gate --json`, cold process         "
        f"median {statistics.median(cold_gate):.3f} s (info)"
    )
    print(
        "`releasegate report gate --format json`, cold   "
        f"median {statistics.median(cold_report):.3f} s (info)"
    )


if __name__ == "__main__":
    main()
