"""Pins checked at every run, through the real CLI: an edited module is refused (exit 2,
nothing written, both digests named) by eval and by the gate for its baseline, a function
that does not resolve is refused at register, an edited scorer is not served from the
cache, and an eval killed with SIGKILL is shown as interrupted, then resumes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import REPO, Project, rg

ROUTER = """
def route(message, manifest):
    label = message.rsplit("#", 1)[-1].strip()
    if BROKEN and label == "fraud":
        label = "card_lost"
    return {"label": label, "text": label}


BROKEN = False
"""

SCORER = """
def agrees(case, output):
    return _same(case.expected, output.text)


def _same(expected, text):
    return (text == expected) != INVERTED


INVERTED = False
"""

BLOCKING = '''
import os
import time
from pathlib import Path


def route(message, manifest):
    """The first call says it started, then every call waits for the release file."""
    Path(os.environ["RG_STARTED"]).touch()
    release = Path(os.environ["RG_RELEASE"])
    for _ in range(600):
        if release.exists():
            break
        time.sleep(0.1)
    return message.rsplit("#", 1)[-1].strip()
'''


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(root=tmp_path, fn="pins_router:route")


def ok_json(result: subprocess.CompletedProcess[str]) -> Any:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def outputs_of(root: Path, version_id: str) -> int:
    with sqlite3.connect(root / ".releasegate" / "releasegate.db") as db:
        (n,) = db.execute(
            "SELECT count(*) FROM outputs WHERE version_id = ?", (version_id,)
        ).fetchone()
    return int(n)


def one_line(text: str) -> str:
    return " ".join(text.split())


def test_an_edited_module_is_refused_for_the_baseline_and_the_hint_re_registers(
    project: Project,
) -> None:
    d = project.root
    module = d / "pins_router.py"
    module.write_text(ROUTER)
    old = sha(module)
    v1 = ok_json(rg(d, "register", str(project.workflow("v1")), "--json"))["version_id"]
    project.suite(n=40)
    assert ok_json(rg(d, "eval", v1[:12], "--suite", "suite.yaml", "--json"))["called"] == 40
    assert rg(d, "gate", v1[:12], "--env", "staging").returncode == 0
    assert rg(d, "promote", v1[:12], "--env", "staging").returncode == 0
    before = outputs_of(d, v1)

    module.write_text(ROUTER.replace("BROKEN = False", "BROKEN = True"))  # same id, new code
    new = sha(module)
    evaluated = rg(d, "eval", v1[:12], "--suite", "suite.yaml", "--json")
    assert evaluated.returncode == 2 and evaluated.stdout == ""
    assert "field 'model.source_sha256'" in evaluated.stderr
    assert f"pinned {old}, found {new}" in one_line(evaluated.stderr)

    # a candidate registered after the edit, on a suite the baseline never ran: the gate
    # would evaluate the baseline with the edited code; it refuses instead
    v2 = ok_json(rg(d, "register", str(project.workflow("v2", mode="other")), "--json"))
    v2_id = v2["version_id"]
    assert ok_json(rg(d, "show", v2_id[:12], "--json"))["manifest"]["model"]["source_sha256"] == new
    project.suite(n=48)
    assert ok_json(rg(d, "eval", v2_id[:12], "--suite", "suite.yaml", "--json"))["called"] == 48
    gated = rg(d, "gate", v2_id[:12], "--env", "staging", "--json")
    assert gated.returncode == 2, gated.stderr
    assert gated.stdout == ""
    err = one_line(gated.stderr)
    assert err.startswith(
        f"error: field 'model.source_sha256': the source of pins_router ({module.resolve()}) "
        f"is not what version {v1[:12]} pinned: pinned {old}, found {new}; nothing was run"
    ), err
    assert f"releasegate register {(d / 'v1.yaml').resolve()} --parent {v1[:12]}" in err
    assert "nothing was written" in err
    assert outputs_of(d, v1) == before  # no baseline results under the old id
    shown = ok_json(rg(d, "show", v1[:12], "--json"))
    assert [e["status"] for e in shown["evals"]] == ["completed"]
    assert ok_json(rg(d, "show", v2_id[:12], "--json"))["decisions"] == []

    # the command the message names registers the changed code as a new version
    hint = re.search(r"`(releasegate register [^`]+)`", gated.stderr.replace("\n", " "))
    assert hint is not None
    argv = hint.group(1).split()[1:]
    again = ok_json(rg(d, *argv[:2], "--parent", argv[3], "--reason", "re-pin", "--json"))
    assert again["is_new"] and again["version_id"] not in (v1, v2_id)
    assert again["parent_id"] == v1


def test_a_function_that_does_not_resolve_is_refused_at_register(project: Project) -> None:
    d = project.root
    (d / "pins_router.py").write_text(ROUTER + "\nNOT_CALLABLE = 3\n")
    for name, reason in [
        ("pins_missing:route", "cannot import 'pins_missing': ModuleNotFoundError"),
        ("pins_router:nope", "'pins_router' has no attribute 'nope'"),
        ("pins_router:NOT_CALLABLE", "'pins_router:NOT_CALLABLE' is not callable"),
    ]:
        project.fn = name
        path = project.workflow("wf")
        line = path.read_text().splitlines().index(f"  name: {name}") + 1
        for args in (("register", "wf.yaml"), ("register", "--check", "wf.yaml")):
            result = rg(d, *args)
            assert result.returncode == 2, result.stderr
            assert one_line(result.stderr).startswith(
                f"error: wf.yaml:{line}: field 'model.name': {reason}"
            ), result.stderr
    assert rg(d, "versions", "router").returncode == 2  # nothing was registered


def test_an_edited_scorer_is_not_served_from_the_cache(project: Project) -> None:
    d = project.root
    (d / "pins_router.py").write_text(ROUTER)
    scorer = d / "pins_scorer.py"
    scorer.write_text(SCORER)
    vid = ok_json(rg(d, "register", str(project.workflow("v1")), "--json"))["version_id"]
    project.suite(n=40)
    doc = yaml.safe_load((d / "suite.yaml").read_text())
    doc["scorers"] = [
        {"type": "python", "name": "agrees", "params": {"function": "pins_scorer:agrees"}}
    ]
    (d / "suite.yaml").write_text(yaml.safe_dump(doc))
    first = ok_json(rg(d, "eval", vid[:12], "--suite", "suite.yaml", "--json"))
    assert first["metrics"]["agrees"]["estimate"] == 1.0
    # the function's own lines are unchanged; a constant it reads beside it is not
    scorer.write_text(SCORER.replace("INVERTED = False", "INVERTED = True"))
    second = ok_json(rg(d, "eval", vid[:12], "--suite", "suite.yaml", "--json"))
    assert second["cached"] == 40  # the workflow's outputs are still its own
    assert second["metrics"]["agrees"]["estimate"] == 0.0  # but every verdict is new


def test_a_killed_eval_is_shown_as_interrupted_and_resumes(project: Project) -> None:
    d = project.root
    (d / "pins_router.py").write_text(BLOCKING)
    vid = ok_json(rg(d, "register", str(project.workflow("v1")), "--json"))["version_id"]
    project.suite(n=20)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "RELEASEGATE_ACTOR": "alice",
        "RG_STARTED": str(d / "started"),
        "RG_RELEASE": str(d / "release"),
    }
    env.pop("RELEASEGATE_DATABASE_URL", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "releasegate", "eval", vid[:12], "--suite", "suite.yaml"],
        cwd=d,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(600):  # until the model is being called: the eval row is running
            if (d / "started").exists() or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert (d / "started").exists() and proc.poll() is None
        running = ok_json(rg(d, "show", vid[:12], "--json"))["evals"]
        assert [e["status"] for e in running] == ["running"]  # its process is alive
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    shown = rg(d, "show", vid[:12])
    assert shown.returncode == 0
    assert re.search(r"suite [0-9a-f]{12}\s+interrupted", shown.stdout), shown.stdout
    assert [e["status"] for e in ok_json(rg(d, "show", vid[:12], "--json"))["evals"]] == [
        "interrupted"
    ]
    (d / "release").touch()
    resumed = ok_json(
        rg(
            d,
            "eval",
            vid[:12],
            "--suite",
            "suite.yaml",
            "--json",
            env={"RG_STARTED": str(d / "x"), "RG_RELEASE": str(d / "release")},
        )
    )
    assert resumed["metrics"]["accuracy"]["estimate"] == 1.0
    statuses = [e["status"] for e in ok_json(rg(d, "show", vid[:12], "--json"))["evals"]]
    assert statuses == ["interrupted", "completed"]
