"""The CLI contract through a real process: exit codes, stderr text, pure JSON on stdout.

The first tests start a new interpreter for every command (``fresh=True``), as a user's
shell does; the others fork it from one that imported the command already (``rg``)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.helpers import Project, ok_json, rg


def test_register_eval_gate_promote_resolve(project: Project) -> None:
    d = project.root
    v1 = ok_json(
        rg(d, "register", str(project.workflow("v1")), "--reason", "first", "--json", fresh=True)
    )
    assert v1["is_new"] and len(v1["version_id"]) == 64
    again = ok_json(rg(d, "register", "v1.yaml", "--json", fresh=True))
    assert not again["is_new"] and again["version_id"] == v1["version_id"]
    text = rg(d, "register", "v1.yaml", fresh=True)
    assert "already registered" in text.stdout and "same content, same id" in text.stdout

    project.suite()
    ev = ok_json(
        rg(d, "eval", v1["version_id"][:10], "--suite", "suite.yaml", "--json", fresh=True)
    )
    assert ev["metrics"]["accuracy"]["estimate"] == 1.0 and ev["called"] == 80
    again_ev = ok_json(
        rg(d, "eval", v1["version_id"][:10], "--suite", "suite.yaml", "--json", fresh=True)
    )
    assert again_ev["called"] == 0 and again_ev["cached"] == 80  # no model calls the 2nd time

    g = rg(
        d,
        "gate",
        v1["version_id"][:10],
        "--env",
        "staging",
        "--junit",
        "junit.xml",
        "--json",
        fresh=True,
    )
    report = ok_json(g)
    assert report["verdict"] == "pass"
    assert Path(report["report_path"]).read_text().count("PASS") >= 1
    assert "<testsuite" in (d / "junit.xml").read_text()

    promoted = ok_json(
        rg(d, "promote", v1["version_id"][:10], "--env", "staging", "--json", fresh=True)
    )
    assert promoted["version_id"] == v1["version_id"] and promoted["previous_id"] is None
    resolved = rg(d, "resolve", "router", "--env", "staging", fresh=True)
    assert resolved.returncode == 0 and resolved.stdout.strip() == v1["version_id"]
    as_json = ok_json(rg(d, "resolve", "router", "--env", "staging", "--json", fresh=True))
    assert as_json["manifest"]["model"]["provider"] == "python"

    listed = ok_json(rg(d, "versions", "router", "--json", fresh=True))
    assert listed[0]["environments"] == ["staging"]
    verified = ok_json(rg(d, "audit", "verify", "--json", fresh=True))
    assert verified["ok"] and verified["events"] >= 5


def test_gate_exit_codes_and_refusals(project: Project) -> None:
    d = project.root
    project.suite()
    v1 = ok_json(rg(d, "register", str(project.workflow("v1")), "--json", fresh=True))["version_id"]
    held = rg(d, "gate", v1[:10], "--env", "staging", fresh=True)
    assert held.returncode == 1 and "HOLD" in held.stdout
    refused = rg(d, "promote", v1[:10], "--env", "staging", fresh=True)
    assert refused.returncode == 1
    assert refused.stderr.startswith("refused: the gate did not pass")
    assert refused.stdout == ""
    rg(d, "eval", v1[:10], "--suite", "suite.yaml", fresh=True)
    assert rg(d, "gate", v1[:10], "--env", "staging", fresh=True).returncode == 0
    assert rg(d, "promote", v1[:10], "--env", "staging", fresh=True).returncode == 0

    broken = str(project.workflow("bad", mode="broken"))
    bad = ok_json(rg(d, "register", broken, "--json", fresh=True))
    rg(d, "eval", bad["version_id"][:10], "--suite", "suite.yaml", fresh=True)
    failed = rg(d, "gate", bad["version_id"][:10], "--env", "staging", "--json", fresh=True)
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["verdict"] == "fail"
    diff = ok_json(rg(d, "diff", v1[:10], bad["version_id"][:10], "--json", fresh=True))
    assert diff["change_class"] == "config"
    assert any(c["path"] == "generation.mode" for c in diff["changes"])

    self_approve = rg(
        d, "approve", bad["version_id"][:10], "--env", "staging", "--as", "alice", fresh=True
    )
    assert self_approve.returncode == 1
    assert "nobody approves their own change" in self_approve.stderr


def test_rollback_and_history(project: Project) -> None:
    d = project.root
    project.suite()
    ids = []
    for name, temp in (("v1", 0.0), ("v2", 0.5)):
        vid = ok_json(rg(d, "register", str(project.workflow(name, temperature=temp)), "--json"))[
            "version_id"
        ]
        rg(d, "eval", vid, "--suite", "suite.yaml")
        assert rg(d, "gate", vid, "--env", "staging").returncode == 0
        assert rg(d, "promote", vid, "--env", "staging").returncode == 0
        ids.append(vid)
    back = ok_json(rg(d, "rollback", "router", "--env", "staging", "--reason", "drill", "--json"))
    assert back["version_id"] == ids[0] and back["previous_id"] == ids[1]
    hist = ok_json(rg(d, "history", "router", "--env", "staging", "--json"))
    assert [h["action"] for h in hist] == ["promote", "promote", "rollback"]
    nothing = rg(d, "rollback", "router", "--env", "staging")
    assert nothing.returncode == 1 and "no earlier approved version" in nothing.stderr


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "workflow: router\nmodel: {provider: python, name: x}\nstakes: 3\n",
            "error: {f}:3: field 'stakes': expected a string, got an integer",
        ),
        (
            "workflow: router\nmodel:\n  provider: python\n  nmae: x\n",
            "error: {f}:4: field 'model.nmae': unknown field 'nmae'",
        ),
        ("workflow: router\nmodel: [1\n", "error: {f}:3: malformed YAML"),
        (
            "workflow: router\nmodel:\n  name: x\n  provider: gpt-magic\n",
            "error: {f}:4: field 'model.provider': unknown provider 'gpt-magic'",
        ),
        (
            "workflow: router\nmodel: {provider: nope, name: x}\n"
            "prompts: {system: {file: p.txt}}\n",
            "error: {f}:3: field 'prompts.system.file': referenced file 'p.txt' not found",
        ),
    ],
)
def test_bad_workflow_files_exit_2_and_write_nothing(
    tmp_path: Path, text: str, expected: str
) -> None:
    f = tmp_path / "wf.yaml"
    f.write_text(text)
    result = rg(tmp_path, "register", "wf.yaml")
    assert result.returncode == 2
    assert result.stderr.startswith(expected.format(f="wf.yaml")), result.stderr
    assert "nothing was written" in result.stderr
    assert not (tmp_path / ".releasegate").exists()


def test_bad_suite_and_unknown_version(project: Project) -> None:
    d = project.root
    vid = ok_json(rg(d, "register", str(project.workflow("v1")), "--json"))["version_id"]
    (d / "s.yaml").write_text(
        "suite: s\nworkflow: router\ncases:\n  - {id: a, input: x}\n"
        "scorers:\n  - {type: exactness}\n"
    )
    bad = rg(d, "eval", vid, "--suite", "s.yaml")
    assert bad.returncode == 2
    assert bad.stderr.startswith(
        "error: s.yaml:6: field 'scorers[0].type': unknown scorer 'exactness'"
    ), bad.stderr
    (d / "c.jsonl").write_text('{"id": "a", "input": "x #fraud"}\n{"id": "b", "input": \n')
    (d / "s2.yaml").write_text(
        "suite: s\nworkflow: router\ncases: c.jsonl\nscorers: [{type: equals}]\n"
    )
    bad2 = rg(d, "eval", vid, "--suite", "s2.yaml")
    assert bad2.returncode == 2 and bad2.stderr.startswith("error: "), bad2.stderr
    assert "c.jsonl:2: malformed JSON" in bad2.stderr
    missing = rg(d, "show", "abcdef123456")
    assert missing.returncode == 2 and "no version 'abcdef123456'" in missing.stderr
    short = rg(d, "show", "abc")
    assert short.returncode == 2 and "at least 6 characters" in short.stderr
    nowhere = rg(d, "resolve", "router", "--env", "staging")
    assert nowhere.returncode == 2 and "nothing runs in router@staging" in nowhere.stderr
    with sqlite3.connect(d / ".releasegate" / "releasegate.db") as db:
        assert db.execute("SELECT count(*) FROM eval_runs").fetchone()[0] == 0
        assert db.execute("SELECT count(*) FROM suites").fetchone()[0] == 0


def test_audit_verify_names_the_tampered_event(project: Project) -> None:
    d = project.root
    rg(d, "register", str(project.workflow("v1")), "--reason", "honest")
    rg(d, "register", str(project.workflow("v2", temperature=0.7)), "--reason", "honest too")
    assert rg(d, "audit", "verify").returncode == 0
    log = ok_json(rg(d, "audit", "log", "--json"))
    target = next(e for e in log if e["kind"] == "version.registered")
    with sqlite3.connect(d / ".releasegate" / "releasegate.db") as db:
        db.execute(
            "UPDATE audit_events SET payload_json = replace(payload_json, 'honest', "
            "'sneaky') WHERE seq = ?",
            (target["seq"],),
        )
    broken = rg(d, "audit", "verify")
    assert broken.returncode == 1
    assert f"audit log broken at event {target['seq']}" in broken.stderr
    assert "altered" in broken.stderr


def test_no_store_is_a_clear_input_error(tmp_path: Path) -> None:
    result = rg(tmp_path, "versions", "router")
    assert result.returncode == 2
    assert result.stderr.startswith("error: no releasegate store at")
    assert "releasegate init" in result.stderr


def test_init_and_show(project: Project) -> None:
    d = project.root
    init = ok_json(rg(d, "init", "--json"))
    assert init["database"].endswith(".releasegate/releasegate.db")
    vid = ok_json(rg(d, "register", str(project.workflow("v1")), "--reason", "why", "--json"))
    shown = ok_json(rg(d, "show", vid["version_id"][:8], "--json"))
    assert shown["version_id"] == vid["version_id"] and shown["reason"] == "why"
    assert shown["manifest"]["generation"] == {"mode": "good"}
    text = rg(d, "show", vid["version_id"][:8])
    assert text.returncode == 0 and "generation:" in text.stdout and "mode: good" in text.stdout


def test_a_shared_postgres_refuses_until_db_upgrade(tmp_path: Path, pg_template: str) -> None:
    from tests.conftest import PG_ADMIN, drop_pg_database, pg_database

    name = pg_database(None)
    try:
        env = {"RELEASEGATE_DATABASE_URL": f"{PG_ADMIN}/{name}"}

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return rg(tmp_path, *args, env=env)

        refused = run("versions", "router")
        assert refused.returncode == 2
        assert "releasegate db upgrade" in refused.stderr
        assert run("db", "upgrade").returncode == 0
        missing = run("versions", "router")
        assert missing.returncode == 2 and "no workflow 'router'" in missing.stderr
    finally:
        drop_pg_database(name)


def test_report_gate_renders_a_stored_decision_again(project: Project) -> None:
    d = project.root
    project.suite()
    vid = ok_json(rg(d, "register", str(project.workflow("v1")), "--json"))["version_id"]
    rg(d, "eval", vid[:10], "--suite", "suite.yaml")
    decided = ok_json(rg(d, "gate", vid[:10], "--env", "staging", "--json"))
    by_id = ok_json(rg(d, "report", "gate", decided["decision_id"][:10], "--format", "json"))
    assert by_id["decision_id"] == decided["decision_id"] and by_id["verdict"] == "pass"
    latest = rg(d, "report", "gate", vid[:10], "--env", "staging")
    assert latest.returncode == 0 and "**PASS**" in latest.stdout
    junit = rg(
        d,
        "report",
        "gate",
        vid[:10],
        "--env",
        "staging",
        "--format",
        "junit",
        "--output",
        "out/junit.xml",
    )
    assert junit.returncode == 0 and "<testsuite " in (d / "out" / "junit.xml").read_text()
    bad = rg(d, "report", "gate", vid[:10], "--env", "staging", "--format", "pdf")
    assert bad.returncode == 2 and "unknown format 'pdf'" in bad.stderr
    never = rg(d, "report", "gate", vid[:10], "--env", "production")
    assert never.returncode == 2 and "was never gated for production" in never.stderr


def test_suite_add_case(project: Project) -> None:
    d = project.root
    project.suite(n=8)
    added = ok_json(
        rg(
            d,
            "suite",
            "add-case",
            "suite.yaml",
            "--input",
            "easy #fraud",
            "--expected",
            "fraud",
            "--must-pass",
            "--tag",
            "incident",
            "--reason",
            "INC-7",
            "--json",
        )
    )
    assert added["case_id"] == "case-9" and added["cases"] == 9
    assert added["previous_id"] is None  # nothing was evaluated before
    missing = rg(d, "suite", "add-case", "suite.yaml", "--input", "x")
    assert missing.returncode == 2 and "--reason" in missing.stderr


def test_register_check_validates_and_writes_nothing(project: Project) -> None:
    d = project.root
    path = project.workflow("v1")
    checked = ok_json(rg(d, "register", str(path), "--check", "--json"))
    assert checked["valid"] and len(checked["version_id"]) == 64
    assert not (d / ".releasegate").exists()
    real = ok_json(rg(d, "register", str(path), "--json"))
    assert real["version_id"] == checked["version_id"]  # the id it said it would get


def test_register_check_takes_every_file_pre_commit_passes(project: Project) -> None:
    d = project.root
    first, second = project.workflow("v1"), project.workflow("v2", mode="bad")
    checked = ok_json(rg(d, "register", str(first), str(second), "--check", "--json"))
    assert [c["file"] for c in checked] == [str(first), str(second)]
    assert checked[0]["version_id"] != checked[1]["version_id"]
    broken = d / "broken.yaml"
    broken.write_text("workflow: router\nmodel: [\n")
    bad = rg(d, "register", str(first), str(broken), "--check")
    assert bad.returncode == 2 and "broken.yaml" in bad.stderr
    two = rg(d, "register", str(first), str(second))
    assert two.returncode == 2 and "one workflow file" in two.stderr
    assert not (d / ".releasegate").exists()


def test_terminal_eval_names_error_reasons_and_gate_ends_with_the_next_command(
    project: Project,
) -> None:
    d = project.root
    project.fn = "tests.release.fns:flaky_io"
    project.suite(n=8, extra=[{"id": "boom-1", "input": "boom #fraud", "expected": "fraud"}])
    vid = ok_json(rg(d, "register", str(project.workflow("v1")), "--json"))["version_id"]
    ev = rg(d, "eval", vid[:10], "--suite", "suite.yaml")
    assert ev.returncode == 0, ev.stderr
    assert "1 epoch: 9 model calls" in ev.stdout
    assert "boom-1: TimeoutError: upstream took too long" in " ".join(ev.stdout.split())
    gated = rg(d, "gate", vid[:10], "--env", "staging")
    last = gated.stdout.strip().splitlines()[-1]
    assert last.startswith("next: releasegate promote ") or last.startswith("next: fix")


def test_version_flag_prints_the_installed_version(project: Project) -> None:
    from importlib.metadata import version

    for argv in (("--version",), ("--version", "versions")):
        done = rg(project.root, *argv, fresh=True)
        assert done.returncode == 0 and done.stdout == f"releasegate {version('releasegate')}\n"


def test_an_interrupted_eval_exits_130_and_the_next_run_resumes(project: Project) -> None:
    d = project.root
    project.fn = "tests.release.fns:interrupt_after"
    project.suite(n=40)
    vid = ok_json(rg(d, "register", str(project.workflow("v1")), "--json"))["version_id"]
    env = {"RG_TEST_COUNTER": str(d / "calls"), "RG_TEST_INTERRUPT_AT": "15"}
    stopped = rg(d, "eval", vid[:10], "--suite", "suite.yaml", "--concurrency", "1", env=env)
    assert stopped.returncode == 130, stopped.stderr
    assert "interrupted" in stopped.stderr and "the store is consistent" in stopped.stderr
    env["RG_TEST_INTERRUPT_AT"] = "0"
    resumed = ok_json(rg(d, "eval", vid[:10], "--suite", "suite.yaml", "--json", env=env))
    assert (resumed["called"], resumed["cached"]) == (26, 14)
