"""``audit log|verify|head|rotate-key|restore-head``: the keyed, hash-chained audit log.

``verify`` and ``restore-head`` exit 1 when the chain is broken: the answer is no.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from releasegate.cli._common import NO, JsonOpt, audit_app, command, console, emit, plural
from releasegate.cli._common import open_store as store
from releasegate.cli._remote import server

SERVER_CAP = 100_000
"""The most events ``GET /v1/audit`` answers with (its ``limit``); locally there is none."""


@command(audit_app, "log", served=True)
def audit_log(
    workflow: Annotated[str | None, typer.Option(help="Only this workflow.")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the newest N events.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the audit log."""
    if (srv := server()) is not None:  # all of it, as locally, up to the server's cap
        events = srv.get("v1", "audit", workflow=workflow, limit=limit or SERVER_CAP)
    else:
        from releasegate.release.audit import audit_log as events_of

        found = events_of(store(create=False), workflow=workflow, limit=limit)
        events = [e.to_dict() for e in found]
    if as_json:
        emit(events)
        return
    from rich import box
    from rich.table import Table
    from rich.text import Text

    # ids and event names never wrap or get cut, so they can be copied at 80 columns
    table = Table(title="audit log", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for col in ("#", "at", "event", "by", "workflow", "subject"):
        table.add_column(col, no_wrap=col != "by", overflow="fold")
    for e in events:
        cells = (
            str(e["seq"]),
            e["at"][:19].replace("T", " "),
            e["kind"],
            e["actor"],
            e["workflow"] or "",
            (e["subject"] or "")[:12],
        )
        table.add_row(*(Text(c) for c in cells))  # an actor's name is never Rich markup
    console().print(table)


@command(audit_app, "verify", served=True)
def audit_verify(
    against: Annotated[
        str | None,
        typer.Option(
            "--against",
            metavar="SEQ:DIGEST",
            help="A head exported earlier (`audit head`): prove nothing up to it changed.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> int | None:
    """Check the keyed chain, its head, environments and approvals; exit 1 on a break."""
    if (srv := server()) is not None:
        result = srv.get("v1", "audit", "verify", against=against)
    else:
        from releasegate.domain.audit import parse_head
        from releasegate.release.audit import audit_verify as verify

        exported = parse_head(against) if against is not None else None
        result = verify(store(create=False), against=exported).to_dict()
    broken = result["broken"]
    if as_json:
        emit(result)
    elif broken is None:
        keys = result["key_ids"]
        keyed = f"signed with {', '.join(keys)}" if keys else "no events"
        if result["unkeyed_events"]:
            keyed += f"; events 1..{result['unkeyed_events']} from before keying are anchored"
        head = f"{result['head']['seq']}:{result['head']['digest']}"
        console().print(
            f"audit log intact: {plural(result['events'], 'event')}, chain verified to head "
            f"{head} ({keyed})"
        )
        if result["against"] is not None:
            console().print(f"nothing up to the exported head {result['against']['seq']} changed")
    else:
        where = "" if broken["seq"] is None else f" at event {broken['seq']}"
        console(stderr=True).print(f"[bold red]audit log broken[/]{where}: {broken['reason']}")
    return None if broken is None else NO


@command(audit_app, "head")
def audit_head(as_json: JsonOpt = False) -> None:
    """Print the head (SEQ:DIGEST), to keep in write-once storage or a CI log."""
    from releasegate.release.audit import audit_head as head_of

    info = head_of(store(create=False))
    if as_json:
        emit(info.to_dict())
    else:
        sys.stdout.write(f"{info.head}\n")


@command(audit_app, "rotate-key")
def audit_rotate_key(as_json: JsonOpt = False) -> None:
    """Sign from now on with a new key; the old one signs the event that names the new."""
    from releasegate.release.audit import rotate_key

    done = rotate_key(store(create=False))
    if as_json:
        emit(done.to_dict())
    else:
        console().print(
            f"audit key rotated: {done.previous_key_id or 'none'} -> {done.key_id} "
            f"(event {done.seq}); keep every key in {done.key_file}: verify needs them all"
        )


@command(audit_app, "restore-head")
def audit_restore_head(
    head: Annotated[
        str, typer.Argument(metavar="SEQ:DIGEST", help="The head you exported with `audit head`.")
    ],
    as_json: JsonOpt = False,
) -> int | None:
    """Write back a deleted head record from an exported head, if the chain ends there."""
    from releasegate.domain.audit import parse_head
    from releasegate.release.audit import restore_head

    result = restore_head(store(create=False), parse_head(head, field="SEQ:DIGEST"))
    if as_json:
        emit({"ok": result.ok, "head": str(result.head), "events": result.events})
    else:
        console().print(f"head restored: {result.head}")
    if not result.ok and result.broken is not None:
        console(stderr=True).print(f"[bold red]audit log broken[/]: {result.broken}")
        return NO
    return None
