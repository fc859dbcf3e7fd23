"""The CLI reads well: usage lines and option lists as a person writes them, hidden aliases
that still work, counts in the right number; and the one table from errors to exit codes."""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from releasegate import errors
from releasegate.cli._errors import EXIT_CODES, exit_code
from releasegate.cli.app import app
from tests.helpers import Project, ok_json, register, rg


def _leaves(group: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in sorted(group.commands.items()):
        if isinstance(getattr(command, "commands", None), dict):
            yield from _leaves(command, (*prefix, name))
        else:
            yield (*prefix, name)


COMMANDS = list(_leaves(typer.main.get_command(app)))


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_help_has_no_type_artefacts(argv: tuple[str, ...]) -> None:
    shown = CliRunner().invoke(app, [*argv, "--help"], env={"COLUMNS": "100"})
    assert shown.exit_code == 0, shown.output
    usage = shown.output.splitlines()[0]
    assert usage.startswith(f"Usage: releasegate {' '.join(argv)} [OPTIONS]")
    assert not re.search(r"[{}<>]", usage), usage  # VERSION, not {VERSION}
    assert not re.search(r"<[\w\[\], ]+>", shown.output), shown.output  # no <list[str]>


def test_help_lists_groups_beside_the_commands_they_belong_with() -> None:
    from releasegate.cli._common import HELP_ORDER

    shown = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "80"}).output
    listed = [line.split()[0] for line in shown.split("Commands:")[1].splitlines() if line]
    top = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    assert sorted(listed) == sorted(top) and set(top) <= set(HELP_ORDER)  # a new one: place it
    for before, after in (("promote", "rollout"), ("rollout", "rollback"), ("review", "policy")):
        assert listed.index(after) == listed.index(before) + 1, listed
    assert listed.index("stage") < listed.index("report") < listed.index("audit")


def test_the_older_output_option_names_are_hidden() -> None:
    gate = CliRunner().invoke(app, ["gate", "--help"], env={"COLUMNS": "100"}).output
    report = CliRunner().invoke(app, ["report", "gate", "--help"], env={"COLUMNS": "100"}).output
    assert "--out FILE" in gate and "--report" not in gate
    assert "--out FILE" in report and "--output" not in report


def test_gate_writes_its_report_with_out_and_still_with_report(project: Project) -> None:
    d = project.root
    vid = register(d, project.workflow("v1"))
    project.suite(n=1)
    evaluated = rg(d, "eval", vid[:10], "--suite", "suite.yaml")
    assert evaluated.returncode == 0, evaluated.stderr
    assert "1 case x 1 epoch: 1 model call, 0 from cache" in evaluated.stdout
    for option, name in (("--out", "new.md"), ("--report", "old.md")):
        gated = ok_json(rg(d, "gate", vid[:10], "--env", "staging", option, name, "--json"))
        assert gated["report_path"] == name and "PASS" in (d / name).read_text()
    approved = ok_json(rg(d, "approve", vid[:10], "--env", "staging", "--as", "bob", "--json"))
    assert approved == {"version_id": vid, "env": "staging", "approver": "bob", "role": "approver"}


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (errors.ManifestError("bad"), 2),
        (errors.NotFoundError("none"), 2),
        (errors.PinMismatchError("moved", field="f", pinned="a", found="b"), 2),
        (errors.AuditKeyError("no key"), 2),
        (errors.SDKUsageError("wrong"), 2),
        (errors.PromotionRefusedError("no"), 1),
        (errors.StaleAliasError("moved"), 1),
        (errors.SelfApprovalError("own"), 1),
        (errors.AuditBrokenError("broken"), 1),
        (errors.StoreError("full"), 2),
        (errors.RunsNotStoredError("lost", report=None), 2),
        (errors.SchemaOutdatedError("old"), 2),
        (errors.PrerequisiteError("install"), 2),
        (errors.ReleasegateError("unclassified"), 70),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_exit_codes_come_from_one_table_over_the_error_tree(
    error: errors.ReleasegateError, code: int
) -> None:
    assert exit_code(error) == code
    assert not hasattr(error, "exit_code")  # the exception classes carry no exit codes
    assert all(issubclass(cls, errors.ReleasegateError) for cls in EXIT_CODES)


def test_ids_can_be_copied_from_an_80_column_terminal(project: Project) -> None:
    d = project.root
    vid = register(d, project.workflow("v1"))
    project.workflow("v2", revision="2")
    register(d, d / "v2.yaml")
    project.workflow("v3", revision="3")
    why = "new model host; a little more to a human"
    assert rg(d, "register", "v3.yaml", "--experiment", "--reason", why).returncode == 0
    wide = {"COLUMNS": "80"}
    for argv in (("versions", "router"), ("audit", "log")):
        shown = rg(d, *argv, env=wide)
        assert shown.returncode == 0, shown.stderr
        assert all(len(line) <= 80 for line in shown.stdout.splitlines()), shown.stdout
        assert vid[:12] in shown.stdout, shown.stdout  # whole, on one line
        if argv[0] == "audit":
            assert " version.registered " in shown.stdout  # event names are not cut either
        else:  # the reason wraps at word boundaries, nothing cut (a track column is shown)
            words = " ".join(shown.stdout.split())
            assert why in words and " experiment " in words, shown.stdout


def test_an_output_file_that_cannot_be_written_is_bad_input_before_the_gate_runs(
    project: Project,
) -> None:
    d = project.root
    vid = register(d, project.workflow("v1"))
    project.suite(n=1)
    assert rg(d, "eval", vid[:10], "--suite", "suite.yaml").returncode == 0
    (d / "a-file").write_text("not a directory\n")
    for option, target in (
        ("--out", "/proc/nope/x.md"),
        ("--out", "a-file/x.md"),
        ("--junit", "a-file/junit.xml"),
        ("--out", "."),
    ):
        gated = rg(d, "gate", vid[:10], "--env", "staging", option, target)
        assert gated.returncode == 2, (option, target, gated.stderr)
        assert option in gated.stderr and "Traceback" not in gated.stderr
        assert "nothing was written" in gated.stderr
    # nothing was written: no decision stored, so the report has none to render
    shown = rg(d, "report", "gate", vid[:10], "--env", "staging")
    assert shown.returncode == 2 and "Traceback" not in shown.stderr
    rendered = rg(d, "report", "gate", vid[:10], "--env", "staging", "--out", "a-file/r.md")
    assert rendered.returncode == 2 and "--out a-file/r.md" in rendered.stderr


@pytest.mark.parametrize(
    ("err", "code"),
    [
        (errno.ENOENT, 2),
        (errno.ENOTDIR, 2),
        (errno.EISDIR, 2),
        (errno.EROFS, 2),
        (errno.ENOSPC, 2),
        (errno.EBADF, 70),
    ],
)
def test_a_file_write_fault_is_an_answer_and_an_unknown_one_a_bug(err: int, code: int) -> None:
    from releasegate.release.store_access import file_fault

    fault = file_fault(OSError(err, os.strerror(err), "/x/report.md"), "a file")
    assert (exit_code(fault) if fault is not None else 70) == code
    if fault is not None:
        assert "/x/report.md" in fault.message


def test_a_memo_directory_that_is_a_file_is_bad_input_before_the_memo_is_built(
    project: Project,
) -> None:
    d = project.root
    (d / "a-file").write_text("not a directory\n")
    memo = rg(d, "report", "memo", "router", "--out", "a-file")
    assert memo.returncode == 2 and "Traceback" not in memo.stderr
    assert "--out a-file" in memo.stderr and "nothing was written" in memo.stderr
    assert not (d / ".releasegate").exists()  # refused before the store was even opened


def test_history_at_80_columns_keeps_ids_whole_and_the_reason() -> None:
    from rich.console import Console

    from releasegate.cli.render import history_table

    vid, prev = "103eaff6293a" + "0" * 52, "bcdb891b62e8" + "1" * 52
    rows = [
        {
            "at": "2026-12-03T18:49:16.123+00:00",
            "action": "rehearsal",
            "version_id": vid,
            "previous_id": prev,
            "actor": "oncall-support",
            "reason": "rehearsal 9795e6174bf6: shuffle-labels [/]",
        }
    ]
    for width in (80, 200):
        out = Console(width=width, record=True)
        out.print(history_table("support-triage@staging", rows, width=width))
        shown = out.export_text()
        assert "…" not in shown and vid[:12] in shown and "oncall-support" in shown, shown
        assert "shuffle-labels [/]" in " ".join(shown.split()), shown  # words, not markup
    assert prev[:12] in shown  # from 100 columns, the version it moved from


def test_the_users_words_are_printed_as_typed_never_as_rich_markup(project: Project) -> None:
    # a reason with "[/]" was a Rich MarkupError, exit 70, after the change was written
    d = project.root
    made = rg(d, "register", str(project.workflow("v1")), "--reason", "[/] fix [bold]x", "--json")
    vid = ok_json(made)["version_id"]
    for argv in (("versions", "router"), ("show", vid)):
        shown = rg(d, *argv, env={"COLUMNS": "80"})
        assert shown.returncode == 0, shown.stderr
        assert "[/] fix [bold]x" in " ".join(shown.stdout.split())
    forced = rg(d, "stage", "set", "router", "routine", "--force", "--reason", "[/] now")
    assert forced.returncode == 0, forced.stderr
    assert "): [/] now" in forced.stdout
    logged = rg(d, "audit", "log", env={"RELEASEGATE_ACTOR": "[/]alice"})
    assert logged.returncode == 0 and "[/]alice" not in logged.stdout  # alice registered
    named = rg(d, "stage", "set", "router", "pilot", env={"RELEASEGATE_ACTOR": "[/]bo"})
    assert named.returncode == 0, named.stderr
    assert "[/]bo" in rg(d, "audit", "log", env={"COLUMNS": "80"}).stdout
