"""The documents and governance verbs through a server (``RELEASEGATE_URL``): ``report
memo|runbook|handover``, ``review`` (and ``--fix``), ``stage show|set``, ``policy
show|propose|approve``. Each runs in a subprocess twice from the same state, once on a copy
of the store and once through a real uvicorn over the original, and prints the same stdout
(table, Markdown, HTML or ``--json``), writes the same ``--out`` file and exits with the
same code, refusals and bad input included; changes through the server are signed by the
token's name, and ``--as`` is refused there."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import pytest

from releasegate.monitor.ingest import ingest_dicts
from releasegate.release.policy_changes import propose
from releasegate.release.stage import set_stage
from tests.helpers import project_copy, rg
from tests.server.conftest import Live

TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(\+00:00|Z)?")
PROPOSAL = re.compile(r"\b[0-9a-f]{16}\b")
"""A proposal's id: random, so one proposed during a test differs between the two sides."""


class Sides(NamedTuple):
    live: Live
    local_cwd: Path
    local_env: dict[str, str]
    remote_cwd: Path
    proposals: dict[str, str]
    """Who proposed -> the id of an open proposal made before the copy (the same both ways)."""
    week: str


@pytest.fixture
def sides(live: Live, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sides]:
    """The live server's project, with two weeks of runs in staging, a stage and two open
    policy proposals (alice's and bob's), and a copy of it all made now."""
    now = datetime.now(UTC)
    run = {"workflow": "router", "env": "staging", "version_id": live.v1, "status": "ok"}
    failed = {"status": "error", "failure_reason": "timeout"}
    runs = [  # two weeks of them: this week's, and the week before as the reference
        {
            **run,
            **(failed if i % 9 == 0 else {}),
            "run_id": f"r-{i}",
            "started_at": (now - timedelta(hours=1 + 8 * i)).isoformat(),
            "latency_ms": 200 + 10 * (i % 7),
        }
        for i in range(40)
    ]
    assert ingest_dicts(live.store, runs, source="jsonl").landed == 40
    set_stage(live.store, "router", "pilot", who="alice")
    proposals = {
        who: propose(live.store, "router", env, {"accuracy": floor}, reason="raise it", who=who)
        for who, env, floor in (("alice", "staging", 0.55), ("bob", "production", 0.6))
    }
    root = Path(str(live.store.location.home)).parent
    live.store.engine.dispose()  # a PostgreSQL template takes no open connection
    target = tmp_path_factory.mktemp("local") / "project"
    elsewhere = tmp_path_factory.mktemp("elsewhere")  # no project, no store
    iso = now.isocalendar()
    with project_copy(root, str(live.store.location.url), target) as (_, env):
        yield Sides(
            live,
            target,
            env,
            elsewhere,
            {who: p.proposal_id for who, p in proposals.items()},
            f"{iso.year}-W{iso.week:02d}",
        )


class Ran(NamedTuple):
    code: int
    out: str
    err: str


def local(s: Sides, *argv: str, who: str) -> Ran:
    done = rg(s.local_cwd, *argv, env={"RELEASEGATE_ACTOR": who, **s.local_env})
    return Ran(done.returncode, done.stdout, done.stderr)


def through(s: Sides, *argv: str, who: str | None) -> Ran:
    """``releasegate ARGV`` through the server with ``who``'s token, from no project."""
    env = {"RELEASEGATE_URL": s.live.url}
    if who is not None:
        env["RELEASEGATE_TOKEN"] = s.live.tokens[who]
    done: subprocess.CompletedProcess[str] = rg(s.remote_cwd, *argv, env=env)
    return Ran(done.returncode, done.stdout, done.stderr)


def both(
    s: Sides, *argv: str, who: str, code: int, local_only: tuple[str, ...] = ()
) -> tuple[Ran, Ran]:
    """ARGV both ways, as ``who`` (locally ``RELEASEGATE_ACTOR``, and ``local_only`` such as
    ``--as NAME``; through the server ``who``'s token): the same exit code ``code``, and an
    error is the same first line (the server's adds where it came from)."""
    here, there = local(s, *argv, *local_only, who=who), through(s, *argv, who=who)
    assert (here.code, there.code) == (code, code), f"{argv}\n{here.err}\n---\n{there.err}"
    assert "Traceback" not in here.err + there.err
    if code and here.err:
        assert there.err.splitlines()[0].split(" (the server at ")[0] == here.err.splitlines()[0]
    return here, there


def same_text(a: str, b: str) -> None:
    def norm(t: str) -> str:
        return PROPOSAL.sub("<proposal>", TIME.sub("<time>", t))

    assert norm(b) == norm(a)


def same_json(a: str, b: str, *ignore: str) -> dict[str, object] | list[object]:
    here, there = json.loads(a), json.loads(b)
    for doc in (here, there) if isinstance(here, dict) else ():
        for key in ignore:
            doc.pop(key)
    same_text(json.dumps(here, sort_keys=True), json.dumps(there, sort_keys=True))
    return there  # type: ignore[no-any-return]


READS = [
    (("report", "handover", "router", "--json"), 1),
    (("report", "handover", "router"), 1),
    (("report", "runbook", "router"), 0),
    (("report", "runbook", "router", "--format", "html"), 0),
    (("report", "runbook", "router", "--json"), 0),
    (("stage", "show", "router", "--json"), 0),
    (("stage", "show", "router"), 0),
    (("policy", "show", "router", "--json"), 0),
    (("policy", "show", "router"), 0),
    (("policy", "show", "router", "--env", "staging"), 0),
    (("review", "--json"), 1),
    (("review", "router", "--period", "30d"), 1),
]
BAD_READS = [
    ("report", "handover", "nope"),
    ("report", "runbook", "router", "--format", "pdf"),
    ("report", "memo", "router", "--week", "soon"),
    ("report", "memo", "nope"),
    ("stage", "show", "nope"),
    ("policy", "show", "router", "--env", "qa"),
    ("review", "--period", "soon"),
    ("review", "nope"),
]


def test_the_documents_read_through_the_server_are_the_local_ones(sides: Sides) -> None:
    for argv, code in READS:
        here, there = both(sides, *argv, who="viewer", code=code)
        if "--json" in argv:
            same_json(here.out, there.out)
        else:
            same_text(here.out, there.out)
        assert there.out.strip(), argv
    for argv in BAD_READS:  # exit 2, the same message, and nothing written here
        here, there = both(sides, *argv, who="viewer", code=2)
        assert there.out == here.out == ""
    assert sorted(p.name for p in sides.remote_cwd.iterdir()) == []


def test_out_writes_the_servers_document_here_as_locally(sides: Sides) -> None:
    book = ("report", "runbook", "router", "--format", "html", "--out", "book/runbook.html")
    here, there = both(sides, *book, who="viewer", code=0)
    assert there.out == here.out == "runbook: book/runbook.html\n"
    page = (sides.remote_cwd / "book" / "runbook.html").read_text()
    assert "<html" in page
    same_text((sides.local_cwd / "book" / "runbook.html").read_text(), page)
    here, there = both(sides, *book[:3], "--out", "md/runbook.md", "--json", who="viewer", code=0)
    assert json.loads(there.out)["written"] == "md/runbook.md"
    same_json(here.out, there.out)
    same_text(*((d / "md" / "runbook.md").read_text() for d in (sides.local_cwd, sides.remote_cwd)))

    memo = ("report", "memo", "router", "--week", sides.week, "--out", "memo")
    here, there = both(sides, *memo, who="viewer", code=0)
    assert there.out == here.out and there.out.endswith(
        "memo: memo/memo.md\n      memo/memo.html\n"
    )
    files = {
        d: sorted(str(p.relative_to(d / "memo")) for p in (d / "memo").rglob("*") if p.is_file())
        for d in (sides.local_cwd, sides.remote_cwd)
    }
    assert files[sides.remote_cwd] == files[sides.local_cwd]
    assert "memo.md" in files[sides.remote_cwd] and any(
        f.startswith("charts/staging-") for f in files[sides.remote_cwd]
    )  # the charts come too
    for name in files[sides.remote_cwd]:
        texts = [(d / "memo" / name).read_text() for d in (sides.local_cwd, sides.remote_cwd)]
        same_text(*texts)
    here, there = both(sides, *memo[:-1], "again", "--json", who="viewer", code=0)
    doc = same_json(here.out, there.out)
    assert isinstance(doc, dict) and doc["written"] == {
        "markdown": "again/memo.md",
        "html": "again/memo.html",
    }
    assert doc["environments"] and doc["environments"][0]["runs"] > 0

    # without --out the server writes no file for a client, and neither does the client
    table = through(sides, "report", "memo", "router", "--week", sides.week, who="viewer")
    assert table.code == 0, table.err
    assert table.out.splitlines()[-1] == (
        "memo: not written here (--out DIR writes memo.md, memo.html and charts/)"
    )
    head = local(sides, "report", "memo", "router", "--week", sides.week, who="viewer")
    assert table.out.splitlines()[:-1] == head.out.splitlines()[:-2]  # the actions, the same
    listed = through(
        sides, "report", "memo", "router", "--week", sides.week, "--json", who="viewer"
    )
    assert json.loads(listed.out)["written"] is None
    assert sorted(p.name for p in sides.remote_cwd.iterdir()) == ["again", "book", "md", "memo"]

    # an --out that cannot be written: exit 2 before anything is asked or written
    (sides.remote_cwd / "taken").write_text("a file")
    for argv in (
        ("report", "memo", "router", "--out", "taken"),
        ("report", "runbook", "router", "--out", "taken/runbook.md"),
    ):
        ran = through(sides, *argv, who="viewer")
        assert (ran.code, ran.out) == (2, ""), ran.err
        assert "--out" in ran.err and "nothing was written" in ran.err
    assert (sides.remote_cwd / "taken").read_text() == "a file"


def test_changes_through_the_server_are_the_local_ones_signed_by_the_token(
    sides: Sides,
) -> None:
    # stage set: routine is refused while the checklist fails; a scheduled pilot is not
    both(sides, "stage", "set", "router", "routine", who="operator", code=1)
    later = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()
    argv = ("stage", "set", "router", "pilot", "--date", later, "--reason", "next month")
    here, there = both(sides, *argv, "--json", who="operator", code=0)
    done = same_json(here.out, there.out)
    assert isinstance(done, dict) and done["actor"] == "operator"
    here, there = both(sides, "stage", "show", "router", who="viewer", code=0)
    same_text(here.out, there.out)
    assert "scheduled: pilot from " + later + " (set by operator); reason: next month" in there.out
    for bad in (("router", "bogus"), ("router", "pilot", "--date", "someday"), ("nope", "pilot")):
        both(sides, "stage", "set", *bad, who="operator", code=2)

    # policy propose, as the token's name
    argv = ("policy", "propose", "router", "--env", "staging", "--floor", "macro_f1=0.3")
    here, there = both(sides, *argv, "--reason", "f1 too", who="builder", code=0)
    lines = [t.out.splitlines() for t in (here, there)]
    same_text("\n".join(lines[0][:-1]), "\n".join(lines[1][:-1]))
    assert "proposed by builder" in lines[1][0]
    assert lines[1][-1].endswith("` with an approver's token (not builder)")
    assert lines[0][-1].endswith(" --as APPROVER` (not builder)")  # locally, --as it is
    for bad in (("--floor", "accuracy=2"), ("--floor", "accuracy")):
        both(sides, *argv[:5], *bad, "--reason", "r", who="builder", code=2)

    # policy approve: bob approves alice's proposal; nobody approves their own
    alice, bob = sides.proposals["alice"], sides.proposals["bob"]
    here, there = both(
        sides, "policy", "approve", alice, "--json", who="bob", code=0, local_only=("--as", "bob")
    )
    approved = same_json(here.out, there.out)
    assert isinstance(approved, dict)
    assert (approved["state"], approved["approver"]) == ("approved", "bob")
    here, there = both(
        sides, "policy", "approve", bob[:8], who="bob", code=1, local_only=("--as", "bob")
    )
    assert there.out == here.out == "" and "bob" in there.err

    # review --fix: an operator's, as locally
    here, there = both(sides, "review", "router", "--fix", "--json", who="operator", code=1)
    same_json(here.out, there.out, "at")

    # after all of that, both stores say the same
    for argv, code in (
        (("policy", "show", "router", "--json"), 0),
        (("stage", "show", "router", "--json"), 0),
    ):
        here, there = both(sides, *argv, who="viewer", code=code)
        same_json(here.out, there.out)


def test_as_and_a_role_too_low_are_refused_in_one_line_and_nothing_changes(
    sides: Sides,
) -> None:
    before = {
        argv: through(sides, *argv, who="viewer").out
        for argv in (("stage", "show", "router", "--json"), ("policy", "show", "router", "--json"))
    }
    alice = sides.proposals["alice"]
    for argv, who in (
        (("policy", "approve", alice, "--as", "bob"), "bob"),
        (("policy", "propose", "router", "--env", "staging", "--floor", "accuracy=0.7",
          "--reason", "r", "--as", "alice"), "alice"),
    ):  # fmt: skip
        ran = through(sides, *argv, who=who)
        assert (ran.code, ran.out) == (2, ""), ran.err
        assert ran.err.startswith("error: field '--as': refused through a server")
    for argv, who, role in (
        (("stage", "set", "router", "experiment"), "builder", "operator"),
        (("policy", "approve", alice), "operator", "approver"),
        (("policy", "propose", "router", "--env", "staging", "--floor", "accuracy=0.7",
          "--reason", "r"), "viewer", "builder"),
        (("review", "--fix"), "viewer", "operator"),
    ):  # fmt: skip
        ran = through(sides, *argv, who=who)
        assert (ran.code, ran.out) == (1, ""), ran.err
        assert ran.err.startswith("refused: ") and role in ran.err and "answered 403" in ran.err
        assert "Traceback" not in ran.err
    ran = through(sides, "stage", "show", "router", who=None)
    assert (ran.code, ran.out) == (1, "") and "answered 401" in ran.err
    assert all(through(sides, *argv, who="viewer").out == out for argv, out in before.items())
    # locally --as is still how a policy approval is signed
    ran = local(sides, "policy", "approve", alice, who="bob")
    assert (ran.code, ran.out) == (2, "") and "--as" in ran.err
