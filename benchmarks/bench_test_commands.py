"""What one CLI command costs a test: a new interpreter against a fork (tests/forkrun.py).

``python benchmarks/bench_test_commands.py [--runs N]`` prints one table: for a few
commands the tests run most (on a project with one registered version and an 80-case
suite, the tests' ``Project``), the median wall time of ``tests.helpers.rg`` starting a new
interpreter (``fresh=True``, as every test command did before) and forking one from the
test session's command server, median of N runs (default 7) each, alternating, beside the
machine's load average. Speed lives here, never in test asserts.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers import Project, register, rg  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory(prefix="rg-bench-cmd-") as tmp:
        project = Project(root=Path(tmp))
        vid = register(project.root, project.workflow("v1"))
        project.suite()
        commands = [
            ("--version",),
            ("versions", "router", "--json"),
            ("show", vid[:12], "--json"),
            ("eval", vid[:12], "--suite", "suite.yaml", "--json"),  # 80 cases, cached
            ("gate", vid[:12], "--env", "staging", "--json"),
        ]
        rg(project.root, "--version")  # the command server starts once per session
        print(f"load average before: {os.getloadavg()[0]:.1f}")
        print(f"{'command':<34} {'new interpreter s':>18} {'forked s':>9} {'ratio':>6}")
        for argv in commands:
            fresh, forked = [], []
            for _ in range(runs):
                for times, new in ((fresh, True), (forked, False)):
                    started = time.perf_counter()
                    done = rg(project.root, *argv, fresh=new)
                    times.append(time.perf_counter() - started)
                    assert done.returncode in (0, 1), done.stderr
            a, b = statistics.median(fresh), statistics.median(forked)
            name = " ".join(argv[:2])
            print(f"{name:<34} {a:>18.2f} {b:>9.2f} {a / b:>6.1f}")
        print(f"load average after: {os.getloadavg()[0]:.1f}  (median of {runs} runs each)")


if __name__ == "__main__":
    main()
