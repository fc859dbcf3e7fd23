"""``suite plan`` and the eval's precision lines through a real subprocess.

Hand-computed answers (see tests/release/test_plan.py): on 40 cases ``broken`` scores
0.75, so alone its mde is Z * sqrt(0.75 * 0.25 / 40) and a margin of 0.1 needs 217 cases
(half a case of continuity correction and the gate's exact pass rate included); paired
against ``sloppy`` they disagree on 20 cases, 10 each way, and it needs 536.
"""

from __future__ import annotations

import json
import math
import subprocess
import threading
from pathlib import Path
from statistics import NormalDist
from typing import Any

import pytest

from tests.helpers import Project, rg

Z = NormalDist().inv_cdf(0.975) + NormalDist().inv_cdf(0.9)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(root=tmp_path)


def ok_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_suite_plan_with_and_without_a_baseline(project: Project) -> None:
    d = project.root
    project.suite(n=40)
    base = ok_json(rg(d, "register", str(project.workflow("base", mode="sloppy")), "--json"))
    cand = ok_json(rg(d, "register", str(project.workflow("cand", mode="broken")), "--json"))
    b, c = base["version_id"][:12], cand["version_id"][:12]

    missing = rg(d, "suite", "plan", c, "--suite", "suite.yaml", "--env", "staging")
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.startswith(f"error: {c} has no eval on suite 'router-core' (")
    assert f"hint: run `releasegate eval {c} --suite suite.yaml` first" in missing.stderr

    assert rg(d, "eval", c, "--suite", "suite.yaml").returncode == 0
    alone = ok_json(
        rg(d, "suite", "plan", c, "--suite", "suite.yaml", "--env", "staging", "--json")
    )
    assert alone["basis"] == "candidate" and alone["baseline_id"] is None
    (acc,) = alone["metrics"]
    assert acc["metric"] == "accuracy" and acc["margin"] == 0.1 and acc["pilot_n"] == 40
    assert acc["sd"] == pytest.approx(math.sqrt(0.1875), abs=1e-6)
    assert acc["mde"] == pytest.approx(Z * math.sqrt(0.1875 / 40), abs=1e-6)
    assert (acc["cases_needed"], acc["add"], acc["verdict"]) == (217, 177, "add 177 cases")

    text = rg(d, "suite", "plan", c, "--suite", "suite.yaml", "--env", "staging")
    assert text.returncode == 0, text.stderr
    for column in ("metric", "pilot n", "sd of scores", "MDE now", "cases needed", "verdict"):
        assert column in text.stdout
    assert "from the candidate's own variance" in text.stdout
    assert "add 177 cases" in text.stdout and "0.433" in text.stdout

    assert rg(d, "eval", b, "--suite", "suite.yaml").returncode == 0
    assert rg(d, "gate", b, "--env", "staging").returncode == 0
    assert rg(d, "promote", b, "--env", "staging").returncode == 0
    paired = ok_json(
        rg(d, "suite", "plan", c, "--suite", "suite.yaml", "--env", "staging", "--json")
    )
    assert paired["basis"] == "paired" and paired["baseline_id"] == base["version_id"]
    (acc,) = paired["metrics"]
    assert acc["sd"] == pytest.approx(math.sqrt(0.5), abs=1e-6)
    assert acc["mde"] == pytest.approx(Z * math.sqrt(20) / 40, abs=1e-6)
    assert (acc["cases_needed"], acc["verdict"]) == (536, "add 496 cases")

    loose = ok_json(
        rg(d, "suite", "plan", c, "--suite", "suite.yaml", "--baseline", b, "--margin", "0.35",
           "--power", "0.8", "--json")
    )  # fmt: skip
    assert loose["env"] is None and loose["basis"] == "paired"
    accuracy = next(m for m in loose["metrics"] if m["metric"] == "accuracy")
    assert (accuracy["cases_needed"], accuracy["verdict"]) == (40, "enough")  # mde 0.313

    bad = rg(d, "suite", "plan", c, "--suite", "suite.yaml", "--margin", "0", "--json")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.startswith(
        "error: field '--margin': must be more than 0 and less than 1, got 0.0"
    )
    no_margin = rg(d, "suite", "plan", c, "--suite", "suite.yaml")
    assert no_margin.returncode == 2
    assert "give --env to read the margin from that environment's policy" in no_margin.stderr


_CALLS: dict[str, int] = {}
_LOCK = threading.Lock()


def flips(message: str) -> str:
    """'wrong' cases are always wrong; 'flip' cases are right on odd calls, wrong on even."""
    label = message.rsplit("#", 1)[-1].strip()
    if message.startswith("wrong"):
        return "other"
    if message.startswith("flip"):
        with _LOCK:
            n = _CALLS[message] = _CALLS.get(message, 0) + 1
        return label if n % 2 else "other"
    return label


def test_eval_output_shows_clusters_epoch_advice_and_flaky_cases(project: Project) -> None:
    d = project.root
    project.fn = "tests.cli.test_plan_cli:flips"
    kinds = ["easy"] * 8 + ["wrong"] * 8 + ["flip"] * 4
    extra = [
        {"id": f"{k}-{i}", "input": f"{k} {i} #fraud", "expected": "fraud", "cluster": f"g{i // 2}"}
        for i, k in enumerate(kinds)
    ]
    project.suite(n=0, extra=extra)
    vid = ok_json(rg(d, "register", str(project.workflow("v1")), "--json"))["version_id"][:12]
    out = rg(d, "eval", vid, "--suite", "suite.yaml", "--epochs", "2", "--concurrency", "1")
    assert out.returncode == 0, out.stderr
    assert "clusters: 10 clusters over 20 cases" in out.stdout
    assert "clustered (10 clusters, CR1, t_9)" in out.stdout
    assert "epochs for accuracy: run 7 epochs (SE " in out.stdout
    assert "flaky: 4 cases passed in some epochs and failed in others" in out.stdout
    assert "~ flip-16: passed 1 of 2 epochs (1 0)" in out.stdout

    again = ok_json(rg(d, "eval", vid, "--suite", "suite.yaml", "--epochs", "2", "--json"))
    assert again["called"] == 0 and again["clusters"] == 10 and again["flaky_total"] == 4
    assert again["flaky"][0] == {
        "case_id": "flip-16",
        "passed": 1,
        "epochs": 2,
        "per_epoch": [1, 0],
    }
    assert again["epoch_advice"]["accuracy"]["epochs"] == 7
