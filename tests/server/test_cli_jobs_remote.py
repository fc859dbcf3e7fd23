"""The verbs a server runs as jobs, through the CLI (``RELEASEGATE_URL``): ``compare``,
``rehearse``, ``rollout shadow-replay`` and a ``gate`` that evaluates the baseline first,
each run in a subprocess twice from the same state, once on a copy of the store and once
through the real server over the original (it answers 202, the CLI polls the job), print
the same stdout and exit with the same code, refusals and bad input included."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from releasegate.monitor.ingest import ingest_dicts
from releasegate.release.evaluate import evaluate
from tests.helpers import Project, project_copy, rg
from tests.server.test_compare_rehearse_api import Judged, served_runs
from tests.server.test_compare_rehearse_api import judged as judged  # a fixture
from tests.server.test_loop_api import home

TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(\+00:00|Z)?")
VARIES = [
    (re.compile(r"rehearsal [0-9a-f]{12}"), "rehearsal <id>"),
    (re.compile(r"\d+\.\d\d s\b"), "<seconds>"),
    (re.compile(r"candidate \d+\.\d ms here"), "candidate <ms> here"),
    (TIME, "<time>"),
]
"""What differs between two runs of one verb by design: a rehearsal's id, how long it took,
the latency a replay measured."""


class Case(NamedTuple):
    argv: tuple[str, ...]
    who: str
    code: int
    ignore: tuple[str, ...] = ()
    """Keys of the JSON document that differ by design (ids and times of each run)."""


REHEARSAL = ("rehearsal_id", "started_at", "finished_at", "time_to_detect_s", "time_to_revert_s")
JUDGED = ("--suite", "answers.yaml", "--judge", "judge.yaml")
CASES = {
    "compare --json": Case(("compare", "{long}", "{short}", *JUDGED, "--json"), "builder", 0),
    "compare table": Case(("compare", "{short}", "{long}", *JUDGED), "builder", 0),
    "compare not evaluated": Case(("compare", "{flaky}", "{short}", *JUDGED), "builder", 2),
    "compare one version": Case(("compare", "{long}", "{long}", *JUDGED, "--json"), "builder", 2),
    "compare no judge file": Case(
        ("compare", "{long}", "{short}", "--suite", "answers.yaml", "--judge", "nope.yaml"),
        "builder",
        2,
    ),
    "rehearse --json": Case(
        ("rehearse", "router", "--env", "staging", "--suite", "wider.yaml", "--json"),
        "operator",
        1,
        REHEARSAL,
    ),
    "rehearse table": Case(("rehearse", "router", "--env", "staging"), "operator", 1),
    "rehearse production": Case(("rehearse", "router", "--env", "production"), "operator", 1),
    "rehearse unknown env": Case(("rehearse", "router", "--env", "qa", "--json"), "operator", 2),
    "shadow-replay --json": Case(
        ("rollout", "shadow-replay", "router", "--env", "staging", "--candidate", "{v2}", "--json"),
        "operator",
        0,
        ("latency_ms",),
    ),  # fmt: skip
    "shadow-replay table": Case(
        ("rollout", "shadow-replay", "router", "--env", "staging", "--candidate", "{v2}"),
        "operator",
        0,
    ),
    "shadow-replay no rollout": Case(
        ("rollout", "shadow-replay", "router", "--env", "staging"), "operator", 2
    ),
    "gate evaluating the baseline --json": Case(
        ("gate", "{v2}", "--env", "staging", "--json"),
        "builder",
        1,
        ("decision_id", "created_at", "report_path"),
    ),
}


class Sides(NamedTuple):
    judged: Judged
    ids: dict[str, str]
    local_cwd: Path
    local_env: dict[str, str]
    remote_cwd: Path


FILES = ("answers.yaml", "answers.jsonl", "judge.yaml", "wider.yaml", "wider.jsonl")


@pytest.fixture
def sides(judged: Judged, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sides]:
    """The judged server's project, with runs served in staging and a new current suite
    that v1 (serving in staging) was never evaluated on, and a copy of it made now."""
    live = judged.live
    root = home(live)
    runs = served_runs(live.v1, 16)
    assert ingest_dicts(live.store, runs, source="http").landed == len(runs)
    evaluate(live.store, live.v2, Project(root=root, stakes="high").suite(n=40, name="wider"))
    live.store.engine.dispose()  # a PostgreSQL template takes no open connection
    target = tmp_path_factory.mktemp("local") / "project"
    elsewhere = tmp_path_factory.mktemp("elsewhere")  # no project: the files a verb reads
    for name in FILES:
        shutil.copyfile(root / name, elsewhere / name)
    ids = {"{v1}": live.v1, "{v2}": live.v2, **{f"{{{k}}}": v for k, v in judged.ids.items()}}
    with project_copy(root, str(live.store.location.url), target) as (_, env):
        yield Sides(judged, ids, target, env, elsewhere)


def normal(text: str) -> str:
    for pattern, put in VARIES:
        text = pattern.sub(put, text)
    return text


@pytest.mark.parametrize("name", list(CASES))
def test_a_job_through_the_server_prints_and_exits_as_locally(sides: Sides, name: str) -> None:
    case = CASES[name]
    argv = [sides.ids.get(a, a) for a in case.argv]
    local = rg(sides.local_cwd, *argv, env={"RELEASEGATE_ACTOR": case.who, **sides.local_env})
    token = sides.judged.live.tokens[case.who]
    remote = rg(
        sides.remote_cwd,
        *argv,
        env={"RELEASEGATE_URL": sides.judged.url, "RELEASEGATE_TOKEN": token},
    )
    assert (local.returncode, remote.returncode) == (case.code, case.code), (
        local.stderr + "\n---\n" + remote.stderr
    )
    assert "Traceback" not in remote.stderr
    if local.stdout.startswith(("{", "[")):
        here, there = json.loads(local.stdout), json.loads(remote.stdout)
        for key in case.ignore:
            here.pop(key), there.pop(key)
        assert json.loads(normal(json.dumps(there))) == json.loads(normal(json.dumps(here)))
    else:
        assert normal(remote.stdout) == normal(local.stdout)
    if case.code and local.stderr:  # the same error, said as the server's answer
        first = remote.stderr.splitlines()[0].split(" (the server at ")[0]
        assert first == local.stderr.splitlines()[0]
