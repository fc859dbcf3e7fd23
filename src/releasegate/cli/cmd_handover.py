"""Handing a workflow over: ``stage set|show``, ``report runbook``, ``report handover``.

Each runs through a server too (``RELEASEGATE_URL``): the text is rendered from the verb's
``--json`` document, the same one either way, so the two print the same; ``stage set``
is then recorded as the token's name, and ``report runbook --out`` writes the page the
server renders to the local file.

Exit codes: ``stage set routine`` is 1 (refused, nothing written) while the readiness
checklist fails, unless ``--force --reason R`` puts it on the record; ``report handover``
is 1 while the workflow is not ready; 2 is bad input (an unknown workflow or stage, a bad
date or format, ``--force`` without a reason, an ``--out`` that cannot be written).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

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
from releasegate.cli._remote import server

FORMATS = ("md", "html")


def checklist(readiness: Mapping[str, Any]) -> None:
    """``report handover`` as text, from its ``--json`` document: one line per check; a
    long one wraps under its text, not under the yes/NO, and never inside a word (ids and
    commands stay whole)."""
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

    for line in readiness["checks"]:
        mark = (" yes ", "green") if line["passed"] else (" NO  ", "bold red")
        body = wrapped(f"{line['title']}: {line['evidence']}")
        out.print(Text.assemble(mark, body), soft_wrap=True)
        if line["fix"]:
            out.print(Text("     " + wrapped(f"fix: {line['fix']}")), soft_wrap=True)
    style = "green" if readiness["ready"] else "bold red"
    out.print(f"[{style}]{escape(readiness['workflow'])}: {escape(readiness['verdict'])}[/]")


@command(stage_app, "set", served=True)
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

    day = parse_day(date) if date is not None else None  # a bad date: exit 2, nothing sent
    if (srv := server()) is not None:  # recorded as the token's name
        body = {"stage": stage, "date": date, "force": force, "reason": reason}
        done = srv.post("v1", "workflows", workflow, "stage", body=body)
    else:
        from releasegate.release.stage import set_stage

        done = set_stage(
            open_store(create=False), workflow, stage, handover_date=day, force=force, reason=reason
        ).as_dict()
    if as_json:
        emit(done)
        return
    from rich.markup import escape  # owners and reasons are the users' words

    console().print(
        f"{workflow}: {done['previous']} -> [bold]{done['stage']}[/] from "
        f"{done['handover_date']} (change owner {escape(done['change_owner'] or 'none')}, "
        f"care owner {escape(done['care_owner'] or 'none')})"
    )
    if done["forced"]:
        console().print(
            f"[yellow]forced past the checklist[/] ({', '.join(done['failing'])}): "
            f"{escape(done['reason'])}"
        )


@command(stage_app, "show", served=True)
def stage_show(workflow: WorkflowArg, as_json: JsonOpt = False) -> None:
    """Show a workflow's stage, since when, who set it, and a scheduled change."""
    if (srv := server()) is not None:
        state = srv.get("v1", "workflows", workflow, "stage")
    else:
        from releasegate.release.stage import show_stage

        state = show_stage(open_store(create=False), workflow).as_dict()
    if as_json:
        emit(state)
        return
    print("\n".join(stage_lines(state)))


def _forced(r: Mapping[str, Any]) -> str:
    return (f"; forced past: {', '.join(r['failing'])}" if r["forced"] else "") + (
        f"; reason: {r['reason']}" if r["reason"] else ""
    )


def stage_lines(state: Mapping[str, Any]) -> list[str]:
    """``stage show`` as text, from its ``--json`` document: the stage in effect and a
    scheduled one, each with whether it was forced past the checklist and why."""
    cur = state["current"]
    if cur is None:
        lines = [f"{state['workflow']}: {state['stage']} (never set)"]
    else:
        lines = [
            f"{state['workflow']}: {cur['stage']} since {cur['handover_date']} "
            f"(set by {cur['actor']}; change owner {cur['change_owner'] or 'none'}, "
            f"care owner {cur['care_owner'] or 'none'}){_forced(cur)}"
        ]
    if (s := state["scheduled"]) is not None:
        lines.append(
            f"scheduled: {s['stage']} from {s['handover_date']} (set by {s['actor']})" + _forced(s)
        )
    return lines


@command(report_app, "runbook", served=True)
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

    if fmt not in FORMATS:
        raise InputError(f"unknown format '{fmt}'", field="--format", hint="md or html")
    if out is not None:
        writable(out, "--out")
    paged = out is not None or not as_json  # the page itself is needed
    doc: dict[str, Any] | None = None
    text: str | None = None
    if (srv := server()) is not None:  # the server renders the page, byte for byte the same
        where = ("v1", "workflows", workflow, "runbook")
        doc = srv.get(*where) if as_json else None
        text = srv.get_text(*where, format=fmt) if paged else None
    else:
        from releasegate.monitor.runbook import build_runbook
        from releasegate.reports.runbook import render_html, render_markdown

        runbook = build_runbook(open_store(create=False), workflow)
        doc = runbook.as_dict() if as_json else None
        if paged:
            text = render_markdown(runbook) if fmt == "md" else render_html(runbook)
    if out is not None and text is not None:
        out.write_text(text, encoding="utf-8")
    if as_json and doc is not None:
        emit({**doc, "written": None if out is None else str(out)})
    elif out is None and text is not None:
        sys.stdout.write(text)
    else:
        console().print(f"runbook: {out}")


@command(report_app, "handover", served=True)
def report_handover(workflow: WorkflowArg, as_json: JsonOpt = False) -> int | None:
    """The readiness checklist for routine operation, with evidence; exit 1 if not ready."""
    if (srv := server()) is not None:
        readiness = srv.get("v1", "workflows", workflow, "handover")
    else:
        from releasegate.release.handover import check

        readiness = check(open_store(create=False), workflow).as_dict()
    if as_json:
        emit(readiness)
    else:
        checklist(readiness)
    return None if readiness["ready"] else NO
