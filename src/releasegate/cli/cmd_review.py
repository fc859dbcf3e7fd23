"""``review``: does the release discipline still hold? And ``policy propose|approve|show``.

``review [WORKFLOW]`` lists every finding with its evidence and the exact command that
fixes it; exit 1 when any needs action (a paused environment is shown, not counted),
0 when clean, 2 on bad input. ``policy propose`` writes a floor change as a proposal,
``policy approve`` (a workflow approver, never the proposer: exit 1) makes it current,
both audited; ``policy show`` prints each environment's policy, history and proposals.

Each runs through a server too (``RELEASEGATE_URL``), printed from the same ``--json``
document as locally; there the token's name proposes, approves and makes ``--fix``'s
fixes (``--as`` is refused), and the review reads the server's store under the server's
data rules (``data-rules.yaml`` where it runs), the rules its gate decides with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

import typer

from releasegate.cli._common import (
    NO,
    EnvOpt,
    JsonOpt,
    WorkflowArg,
    app,
    command,
    console,
    emit,
    open_store,
    plural,
    policy_app,
)
from releasegate.cli._remote import refuse_as, server


def print_review(result: Mapping[str, Any]) -> None:
    """``review`` as text, from its ``--json`` document."""
    from rich.markup import escape

    out = console()
    workflows = result["workflows"]
    scope = ", ".join(workflows) if len(workflows) <= 3 else plural(len(workflows), "workflow")
    out.print(f"review of {scope or 'no workflows'} over the last {result['period_days']:g} days")
    findings = result["findings"]
    if not findings:
        out.print(
            "[green]nothing to fix[/]: every check passed (" + ", ".join(result["checks"]) + ")"
        )
    for f in findings:
        mark = "[bold red]![/]" if f["needs_action"] else "[dim]i[/]"
        where = (
            "project"
            if f["workflow"] is None
            else f["workflow"] + (f"@{f['env']}" if f["env"] else "")
        )
        out.print(
            f"{mark} [bold]{f['check']}[/] {escape(where)}: {escape(f['message'])}", soft_wrap=True
        )
        for line in f["evidence"]:
            out.print(f"    {escape(line)}", soft_wrap=True)
        out.print(f"    fix: `{escape(f['fix'])}`", soft_wrap=True)
    for line in result["fixed"]:
        out.print(f"fixed: {escape(line)}")
    action = sum(f["needs_action"] for f in findings)
    if findings:
        out.print(
            f"{plural(action, 'finding')} {'needs' if action == 1 else 'need'} action"
            + (f", {len(findings) - action} shown only" if action < len(findings) else "")
        )


@command(app, served=True)
def review(
    workflow: Annotated[
        str | None, typer.Argument(metavar="WORKFLOW", help="One workflow (default: all).")
    ] = None,
    fix: Annotated[
        bool, typer.Option("--fix", help="Apply the fixes review can make itself.")
    ] = False,
    period: Annotated[
        str | None,
        typer.Option(help="The review period, e.g. 90d (default) or 30d.", metavar="DURATION"),
    ] = None,
    as_json: JsonOpt = False,
) -> int | None:
    """Governance review: what reached production outside the loop, and how to fix it."""
    if (srv := server()) is not None:  # the server's store and data rules; it reads --period
        if fix:  # fixes are made as the token's name (an operator's)
            body = {"workflow": workflow, "period": period, "fix": True}
            result = srv.post("v1", "review", body=body)
        else:
            result = srv.get("v1", "review", workflow=workflow, period=period)
    else:
        from releasegate.domain.review import parse_period
        from releasegate.release.review import review as run_review

        span = parse_period(period)
        result = run_review(open_store(create=False), workflow, period=span, fix=fix).as_dict()
    if as_json:
        emit(result)
    else:
        print_review(result)
    return NO if result["needs_action"] else None


def _print_proposal(p: Mapping[str, Any]) -> None:
    from rich.markup import escape

    out = console()
    changes = ", ".join(
        f"{c['metric']} {c['from'] if c['from'] is not None else '(none)'} -> {c['to']}"
        for c in p["changes"]
    )
    out.print(
        f"proposal [bold]{p['proposal_id']}[/] for {escape(p['workflow'])}@{escape(p['env'])}: "
        f"{escape(changes)} ([bold]{p['state']}[/]; proposed by {escape(p['proposer'])}"
        + (f", approved by {escape(p['approver'])}" if p["approver"] else "")
        + ")",
        soft_wrap=True,
    )
    out.print(f"  reason: {p['reason']}", markup=False, soft_wrap=True)


@command(policy_app, name="propose", served=True)
def policy_propose(
    workflow: WorkflowArg,
    env: EnvOpt,
    floor: Annotated[
        list[str],
        typer.Option(help="A floor to set, METRIC=VALUE (repeatable).", metavar="METRIC=VALUE"),
    ],
    reason: Annotated[str, typer.Option(help="Why: the approver reads it.")],
    who: Annotated[
        str | None,
        typer.Option(
            "--as",
            help="Who proposes (default: RELEASEGATE_ACTOR; through a server: the token's "
            "name, and --as is refused).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Propose a policy change (a floor); another approver must approve it."""
    if (srv := server()) is not None:  # the server reads the floors as locally (exit 2)
        refuse_as(who, "a proposal", "proposer")
        where = ("v1", "workflows", workflow, "environments", env, "policy", "proposals")
        p = srv.post(*where, body={"floor": floor, "reason": reason})
    else:
        from releasegate.domain.ratchet import parse_floors
        from releasegate.release.policy_changes import propose

        floors = parse_floors(floor)  # a bad floor: exit 2 before the store is opened
        store = open_store(create=False)
        p = propose(store, workflow, env, floors, reason=reason, who=who).as_dict()
    if as_json:
        emit(p)
        return
    _print_proposal(p)
    cmd = f"releasegate policy approve {p['proposal_id']}"
    next_step = f"`{cmd}` with an approver's token" if srv is not None else f"`{cmd} --as APPROVER`"
    print(f"next: {next_step} (not {p['proposer']})")


@command(policy_app, name="approve", served=True)
def policy_approve(
    proposal: Annotated[str, typer.Argument(metavar="PROPOSAL", help="The proposal id.")],
    who: Annotated[
        str | None,
        typer.Option(
            "--as",
            help="The approver, by name (through a server: the token's name, and --as is refused).",
        ),
    ] = None,
    note: Annotated[str, typer.Option(help="A note kept with the approval.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Approve a proposed policy change: it becomes the environment's policy (audited)."""
    if (srv := server()) is not None:
        refuse_as(who, "an approval", "approver")
        p = srv.post("v1", "policy", "proposals", proposal, "approve", body={"note": note})
    else:
        from releasegate.errors import InputError
        from releasegate.release.policy_changes import approve

        if who is None:
            raise InputError("name who approves", field="--as", hint="--as NAME")
        p = approve(open_store(create=False), proposal, who=who, note=note).as_dict()
    if as_json:
        emit(p)
        return
    _print_proposal(p)
    print(
        f"the {p['env']} policy is now {p['policy_id'][:12]}; write the same floors into the "
        "workflow file, or its next `register` puts the file's policy back"
    )


@command(policy_app, name="show", served=True)
def policy_show(
    workflow: WorkflowArg,
    env: Annotated[
        str | None, typer.Option("--env", metavar="ENV", help="One environment (default: all).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show each environment's current policy, its history and its proposals."""
    from rich.markup import escape

    if (srv := server()) is not None:
        states = srv.get("v1", "workflows", workflow, "policy", env=env)
    else:
        from releasegate.release.policy_changes import show

        states = [s.as_dict() for s in show(open_store(create=False), workflow, env)]
    if as_json:
        emit(states)
        return
    out = console()
    for s in states:
        floors = s["policy"].get("floors") or {}
        shown = ", ".join(f"{m} >= {v:g}" for m, v in sorted(floors.items())) or "none"
        default = " (the default: the workflow file sets none)" if s["is_default"] else ""
        out.print(
            f"[bold]{escape(s['workflow'])}@{escape(s['env'])}[/]: "
            f"policy {s['policy_id'][:12]}{default}"
        )
        out.print(f"  floors: {shown}")
        if s["history"]:
            out.print(f"  {plural(len(s['history']), 'version')}:")
            for h in s["history"]:
                fl = ", ".join(f"{m} {v:g}" for m, v in sorted(h["floors"].items())) or "no floors"
                out.print(f"    {h['created_at'][:16]}  {h['policy_id'][:12]}  {fl}")
        for p in s["proposals"]:
            changes = ", ".join(f"{c['metric']} -> {c['to']:g}" for c in p["changes"])
            by = f"approved by {p['approver']}" if p["approver"] else "waiting for an approver"
            out.print(
                f"  proposal {p['proposal_id']}: {changes} ({p['state']}, by {p['proposer']}; "
                f"{by})",
                markup=False,
            )
        if floors:
            out.print(
                "  in the workflow file: policy: {"
                + f"{s['env']}: "
                + "{floors: {"
                + ", ".join(f"{m}: {v:g}" for m, v in sorted(floors.items()))
                + "}}}",
                markup=False,
            )
