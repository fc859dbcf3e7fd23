"""What CI reads agrees with the verdict, and never carries a secret, through a real
subprocess: JUnit for must-pass cases a policy ignores, and a judge that echoes a key."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import REPO, Project, judge_suite, ok_json, register, rg
from tests.runner.test_judge import KEY_ENV, JudgeServer

LEAKED = "sk-live-4f9a8b7c6d5e4f3a2b1c"


def test_junit_writes_must_pass_cases_the_policy_ignores_as_skipped(tmp_path: Path) -> None:
    project = Project(root=tmp_path)
    d = project.root
    policy = {"floors": {"accuracy": 0.5}, "must_pass": False}
    path = project.workflow("v1", mode="broken", policy=policy)  # fraud read as card_lost
    vid = register(d, path)
    project.suite()
    assert rg(d, "eval", vid, "--suite", "suite.yaml").returncode == 0
    gate = rg(d, "gate", vid, "--env", "staging", "--junit", "junit.xml", "--report", "gate.md")
    assert gate.returncode == 0, gate.stdout + gate.stderr  # the policy does not gate on them

    root = ET.parse(d / "junit.xml").getroot()
    suite = root.find("testsuite")
    assert suite is not None
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["verdict"] == "pass" and props["must_pass_enforced"] == "false"
    assert root.get("failures") == "0" == suite.get("failures")  # CI is green where the gate is
    ignored = [c for c in suite.findall("testcase") if c.get("classname") == "gate.must_pass"]
    assert ignored and all(c.find("failure") is None for c in ignored)
    skipped = [c.find("skipped") for c in ignored]
    assert all(
        s is not None and "does not enforce must-pass" in s.get("message", "") for s in skipped
    )
    assert int(suite.get("skipped", "0")) >= len(ignored)
    assert "Ignored: the staging policy does not enforce must-pass" in (d / "gate.md").read_text()


@pytest.fixture
def leaky_judge(monkeypatch: pytest.MonkeyPatch) -> Iterator[JudgeServer]:
    """A compromised judge endpoint: it answers with prose that echoes a key."""
    server = JudgeServer(
        monkeypatch,
        lambda prompt: f"I refuse. Authorization: Bearer {LEAKED} (api_key={LEAKED})",
    )
    yield server
    server.server.stop()


def test_a_judge_answer_that_echoes_a_key_is_masked_everywhere_it_is_quoted(
    tmp_path: Path, leaky_judge: JudgeServer
) -> None:
    project = Project(root=tmp_path, fn="tests.runner.test_judge:reply")
    d = project.root
    path = project.workflow("v1", policy={"floors": {"polite": 0.5}})
    vid = register(d, path)
    rows = [{"id": f"c{i}", "input": f"question {i}", "must_pass": True} for i in range(3)]
    judge_suite(d, leaky_judge.model(), rows)
    env = {KEY_ENV: "sk-judge-test"}

    evaluated = rg(d, "eval", vid, "--suite", "suite.yaml", env=env)
    assert evaluated.returncode == 0, evaluated.stderr
    gate = rg(
        d, "gate", vid, "--env", "staging", "--junit", "junit.xml", "--report", "gate.md", "--json"
    )
    assert gate.returncode == 1  # every must-pass case failed: the gate says no
    junit = (d / "junit.xml").read_text()
    report = (d / "gate.md").read_text()
    assert "no JSON object with 'score'" in junit  # the reason stays readable
    assert "Bearer ***" in junit and r"Bearer \*\*\*" in report  # Markdown escapes the stars
    for where in (evaluated.stdout, evaluated.stderr, gate.stdout, junit, report):
        assert LEAKED not in where


def test_judge_verdicts_given_before_ctrl_c_are_kept_and_not_asked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    released = threading.Event()
    asked_fourth = threading.Event()
    answered = 3
    calls: list[str] = []
    lock = threading.Lock()

    def answer(prompt: str) -> str:
        with lock:
            calls.append(prompt)
            nth = len(calls)
        if nth > answered:  # the 4th verdict never comes...
            asked_fourth.set()
            released.wait(60)
        return json.dumps({"score": 1, "reason": "polite"})

    server = JudgeServer(monkeypatch, answer)
    try:
        project = Project(root=tmp_path, fn="tests.runner.test_judge:reply")
        d = project.root
        path = project.workflow("v1", policy={"floors": {"polite": 0.5}})
        vid = register(d, path)
        judge_suite(
            d, server.model(), [{"id": f"c{i}", "input": f"question {i}"} for i in range(6)]
        )
        env = {**os.environ, "PYTHONPATH": str(REPO), KEY_ENV: "sk-judge-test"}
        env.pop("RELEASEGATE_DATABASE_URL", None)
        argv = ["eval", vid, "--suite", "suite.yaml", "--concurrency", "1"]
        first = subprocess.Popen(
            [sys.executable, "-m", "releasegate", *argv],
            cwd=d,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        # ...so with one judge call at a time, three verdicts are in when the 4th is asked
        while not asked_fourth.is_set() and first.poll() is None:
            time.sleep(0.05)
        first.send_signal(signal.SIGINT)  # Ctrl-C
        _, err = first.communicate(timeout=60)
        assert first.returncode == 130, err
        assert "3 judge verdicts kept" in err
        released.set()

        before = len(calls)
        resumed = ok_json(rg(d, *argv, "--json", env={KEY_ENV: "sk-judge-test"}))
        assert len(calls) - before == 6 - answered  # only the unjudged
        assert resumed["metrics"]["polite"]["estimate"] == 1.0
    finally:
        released.set()
        server.server.stop()
