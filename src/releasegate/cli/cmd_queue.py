"""The human review queue: ``queue list``, ``queue mark``, ``queue case``, ``queue log``.

Not ``review``: that command is the governance review (versions outside the gate, stale
suites...). Here a person reads production runs: the escalated, edited and low-feedback
ones and a seeded random sample, marks each good or bad (with a corrected expected
output), and turns the bad ones into suite cases. Exit codes: 0 done; 1 refused (the
same review again, a review already made a case); 2 bad input (an unknown run, a bad
period), nothing written.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from releasegate.cli._common import JsonOpt, WorkflowArg, command, console, emit, plural, queue_app
from releasegate.cli._common import open_store as store
from releasegate.cli._remote import server

if TYPE_CHECKING:
    from releasegate.cli._remote import Server

QueueEnv = Annotated[
    str, typer.Option("--env", metavar="ENV", help="Environment (default: production).")
]
PeriodOpt = Annotated[
    str,
    typer.Option(
        "--period",
        metavar="PERIOD",
        help="7d (the last 7 days), 2026-W49 (an ISO week) or a date (its week).",
    ),
]
RunArg = Annotated[str, typer.Argument(metavar="RUN_ID", help="A run id (or a unique prefix).")]


@command(queue_app, "list", served=True)
def queue_list(
    workflow: WorkflowArg,
    env: QueueEnv = "production",
    period: PeriodOpt = "7d",
    limit: Annotated[int, typer.Option(metavar="N", help="Runs per page (1-500).")] = 50,
    after: Annotated[
        str | None, typer.Option(metavar="CURSOR", help="Continue after this page's `next`.")
    ] = None,
    feedback_below: Annotated[
        float, typer.Option(metavar="X", help="Queue runs whose feedback is below X (-1..1).")
    ] = 0.0,
    sample: Annotated[
        float, typer.Option(metavar="SHARE", help="Share of runs to sample at random (0..1).")
    ] = 0.02,
    sample_max: Annotated[int, typer.Option(metavar="N", help="At most N sampled runs.")] = 50,
    seed: Annotated[str, typer.Option(metavar="SEED", help="The sample's seed.")] = "releasegate",
    as_json: JsonOpt = False,
) -> None:
    """The runs to review: escalated, low feedback, edited, and a seeded random sample."""
    from releasegate.domain.review_queue import QueueRules, check_page

    rules = QueueRules(  # checked here, so a bad option is the same message either way
        feedback_below=feedback_below, sample_share=sample, sample_max=sample_max, seed=seed
    )
    page: dict[str, Any] = {"period": period, "limit": check_page(limit), "after": after}
    if (srv := server()) is not None:
        where = ("v1", "workflows", workflow, "environments", env, "queue")
        options = {"feedback_below": feedback_below, "sample": sample, "sample_max": sample_max}
        found = srv.get(*where, **page, **options, seed=seed)
    else:
        from releasegate.release.review_queue import review_queue

        found = review_queue(store(create=False), workflow, env, rules=rules, **page).as_dict()
    if as_json:
        emit(found)
    else:
        _queue_table(found)


def _queue_table(q: dict[str, Any]) -> None:
    """``queue list``'s table, from its ``--json`` document (local or a server's)."""
    from rich.table import Table

    from releasegate.domain.review_queue import REASONS

    out = console()
    where = f"{q['workflow']}@{q['env']}"
    out.print(
        f"[bold]{where}[/], {q['period']['label']}: {plural(q['open'], 'run')} to review "
        f"({q['reviewed']} of {q['queued']} queued reviewed)"
    )
    if q["items"]:
        table = Table(box=None, pad_edge=False)
        for col in ("RUN", "STARTED", "WHY", "VERSION", "FEEDBACK", "STATUS"):
            table.add_column(col, no_wrap=col != "WHY")
        for i in q["items"]:
            table.add_row(
                i["run_id"],
                f"{datetime.fromisoformat(i['started_at']):%Y-%m-%d %H:%M}",
                ", ".join(i["reasons"]),
                i["version_id"][:12],
                "" if i["feedback"] is None else f"{i['feedback']:+.2f}",
                i["status"],
            )
        out.print(table)
    counts = ", ".join(f"{r} {q['by_reason'][r]}" for r in REASONS)
    out.print(f"queued by reason: {counts}")
    out.print(f"sample: {q['sample_note']}")
    if q["next"]:
        out.print(
            f"more: releasegate queue list {q['workflow']} --env {q['env']} --after '{q['next']}'"
        )


@command(queue_app, "mark", served=True)
def queue_mark(
    run_id: RunArg,
    good: Annotated[bool, typer.Option("--good", help="The output was right.")] = False,
    bad: Annotated[bool, typer.Option("--bad", help="The output was wrong.")] = False,
    expected: Annotated[
        str | None, typer.Option(metavar="TEXT", help="The output it should have given.")
    ] = None,
    note: Annotated[str, typer.Option(metavar="TEXT", help="A note for the record.")] = "",
    as_: Annotated[
        str | None,
        typer.Option(
            "--as",
            metavar="NAME",
            help="Who reviews (default: you; through a server: the token's name).",
        ),
    ] = None,
    to_suite: Annotated[
        Path | None,
        typer.Option("--to-suite", metavar="FILE", help="Also add the run to this suite."),
    ] = None,
    reason: Annotated[
        str, typer.Option(metavar="WHY", help="With --to-suite: why (default: the review).")
    ] = "",
    must_pass: Annotated[
        bool, typer.Option("--must-pass", help="With --to-suite: the gate needs the case.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Mark a run good or bad (again: the review is updated, on the record)."""
    from releasegate.errors import InputError
    from releasegate.release.review_queue import check_suite_file

    if good == bad:
        raise InputError("say what the run was: --good or --bad (one)", field="--good/--bad")
    if to_suite is None and (reason or must_pass):
        raise InputError("--reason and --must-pass go with --to-suite FILE", field="--to-suite")
    verdict = "good" if good else "bad"
    if (srv := server()) is not None:
        _signed_by_token(as_=as_)
    if to_suite is not None:
        check_suite_file(to_suite)  # refused before the review is stored (or sent)
    if srv is not None:
        body = {"run": run_id, "verdict": verdict, "expected": expected, "note": note}
        marked = srv.post("v1", "reviews", body=body)
        made = None
        if to_suite is not None:
            made = _case_through(srv, marked["run_id"], to_suite, reason, must_pass)
    else:
        from releasegate.release.refs import os_user
        from releasegate.release.review_queue import mark_run, review_to_case

        opened = store(create=False)
        done = mark_run(
            opened, run_id, verdict, expected=expected, note=note, who=as_, os_user=os_user()
        )
        marked = done.as_dict()
        made = None
        if to_suite is not None:
            made = review_to_case(
                opened,
                done.review.run_id,
                reviewer=done.review.reviewer,
                suite_path=to_suite,
                reason=reason,
                must_pass=must_pass,
                who=as_,
            ).as_dict()
    if as_json:
        emit({**marked, "case": made})
        return
    was = f" (was {marked['previous']['verdict']})" if marked["previous"] else ""
    console().print(
        f"{marked['reviewer']} marked run [bold]{marked['run_id']}[/] {marked['verdict']}{was}"
        + (" with a corrected output" if marked["expected"] is not None else "")
        + (f"; in the queue for: {', '.join(marked['reasons'])}" if marked["reasons"] else "")
    )
    if made is not None:
        _print_case(made)


@command(queue_app, "case", served=True)
def queue_case(
    run_id: RunArg,
    suite: Annotated[Path, typer.Option("--suite", metavar="FILE", help="Suite YAML file.")],
    reviewer: Annotated[
        str | None,
        typer.Option(
            metavar="NAME",
            help="Whose review (default: yours, or --as; through a server: the token's).",
        ),
    ] = None,
    reason: Annotated[str, typer.Option(metavar="WHY", help="Why (default: the review).")] = "",
    must_pass: Annotated[
        bool, typer.Option("--must-pass", help="The gate fails if this case fails.")
    ] = False,
    as_: Annotated[
        str | None,
        typer.Option(
            "--as", metavar="NAME", help="Who adds it (through a server: the token's name)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Turn a reviewed run into a suite case (`suite add-case --from-run`, with the review)."""
    from releasegate.release.review_queue import check_suite_file

    if (srv := server()) is not None:
        _signed_by_token(as_=as_, reviewer=reviewer)
    check_suite_file(suite)  # either way before a lock file or a request is made
    if srv is not None:
        made = _case_through(srv, run_id, suite, reason, must_pass)
    else:
        from releasegate.release.review_queue import review_to_case

        made = review_to_case(
            store(create=False),
            run_id,
            reviewer=reviewer or as_,
            suite_path=suite,
            reason=reason,
            must_pass=must_pass,
            who=as_,
        ).as_dict()
    if as_json:
        emit(made)
    else:
        _print_case(made)


def _signed_by_token(**named: str | None) -> None:
    """Through a server a review and its case are the token's: ``--as`` (or
    ``--reviewer``) naming someone is refused, exit 2, before anything is sent."""
    from releasegate.cli._remote import refuse_as

    for option, value in named.items():
        refuse_as(
            value,
            "a review and its case",
            "reviewer",
            option=f"--{option.rstrip('_')}",
            plural=True,
        )


def _case_through(
    srv: Server, run_id: str, suite: Path, reason: str, must_pass: bool
) -> dict[str, Any]:
    """The token's review of a run made a case of ``suite``, a file here (sent, and the
    server's line appended to its cases file)."""
    from releasegate.cli.cmd_suite import case_through

    body = {"run": run_id, "reason": reason, "must_pass": must_pass}
    made = case_through(srv, suite, ("v1", "reviews", "case"), body)
    return {**made, "appended": None}  # appended here already, as a local run appends it


def _print_case(made: dict[str, Any]) -> None:
    prev = made["previous_suite_id"][:12] if made["previous_suite_id"] else "none"
    where = Path(made["cases_file"]).name if made["cases_file"] else "the stored suite"
    console().print(
        f"added case [bold]{made['case_id']}[/] to {where} from run "
        f"{made['run_id']} (review {made['review_id'][:12]}): suite {prev} -> "
        f"[bold]{made['suite_id'][:12]}[/] ({plural(made['cases'], 'case')}); "
        "the next gate uses it"
    )


@command(queue_app, "log", served=True)
def queue_log(
    workflow: WorkflowArg,
    env: QueueEnv = "production",
    period: PeriodOpt = "7d",
    limit: Annotated[int, typer.Option(metavar="N", help="Show the latest N reviews.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """The reviews of the period's runs, with coverage, edit rate and share marked bad."""
    if (srv := server()) is not None:
        where = ("v1", "workflows", workflow, "environments", env, "reviews")
        log = srv.get(*where, period=period, limit=limit)
    else:
        from releasegate.release.review_queue import review_log

        log = review_log(store(create=False), workflow, env, period=period, limit=limit).as_dict()
    if as_json:
        emit(log)
        return
    from rich.table import Table

    out = console()
    out.print(f"[bold]{workflow}@{env}[/], {log['period']['label']}: {log['stats']['summary']}")
    if log["reviews"]:
        table = Table(box=None, pad_edge=False)
        for col in ("RUN", "REVIEWER", "VERDICT", "WHEN", "WHY QUEUED", "CASE", "NOTE"):
            table.add_column(col, no_wrap=col not in ("NOTE", "WHY QUEUED"))
        for r in log["reviews"]:
            table.add_row(
                r["run_id"],
                r["reviewer"],
                r["verdict"] + (" (corrected)" if r["expected"] is not None else ""),
                f"{datetime.fromisoformat(r['updated_at']).astimezone(UTC):%Y-%m-%d %H:%M}",
                ", ".join(r["reasons"]) or "-",
                r["case_id"] or "",
                r["note"],
            )
        out.print(table)
    elif log["stats"]["reviews"] == 0:
        out.print(f"no reviews yet: `releasegate queue list {workflow} --env {env}`")
