"""Handing a workflow over: ``stage set|show``, ``report runbook``, ``report handover``.

Exit codes: ``stage set routine`` is 1 (refused, nothing written) while the readiness
checklist fails, unless ``--force --reason R`` puts it on the record; ``report handover``
is 1 while the workflow is not ready; 2 is bad input (an unknown workflow or stage, a bad
date or format, ``--force`` without a reason, an ``--out`` that cannot be written).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from releasegate.cli._common import (
    NO,
    JsonOpt,
    WorkflowArg,
    command,
    console,
    emit,
    open_store,
    report_app,
    stage_app,
    writable,
)

if TYPE_CHECKING:
    from releasegate.domain.handover import Readiness, StageRecord, StageState

FORMATS = ("md", "html")


def _checklist(readiness: Readiness) -> None:
    """One line per check; a long one wraps under its text, not under the yes/NO, and
    never inside a word (ids and commands stay whole)."""
    import textwrap

    from rich.markup import escape
    from rich.text import Text

    out = console()
    width = max(40, out.width - 1)

    def wrapped(body: str) -> str:
        return textwrap.fill(
            body, width, initial_indent=" " * 5, subsequent_indent=" " * 5,
            break_long_words=False, break_on_hyphens=False,
        )[5:]  # fmt: skip

    for line in readiness.lines:
        mark = (" yes ", "green") if line.passed else (" NO  ", "bold red")
        out.print(Text.assemble(mark, wrapped(f"{line.title}: {line.evidence}")), soft_wrap=True)
        if line.fix:
            out.print(Text("     " + wrapped(f"fix: {line.fix}")), soft_wrap=True)
    style = "green" if readiness.is_ready else "bold red"
    out.print(f"[{style}]{escape(readiness.workflow)}: {escape(readiness.verdict)}[/]")


@command(stage_app, "set")
def stage_set(
    workflow: WorkflowArg,
    stage: Annotated[str, typer.Argument(metavar="STAGE", help="experiment, pilot or routine.")],
    date: Annotated[
        str | None,
        typer.Option("--date", metavar="DATE", help="Handover date, e.g. 2026-12-18 (today)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Set routine although the checklist fails.")
    ] = False,
    reason: Annotated[str, typer.Option(help="Why, for the record (needed with --force).")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Set a workflow's stage from a date; routine requires the handover checklist."""
    from releasegate.domain.handover import parse_day
    from releasegate.release.stage import set_stage

    day = parse_day(date) if date is not None else None
    done = set_stage(
        open_store(create=False), workflow, stage, handover_date=day, force=force, reason=reason
    )
    if as_json:
        emit(done.as_dict())
        return
    from rich.markup import escape  # owners and reasons are the users' words

    r = done.record
    console().print(
        f"{workflow}: {done.previous} -> [bold]{r.stage}[/] from {r.handover_date.isoformat()} "
        f"(change owner {escape(r.change_owner or 'none')}, "
        f"care owner {escape(r.care_owner or 'none')})"
    )
    if r.forced:
        console().print(
            f"[yellow]forced past the checklist[/] ({', '.join(r.failing)}): {escape(r.reason)}"
        )


@command(stage_app, "show")
def stage_show(workflow: WorkflowArg, as_json: JsonOpt = False) -> None:
    """Show a workflow's stage, since when, who set it, and a scheduled change."""
    from releasegate.release.stage import show_stage

    state = show_stage(open_store(create=False), workflow)
    if as_json:
        emit(state.as_dict())
        return
    print("\n".join(stage_lines(state)))


def _forced(r: StageRecord) -> str:
    return (f"; forced past: {', '.join(r.failing)}" if r.forced else "") + (
        f"; reason: {r.reason}" if r.reason else ""
    )


def stage_lines(state: StageState) -> list[str]:
    """``stage show`` as text: the stage in effect and a scheduled one, each with whether it
    was forced past the checklist and why (as ``--json`` has them)."""
    cur = state.current
    if cur is None:
        lines = [f"{state.workflow}: {state.stage} (never set)"]
    else:
        lines = [
            f"{state.workflow}: {cur.stage} since {cur.handover_date.isoformat()} "
            f"(set by {cur.actor}; change owner {cur.change_owner or 'none'}, "
            f"care owner {cur.care_owner or 'none'}){_forced(cur)}"
        ]
    if state.scheduled is not None:
        s = state.scheduled
        lines.append(
            f"scheduled: {s.stage} from {s.handover_date.isoformat()} (set by {s.actor})"
            + _forced(s)
        )
    return lines


@command(report_app, "runbook")
def report_runbook(
    workflow: WorkflowArg,
    fmt: Annotated[str, typer.Option("--format", metavar="FORMAT", help="md or html.")] = "md",
    out: Annotated[
        Path | None, typer.Option("--out", metavar="FILE", help="Write to this file.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The one page an operator needs: owners, escalation, what runs, rollback, checks."""
    from releasegate.errors import InputError
    from releasegate.monitor.runbook import build_runbook, write_runbook
    from releasegate.reports.runbook import render_html, render_markdown

    if fmt not in FORMATS:
        raise InputError(f"unknown format '{fmt}'", field="--format", hint="md or html")
    if out is not None:
        writable(out, "--out")
    runbook = build_runbook(open_store(create=False), workflow)
    if out is not None:
        write_runbook(runbook, out, fmt)
    if as_json:
        emit({**runbook.as_dict(), "written": None if out is None else str(out)})
    elif out is None:
        sys.stdout.write(render_markdown(runbook) if fmt == "md" else render_html(runbook))
    else:
        console().print(f"runbook: {out}")


@command(report_app, "handover")
def report_handover(workflow: WorkflowArg, as_json: JsonOpt = False) -> int | None:
    """The readiness checklist for routine operation, with evidence; exit 1 if not ready."""
    from releasegate.release.handover import check

    readiness = check(open_store(create=False), workflow)
    if as_json:
        emit(readiness.as_dict())
    else:
        _checklist(readiness)
    return None if readiness.is_ready else NO
