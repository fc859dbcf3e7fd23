"""The CLI against a server (``RELEASEGATE_URL``): each verb with an endpoint, run in a
subprocess twice from the same state, once on a copy of the store and once through the
real server over the original, prints the same stdout and exits with the same code,
failures included; and what only a server can answer (no token, a role too low, no
server at all, a verb with no endpoint, ``--as``) is one line with its exit code."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
import yaml

from tests.helpers import project_copy, rg
from tests.server.conftest import Live

TIME = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(\+00:00|Z)?")

EVAL_ID = re.compile(r"^eval [0-9a-f]{12}", re.MULTILINE)


class Case(NamedTuple):
    argv: tuple[str, ...]
    who: str
    """The token the server run sends; the local run acts as the same name."""
    code: int
    local_only: tuple[str, ...] = ()
    """Arguments only the local run takes (``--as NAME``: through a server, the token)."""
    ignore: tuple[str, ...] = ()
    """Keys of the JSON document that differ by design (``gate``'s local report file; an
    eval's id, in its table too)."""


V1, V2 = "{v1}", "{v2}"
CASES = {
    "versions --json": Case(("versions", "router", "--json"), "viewer", 0),
    "versions table": Case(("versions", "router"), "viewer", 0),
    "versions unknown workflow": Case(("versions", "nope", "--json"), "viewer", 2),
    "show --json": Case(("show", V1, "--json"), "viewer", 0),
    "show table": Case(("show", V1), "viewer", 0),
    "show unknown version": Case(("show", "0" * 12), "viewer", 2),
    "history --json": Case(("history", "router", "--env", "staging", "--json"), "viewer", 0),
    "history table": Case(("history", "router", "--env", "staging"), "viewer", 0),
    "history unknown workflow": Case(("history", "nope", "--env", "staging"), "viewer", 2),
    "history unknown env": Case(("history", "router", "--env", "qa", "--json"), "viewer", 2),
    "resolve --json": Case(("resolve", "router", "--env", "staging", "--json"), "viewer", 0),
    "resolve": Case(("resolve", "router", "--env", "staging"), "viewer", 0),
    "resolve nothing there": Case(("resolve", "router", "--env", "production"), "viewer", 2),
    "audit log --json": Case(("audit", "log", "--json"), "viewer", 0),
    "audit log table": Case(("audit", "log", "--workflow", "router"), "viewer", 0),
    "audit verify --json": Case(("audit", "verify", "--json"), "viewer", 0),
    "audit verify": Case(("audit", "verify"), "viewer", 0),
    "approve": Case(("approve", V2, "--env", "staging", "--json"), "bob", 0, ("--as", "bob")),
    "approve own change": Case(("approve", V2, "--env", "staging"), "alice", 1, ("--as", "alice")),
    "promote refused": Case(("promote", V2, "--env", "staging", "--json"), "operator", 1),
    "promote already there": Case(("promote", V1, "--env", "staging"), "operator", 0),
    "promote --canary refused": Case(
        ("promote", V2, "--env", "staging", "--canary", "10", "--json"), "operator", 1
    ),
    "rollback nothing before": Case(("rollback", "router", "--env", "staging"), "operator", 1),
    "pause --json": Case(
        ("pause", "router", "--env", "staging", "--reason", "incident 7", "--json"), "operator", 0
    ),
    "pause table": Case(("pause", "router", "--env", "staging", "--reason", "x"), "operator", 0),
    "resume not paused": Case(("resume", "router", "--env", "staging"), "operator", 1),
    "rollout status none": Case(("rollout", "status", "router", "--env", "staging"), "viewer", 1),
    "rollout check --json": Case(
        ("rollout", "check", "router", "--env", "staging", "--json"), "operator", 0
    ),
    "rollout check": Case(("rollout", "check", "router", "--env", "staging"), "operator", 0),
    "rollout advance none": Case(
        ("rollout", "advance", "router", "--env", "staging"), "operator", 1
    ),
    "rollout abort none": Case(("rollout", "abort", "router", "--env", "staging"), "operator", 1),
    "token list --json": Case(("token", "list", "--json"), "admin", 0),
    "token list --revoked": Case(("token", "list", "--revoked"), "admin", 0),
    "token revoke --json": Case(("token", "revoke", "viewer", "--json"), "admin", 0),
    "token revoke unknown": Case(("token", "revoke", "nobody"), "admin", 2),
    "diff --json": Case(("diff", V1, V2, "--json"), "viewer", 0),
    "diff": Case(("diff", V1, V2), "viewer", 0),
    "runs show unknown": Case(("runs", "show", "nope00"), "viewer", 2),
    "report gate --format json": Case(
        ("report", "gate", V2, "--env", "staging", "--format", "json"), "viewer", 0
    ),
    "report gate markdown": Case(("report", "gate", V2, "--env", "staging"), "viewer", 0),
    "gate needs approval": Case(
        ("gate", V2, "--env", "staging", "--json"),
        "builder",
        1,
        ignore=("report_path", "decision_id"),
    ),
    "runs import --json": Case(("runs", "import", "runs.jsonl", "--json"), "operator", 0),
    "runs import table": Case(("runs", "import", "runs.jsonl"), "operator", 0),
    "runs import a bad record": Case(("runs", "import", "bad.jsonl", "--json"), "operator", 2),
    "runs import table bad": Case(("runs", "import", "bad.jsonl"), "operator", 2),
    "register --check --json": Case(("register", "--check", "v3.yaml", "--json"), "builder", 0),
    "register --check several": Case(("register", "--check", "v1.yaml", "v3.yaml"), "builder", 0),
    "register --json": Case(("register", "v3.yaml", "--reason", "r", "--json"), "builder", 0),
    "register table": Case(("register", "v3.yaml", "--experiment"), "builder", 0),
    "register already there": Case(("register", "v1.yaml"), "builder", 0),
    "register a missing prompt file": Case(("register", "bad.yaml", "--json"), "builder", 2),
    "register --check a bad document": Case(("register", "--check", "worse.yaml"), "builder", 2),
    "register no such file": Case(("register", "nothing.yaml"), "builder", 2),
    "eval --json": Case(
        ("eval", V2, "--suite", "suite.yaml", "--json"), "builder", 0, ignore=("eval_id",)
    ),  # fmt: skip
    "eval table": Case(("eval", V1, "--suite", "suite.yaml"), "builder", 0, ignore=("eval_id",)),
    "eval a missing cases file": Case(("eval", V1, "--suite", "nocases.yaml"), "builder", 2),
}


class Sides(NamedTuple):
    live: Live
    local_cwd: Path
    local_env: dict[str, str]
    remote_cwd: Path


@pytest.fixture
def sides(live: Live, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sides]:
    """The live server's project and a copy of it (files, audit key, store) made now."""
    root = Path(str(live.store.location.home)).parent
    _runs_files(root, live.v1)
    _documents(root)
    live.store.engine.dispose()  # a PostgreSQL template takes no open connection
    target = tmp_path_factory.mktemp("local") / "project"
    elsewhere = tmp_path_factory.mktemp("elsewhere")  # no project: the files a verb reads
    _runs_files(elsewhere, live.v1)
    for name in DOCUMENTS:
        (elsewhere / name).parent.mkdir(exist_ok=True)
        shutil.copyfile(root / name, elsewhere / name)
    with project_copy(root, str(live.store.location.url), target) as (_, env):
        yield Sides(live, target, env, elsewhere)


def _runs_files(root: Path, v1: str) -> None:
    run = {
        "run_id": "r-1",
        "workflow": "router",
        "env": "staging",
        "version_id": v1,
        "started_at": "2026-12-01T10:00:00Z",
        "latency_ms": 412,
        "status": "ok",
    }
    rows = [{**run, "run_id": f"r-{i}"} for i in range(5)]
    (root / "runs.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    bad = [*rows[:2], {**run, "run_id": "r-bad", "latency_ms": "slow"}]
    (root / "bad.jsonl").write_text("\n".join(json.dumps(r) for r in bad) + "\n")


DOCUMENTS = ("v1.yaml", "v3.yaml", "prompts/system.txt", "bad.yaml", "worse.yaml", "suite.yaml",
             "suite.jsonl", "nocases.yaml")  # fmt: skip


def _documents(root: Path) -> None:
    """Workflow and suite files beside the fixture's: v3 names its prompt by file."""
    v1 = yaml.safe_load((root / "v1.yaml").read_text())
    (root / "prompts").mkdir(exist_ok=True)
    (root / "prompts" / "system.txt").write_text("route the message to one label\n")
    v3 = {**v1, "prompts": {"system": {"file": "prompts/system.txt"}}}
    (root / "v3.yaml").write_text(yaml.safe_dump(v3, sort_keys=False))
    bad = {**v1, "prompts": {"system": {"file": "prompts/missing.txt"}}}
    (root / "bad.yaml").write_text(yaml.safe_dump(bad, sort_keys=False))
    (root / "worse.yaml").write_text(yaml.safe_dump({**v1, "stakes": "enormous"}))
    suite = yaml.safe_load((root / "suite.yaml").read_text())
    (root / "nocases.yaml").write_text(yaml.safe_dump({**suite, "cases": "gone.jsonl"}))


def through(s: Sides, *argv: str, who: str | None, **env: str) -> tuple[int, str, str]:
    """``releasegate ARGV`` through the server, from a directory with no project."""
    full = {"RELEASEGATE_URL": s.live.url, **env}
    if who is not None:
        full["RELEASEGATE_TOKEN"] = s.live.tokens[who]
    done = rg(s.remote_cwd, *argv, env=full)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize("name", list(CASES))
def test_a_verb_through_the_server_prints_and_exits_as_locally(sides: Sides, name: str) -> None:
    case = CASES[name]
    ids = {V1: sides.live.v1, V2: sides.live.v2}
    argv = [ids.get(a, a) for a in case.argv]
    as_who = {"RELEASEGATE_ACTOR": case.who, **sides.local_env}
    local = rg(sides.local_cwd, *argv, *case.local_only, env=as_who)
    code, out, err = through(sides, *argv, who=case.who)
    assert (local.returncode, code) == (case.code, case.code), local.stderr + "\n---\n" + err
    assert "Traceback" not in err
    if local.stdout.startswith(("{", "[")):
        here, there = json.loads(local.stdout), json.loads(out)
        for key in case.ignore:
            here.pop(key), there.pop(key)
        assert _timeless(there) == _timeless(here)
    else:
        if "eval_id" in case.ignore:  # each run is an eval of its own
            out, local.stdout = (EVAL_ID.sub("eval <id>", t) for t in (out, local.stdout))
        assert TIME.sub("<time>", out) == TIME.sub("<time>", local.stdout)
    if case.code and local.stderr:  # the same error, said as the server's answer
        assert err.splitlines()[0].split(" (the server at ")[0] == local.stderr.splitlines()[0]


def _timeless(doc: object) -> object:
    return json.loads(TIME.sub("<time>", json.dumps(doc)))


def test_what_only_a_server_answers_is_one_line_with_its_exit_code(sides: Sides) -> None:
    v2 = sides.live.v2
    code, out, err = through(sides, "approve", v2, "--env", "staging", who="viewer")
    assert code == 1 and out == ""
    assert err.startswith("refused: ") and "approver" in err and "answered 403" in err
    code, out, err = through(sides, "versions", "router", who=None)
    assert (code, out) == (1, "") and "answered 401" in err
    code, out, err = through(sides, "versions", "router", who="revoked")
    assert (code, out) == (1, "") and "answered 401" in err
    code, _, err = through(sides, "--token", sides.live.tokens["viewer"], "versions", "router",
                           who=None)  # fmt: skip
    assert code == 0, err
    code, out, err = through(sides, "approve", v2, "--env", "staging", "--as", "bob", who="bob")
    assert (code, out) == (2, "")
    assert err.startswith("error: field '--as': refused through a server")
    listed = json.loads(rg(sides.local_cwd, "audit", "log", "--json", env=sides.local_env).stdout)
    assert not any(e["kind"] == "approval" for e in listed[-1:])  # nothing signed as bob
    code, out, err = through(sides, "rollout", "advance", "router", "--env", "staging",
                             "--force", "--reason", "x", who="operator")  # fmt: skip
    assert (code, out) == (2, "") and "--force" in err


def test_code_the_server_does_not_allow_is_refused_in_one_line_and_not_registered(
    sides: Sides,
) -> None:
    doc = yaml.safe_load((sides.remote_cwd / "v3.yaml").read_text())
    doc["model"] = {**doc["model"], "name": "subprocess:getoutput"}
    (sides.remote_cwd / "evil.yaml").write_text(yaml.safe_dump(doc))
    for argv in (("register", "evil.yaml"), ("register", "--check", "evil.yaml", "--json")):
        code, out, err = through(sides, *argv, who="builder")
        assert (code, out) == (1, ""), err
        assert len(err.splitlines()) <= 2 and "answered 403" in err and "subprocess" in err
    code, out, err = through(sides, "versions", "router", "--json", who="viewer")
    assert len(json.loads(out)) == 2, err  # v1 and v2 on the server, nothing more


def test_no_server_is_one_line_exit_2_within_the_deadline(sides: Sides) -> None:
    down = {"RELEASEGATE_URL": "http://127.0.0.1:9", "RELEASEGATE_TIMEOUT": "3"}
    done = rg(sides.remote_cwd, "versions", "router", "--json", env=down)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("error: the server at http://127.0.0.1:9 did not answer")
    assert "Traceback" not in done.stderr
    bad = rg(sides.remote_cwd, "versions", "router", env={"RELEASEGATE_URL": "127.0.0.1:8080"})
    assert bad.returncode == 2 and "RELEASEGATE_URL" in bad.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ("gc",),
        ("db", "upgrade"),
    ],
)
def test_a_verb_with_no_endpoint_says_so_and_touches_no_store(
    sides: Sides, argv: tuple[str, ...]
) -> None:
    ids = {"{v1}": sides.live.v1, "{v2}": sides.live.v2}
    full = [ids.get(a, a) for a in argv]
    done = rg(sides.local_cwd, *full, env={"RELEASEGATE_URL": sides.live.url, **sides.local_env})
    assert (done.returncode, done.stdout) == (2, "")
    first = done.stderr.splitlines()[0]
    assert first == (
        f"error: `releasegate {' '.join(argv[:2] if argv[0] == 'db' else argv[:1])}` is not "
        "available through a server (RELEASEGATE_URL is set): unset it to run locally"
    )
