"""The review queue, the suite verbs and the monitor through a server (``RELEASEGATE_URL``):
each run in a subprocess twice from the same state, once on a copy of the store and once
through a real uvicorn over the original, prints the same stdout, exits with the same code
and leaves the same suite files; a review or a case is the token's (``--as`` refused);
bad input exits 2 with nothing written, a role too low exits 1 as any refusal does."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

from releasegate.monitor.ingest import ingest_dicts
from releasegate.release.audit import audit_log
from releasegate.release.review_queue import mark_run
from tests.helpers import project_copy, rg
from tests.release.test_review_queue import runs
from tests.server.conftest import Live
from tests.server.test_cli_remote import TIME, Sides, through

SUITE_FILES = ("suite.yaml", "suite.jsonl")
REVIEWED = "run-020"
"""Reviewed by ``operator`` (bad, corrected to fraud) before either side runs."""


class Case(NamedTuple):
    argv: tuple[str, ...]
    who: str
    """The token the server run sends; the local run acts as the same name."""
    code: int
    masked: bool = False
    """Ids that differ by design masked (a new review's id, and the suite ids of a case
    holding it)."""


V2 = "{v2}"
QUIET = ("--window", "24h", "--no-embeddings", "--no-quality")
CASES = {
    "queue list --json": Case(
        ("queue", "list", "router", "--env", "staging", "--json"), "viewer", 0
    ),
    "queue list table, paged": Case(
        ("queue", "list", "router", "--env", "staging", "--limit", "4", "--sample", "0.2"),
        "viewer",
        0,
    ),
    "queue list unknown env": Case(("queue", "list", "router", "--env", "moon"), "viewer", 2),
    "queue list bad period": Case(
        ("queue", "list", "router", "--env", "staging", "--period", "soon"), "viewer", 2
    ),
    "queue list --limit 0": Case(
        ("queue", "list", "router", "--env", "staging", "--limit", "0"), "viewer", 2
    ),
    "queue log --json": Case(("queue", "log", "router", "--env", "staging", "--json"), "viewer", 0),
    "queue log table": Case(("queue", "log", "router", "--env", "staging"), "viewer", 0),
    "queue log nothing yet": Case(("queue", "log", "router", "--env", "production"), "viewer", 0),
    "queue mark --json": Case(
        ("queue", "mark", "run-010", "--bad", "--expected", "fraud", "--note", "n", "--json"),
        "operator",
        0,
        masked=True,
    ),
    "queue mark again": Case(
        ("queue", "mark", REVIEWED, "--good", "--note", "second look"), "operator", 0
    ),
    "queue mark the same again": Case(
        ("queue", "mark", REVIEWED, "--bad", "--expected", "fraud", "--note", "missed it"),
        "operator",
        1,
    ),
    "queue mark --to-suite": Case(
        ("queue", "mark", "run-030", "--good", "--to-suite", "suite.yaml", "--must-pass"),
        "operator",
        0,
        masked=True,
    ),
    "queue mark unknown run": Case(("queue", "mark", "nope", "--bad"), "operator", 2),
    "queue case --json": Case(
        ("queue", "case", REVIEWED, "--suite", "suite.yaml", "--json"), "operator", 0
    ),
    "queue case table": Case(
        ("queue", "case", REVIEWED, "--suite", "suite.yaml", "--reason", "incident 4"),
        "operator",
        0,
    ),
    "queue case not reviewed": Case(
        ("queue", "case", "run-011", "--suite", "suite.yaml"), "operator", 2
    ),  # fmt: skip
    "suite add-case --json": Case(
        (
            "suite",
            "add-case",
            "suite.yaml",
            "--input",
            "where is my card",
            "--expected",
            "card_arrival",
            "--tag",
            "cards",
            "--reason",
            "incident 9",
            "--json",
        ),
        "builder",
        0,
    ),  # fmt: skip
    "suite add-case --from-run": Case(
        (
            "suite",
            "add-case",
            "suite.yaml",
            "--from-run",
            "run-001",
            "--expected",
            "fraud",
            "--must-pass",
            "--reason",
            "incident 10",
        ),
        "builder",
        0,
    ),  # fmt: skip
    "suite add-case an id taken": Case(
        ("suite", "add-case", "suite.yaml", "--input", "x", "--id", "case-1", "--reason", "r"),
        "builder",
        2,
    ),
    "suite add-case no reason": Case(
        ("suite", "add-case", "suite.yaml", "--input", "x", "--reason", " "), "builder", 2
    ),
    "suite plan --json": Case(
        ("suite", "plan", V2, "--suite", "suite.yaml", "--env", "staging", "--json"), "viewer", 0
    ),
    "suite plan table": Case(
        ("suite", "plan", V2, "--suite", "suite.yaml", "--env", "staging"), "viewer", 0
    ),  # fmt: skip
    "monitor --no-alert --json": Case(
        ("monitor", "router", "--env", "staging", *QUIET, "--no-alert", "--json"), "viewer", 0
    ),  # a signal in alert and nothing raised: exit 0, as locally
    "monitor table, alerting": Case(
        ("monitor", "router", "--env", "staging", *QUIET), "operator", 1
    ),  # fmt: skip
    "monitor --prometheus": Case(
        ("monitor", "router", "--env", "staging", *QUIET, "--prometheus"), "operator", 1
    ),
    "monitor unknown env": Case(("monitor", "router", "--env", "moon", "--no-alert"), "viewer", 2),
}
BOTH_STORES = {"queue list --json", "queue log table", "queue mark --to-suite", "queue case --json",
               "suite add-case --json", "suite plan table", "monitor table, alerting"}  # fmt: skip


def seed(live: Live) -> None:
    """60 runs of v1 in staging (escalated, edited, bad feedback; half of the last day's
    failed: the monitor's error rate alerts) and one review of them."""
    failed = {"status": "error", "failure_reason": "timeout"}
    rows = [
        {**r, "env": "staging", "version_id": live.v1, **(failed if i < 24 and i % 2 else {})}
        for i, r in enumerate(runs(live.v1))
    ]
    now = datetime.now(UTC)
    for i in range(240):  # the monitor's: a day of good runs, then a day with a third failing
        day, j = divmod(i, 120)
        at = now - timedelta(hours=48 - 24 * day) + timedelta(minutes=10 + j * 11)
        rows.append(
            {
                "run_id": f"mon-{i:03d}",
                "workflow": "router",
                "env": "staging",
                "version_id": live.v1,
                "started_at": at.timestamp(),
                "latency_ms": 100,
                **(failed if day and i % 3 == 0 else {"status": "ok"}),
            }
        )
    assert ingest_dicts(live.store, rows, source="http").landed == 300
    mark_run(live.store, REVIEWED, "bad", expected="fraud", note="missed it", who="operator")


@pytest.fixture
def queue_sides(live: Live, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sides]:
    """The live server's project, seeded, and a copy of it made now; the remote side runs
    in a directory holding only the suite files."""
    seed(live)
    root = Path(str(live.store.location.home)).parent
    live.store.engine.dispose()  # a PostgreSQL template takes no open connection
    target = tmp_path_factory.mktemp("local") / "project"
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    for name in SUITE_FILES:
        shutil.copyfile(root / name, elsewhere / name)
    with project_copy(root, str(live.store.location.url), target) as (_, env):
        yield Sides(live, target, env, elsewhere)


HEX = re.compile(r"\b[0-9a-f]{12}(?:[0-9a-f]{20}|[0-9a-f]{52})?\b")


def _same(text: str, masked: bool) -> str:
    text = TIME.sub("<time>", text)
    return HEX.sub("<id>", text) if masked else text


def _params() -> list[object]:
    return [
        pytest.param(name, dialect, id=f"{name}-{dialect}")
        for name in CASES
        for dialect in (("sqlite", "postgresql") if name in BOTH_STORES else ("sqlite",))
    ]


@pytest.mark.parametrize(("name", "dialect"), _params())
def test_a_verb_through_the_server_prints_exits_and_writes_as_locally(
    queue_sides: Sides, name: str, dialect: str
) -> None:
    s, case = queue_sides, CASES[name]
    argv = [s.live.v2 if a == V2 else a for a in case.argv]
    local = rg(s.local_cwd, *argv, env={"RELEASEGATE_ACTOR": case.who, **s.local_env})
    code, out, err = through(s, *argv, who=case.who)
    said = local.stdout + local.stderr + "\n---\n" + err
    assert (local.returncode, code) == (case.code, case.code), said
    assert "Traceback" not in err
    assert _same(out, case.masked) == _same(local.stdout, case.masked)
    if local.stdout.startswith(("{", "[")):
        json.loads(out)  # pure JSON on stdout
    if case.code and local.stderr:  # the same error, said as the server's answer
        assert err.splitlines()[0].split(" (the server at ")[0] == local.stderr.splitlines()[0]
    for f in SUITE_FILES:  # a case lands in the client's cases file, as locally
        there, here = (s.remote_cwd / f).read_text(), (s.local_cwd / f).read_text()
        assert _same(there, case.masked) == _same(here, case.masked), f


def _events(live: Live) -> list[tuple[str, str]]:
    return [(e.kind, e.actor) for e in audit_log(live.store)]


def test_a_review_and_its_case_are_the_tokens_and_as_is_refused(queue_sides: Sides) -> None:
    s = queue_sides
    before, cases = _events(s.live), (s.remote_cwd / "suite.jsonl").read_text()
    for argv in (
        ("queue", "mark", "run-010", "--bad", "--as", "bob"),
        ("queue", "case", REVIEWED, "--suite", "suite.yaml", "--as", "bob"),
        ("queue", "case", REVIEWED, "--suite", "suite.yaml", "--reviewer", "bob"),
    ):
        code, out, err = through(s, *argv, who="operator")
        assert (code, out) == (2, ""), err
        assert err.startswith("error: field '--")
        assert "refused through a server: a review and its case are signed by the token" in err
    assert _events(s.live) == before
    code, out, err = through(s, "queue", "mark", "run-010", "--bad", "--expected", "fraud",
                             "--to-suite", "suite.yaml", "--json", who="operator")  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert doc["reviewer"] == "operator" and doc["case"]["reviewer"] == "operator"
    assert doc["case"]["cases_file"] == "suite.jsonl"
    assert _events(s.live)[len(before) :] == [
        ("review.marked", "operator"),
        ("suite.changed", "operator"),
        ("review.case_added", "operator"),
    ]
    added = (s.remote_cwd / "suite.jsonl").read_text()
    assert (
        added.startswith(cases)
        and json.loads(added.splitlines()[-1])["metadata"]["reviewer"] == "operator"
    )


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (("queue", "mark", "run-010", "--good", "--bad"), "--good/--bad"),
        (("queue", "mark", "run-010", "--bad", "--must-pass"), "--to-suite"),
        (("queue", "mark", "run-010", "--bad", "--to-suite", "missing.yaml"), "missing.yaml"),
        (("queue", "mark", "run-010", "--bad", "--to-suite", "inline.yaml"), "cases"),
        (("queue", "case", REVIEWED, "--suite", "nocases.yaml"), "gone.jsonl"),
        (("queue", "case", "run-011", "--suite", "elsewhere/suite.yaml"), "elsewhere"),
        (("suite", "add-case", "suite.yaml", "--reason", "r"), "--input"),
        (("suite", "add-case", "nocases.yaml", "--input", "x", "--reason", "r"), "gone.jsonl"),
        (("suite", "add-case", "inline.yaml", "--input", "x", "--reason", "r"), "inline"),
        (("suite", "add-case", "nodir/suite.yaml", "--input", "x", "--reason", "r"), "nodir"),
        (("suite", "plan", "{v2}", "--suite", "missing.yaml"), "missing.yaml"),
        (("queue", "list", "router", "--env", "staging", "--sample", "2"), "--sample"),
        (("monitor", "router", "--env", "staging", "--plot", "charts"), "--plot"),
    ],
)
def test_bad_input_is_exit_2_and_writes_nothing_either_way(
    queue_sides: Sides, argv: tuple[str, ...], field: str
) -> None:
    s = queue_sides
    suite = yaml.safe_load((s.remote_cwd / "suite.yaml").read_text())
    for where in (s.remote_cwd, s.local_cwd):
        (where / "nocases.yaml").write_text(json.dumps({**suite, "cases": "gone.jsonl"}))
        (where / "inline.yaml").write_text(
            json.dumps({**suite, "cases": [{"id": "a", "input": "x", "expected": "fraud"}]})
        )
    before = _events(s.live), _files(s.remote_cwd), _files(s.local_cwd)
    full = [s.live.v2 if a == "{v2}" else a for a in argv]
    code, out, err = through(s, *full, who="operator")
    assert (code, out) == (2, ""), err
    assert field in err.splitlines()[0] and "Traceback" not in err
    if field != "--plot":  # locally --plot draws the charts: not bad input there
        local = rg(s.local_cwd, *full, env={"RELEASEGATE_ACTOR": "operator", **s.local_env})
        assert (local.returncode, local.stdout) == (2, ""), local.stderr
        assert local.stderr.splitlines()[0] == err.splitlines()[0].split(" (the server at ")[0]
    assert (_events(s.live), _files(s.remote_cwd), _files(s.local_cwd)) == before


def _files(where: Path) -> dict[str, bytes]:
    """Every file of a directory but the store's, with its bytes (a lock file too)."""
    return {
        str(p.relative_to(where)): p.read_bytes()
        for p in where.rglob("*")
        if p.is_file() and ".releasegate" not in p.parts
    }


@pytest.mark.parametrize(
    ("argv", "who", "role"),
    [
        (("queue", "mark", "run-010", "--bad"), "viewer", "operator"),
        (("queue", "case", REVIEWED, "--suite", "suite.yaml"), "builder", "operator"),
        (("suite", "add-case", "suite.yaml", "--input", "x", "--reason", "r"), "viewer", "builder"),
        (("monitor", "router", "--env", "staging", *QUIET), "viewer", "operator"),
    ],
)
def test_a_role_too_low_is_refused_as_any_refusal_and_writes_nothing(
    queue_sides: Sides, argv: tuple[str, ...], who: str, role: str
) -> None:
    s = queue_sides
    before, files = _events(s.live), (s.remote_cwd / "suite.jsonl").read_bytes()
    code, out, err = through(s, *argv, who=who)
    assert (code, out) == (1, ""), err
    assert err.startswith("refused: ") and role in err and "answered 403" in err
    assert [e for e in _events(s.live)[len(before) :] if e[0] != "access.refused"] == []
    assert (s.remote_cwd / "suite.jsonl").read_bytes() == files


def test_monitor_without_alerts_reads_as_a_viewer_and_sends_nothing(queue_sides: Sides) -> None:
    s = queue_sides
    before = _events(s.live)
    code, out, err = through(s, "monitor", "router", "--env", "staging", *QUIET, "--no-alert",
                             who="viewer")  # fmt: skip
    assert code == 0, err  # the error rate is in alert, and nothing raised: as locally
    assert "│ alert" in out and "alert (" not in out  # nothing raised, nothing routed
    assert _events(s.live) == before
    code, out, err = through(s, "monitor", "router", "--env", "staging", *QUIET, "--json",
                             who="operator")  # fmt: skip
    assert code == 1 and json.loads(out)["alerts"], err  # an operator's run raises them
