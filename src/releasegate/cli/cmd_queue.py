"""The human review queue: ``queue list``, ``queue mark``, ``queue case``, ``queue log``.

Not ``review``: that command is the governance review (versions outside the gate, stale
suites...). Here a person reads production runs: the escalated, edited and low-feedback
ones and a seeded random sample, marks each good or bad (with a corrected expected
output), and turns the bad ones into suite cases. Exit codes: 0 done; 1 refused (the
same review again, a review already made a case); 2 bad input (an unknown run, a bad
period), nothing written.
"""

from __future__ import annotations

from datetime import UTC
from pathlib import Path
from typing import Annotated

import typer

from releasegate.cli._common import JsonOpt, WorkflowArg, command, console, emit, plural, queue_app
from releasegate.cli._common import open_store as store

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


@command(queue_app, "list")
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
    from releasegate.domain.review_queue import QueueRules
    from releasegate.release.review_queue import review_queue

    rules = QueueRules(
        feedback_below=feedback_below, sample_share=sample, sample_max=sample_max, seed=seed
    )
    q = review_queue(
        store(create=False), workflow, env, period=period, rules=rules, limit=limit, after=after
    )
    if as_json:
        emit(q.as_dict())
        return
    from rich.table import Table

    out = console()
    out.print(
        f"[bold]{workflow}@{env}[/], {q.period.label}: {plural(q.open, 'run')} to review "
        f"({q.reviewed} of {q.queued} queued reviewed)"
    )
    if q.items:
        table = Table(box=None, pad_edge=False)
        for col in ("RUN", "STARTED", "WHY", "VERSION", "FEEDBACK", "STATUS"):
            table.add_column(col, no_wrap=col != "WHY")
        for i in q.items:
            table.add_row(
                i.run_id,
                f"{i.started_at:%Y-%m-%d %H:%M}",
                ", ".join(i.reasons),
                i.version_id[:12],
                "" if i.feedback is None else f"{i.feedback:+.2f}",
                i.status,
            )
        out.print(table)
    counts = ", ".join(f"{c.reason} {c.runs}" for c in q.by_reason)
    out.print(f"queued by reason: {counts}")
    out.print(f"sample: {q.sample_note}")
    if q.next:
        out.print(f"more: releasegate queue list {workflow} --env {env} --after '{q.next}'")


@command(queue_app, "mark")
def queue_mark(
    run_id: RunArg,
    good: Annotated[bool, typer.Option("--good", help="The output was right.")] = False,
    bad: Annotated[bool, typer.Option("--bad", help="The output was wrong.")] = False,
    expected: Annotated[
        str | None, typer.Option(metavar="TEXT", help="The output it should have given.")
    ] = None,
    note: Annotated[str, typer.Option(metavar="TEXT", help="A note for the record.")] = "",
    as_: Annotated[
        str | None, typer.Option("--as", metavar="NAME", help="Who reviews (default: you).")
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
    from releasegate.release.refs import os_user
    from releasegate.release.review_queue import check_suite_file, mark_run, review_to_case

    if good == bad:
        raise InputError("say what the run was: --good or --bad (one)", field="--good/--bad")
    if to_suite is None and (reason or must_pass):
        raise InputError("--reason and --must-pass go with --to-suite FILE", field="--to-suite")
    opened = store(create=False)
    if to_suite is not None:
        check_suite_file(to_suite)  # a bad suite file is refused before the review is stored
    marked = mark_run(
        opened,
        run_id,
        "good" if good else "bad",
        expected=expected,
        note=note,
        who=as_,
        os_user=os_user(),
    )
    made = None
    if to_suite is not None:
        made = review_to_case(
            opened,
            marked.review.run_id,
            reviewer=marked.review.reviewer,
            suite_path=to_suite,
            reason=reason,
            must_pass=must_pass,
            who=as_,
        )
    if as_json:
        emit({**marked.as_dict(), "case": None if made is None else made.as_dict()})
        return
    r = marked.review
    was = f" (was {marked.previous.verdict})" if marked.previous else ""
    console().print(
        f"{r.reviewer} marked run [bold]{r.run_id}[/] {r.verdict}{was}"
        + (" with a corrected output" if r.expected is not None else "")
        + (f"; in the queue for: {', '.join(r.reasons)}" if r.reasons else "")
    )
    if made is not None:
        _print_case(made)


@command(queue_app, "case")
def queue_case(
    run_id: RunArg,
    suite: Annotated[Path, typer.Option("--suite", metavar="FILE", help="Suite YAML file.")],
    reviewer: Annotated[
        str | None,
        typer.Option(metavar="NAME", help="Whose review (default: yours, or --as)."),
    ] = None,
    reason: Annotated[str, typer.Option(metavar="WHY", help="Why (default: the review).")] = "",
    must_pass: Annotated[
        bool, typer.Option("--must-pass", help="The gate fails if this case fails.")
    ] = False,
    as_: Annotated[str | None, typer.Option("--as", metavar="NAME", help="Who adds it.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Turn a reviewed run into a suite case (`suite add-case --from-run`, with the review)."""
    from releasegate.release.review_queue import review_to_case

    made = review_to_case(
        store(create=False),
        run_id,
        reviewer=reviewer or as_,
        suite_path=suite,
        reason=reason,
        must_pass=must_pass,
        who=as_,
    )
    if as_json:
        emit(made.as_dict())
    else:
        _print_case(made)


def _print_case(made: object) -> None:
    from releasegate.release.review_queue import ReviewCase

    assert isinstance(made, ReviewCase)
    prev = made.previous_suite_id[:12] if made.previous_suite_id else "none"
    where = made.cases_file.name if made.cases_file else "the stored suite"
    console().print(
        f"added case [bold]{made.case_id}[/] to {where} from run {made.run_id} "
        f"(review {made.review_id[:12]}): suite {prev} -> [bold]{made.suite_id[:12]}[/] "
        f"({plural(made.cases, 'case')}); the next gate uses it"
    )


@command(queue_app, "log")
def queue_log(
    workflow: WorkflowArg,
    env: QueueEnv = "production",
    period: PeriodOpt = "7d",
    limit: Annotated[int, typer.Option(metavar="N", help="Show the latest N reviews.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """The reviews of the period's runs, with coverage, edit rate and share marked bad."""
    from releasegate.release.review_queue import review_log

    log = review_log(store(create=False), workflow, env, period=period, limit=limit)
    if as_json:
        emit(log.as_dict())
        return
    from rich.table import Table

    out = console()
    out.print(f"[bold]{workflow}@{env}[/], {log.period.label}: {log.stats.sentence()}")
    if log.reviews:
        table = Table(box=None, pad_edge=False)
        for col in ("RUN", "REVIEWER", "VERDICT", "WHEN", "WHY QUEUED", "CASE", "NOTE"):
            table.add_column(col, no_wrap=col not in ("NOTE", "WHY QUEUED"))
        for r in log.reviews:
            table.add_row(
                r.run_id,
                r.reviewer,
                r.verdict + (" (corrected)" if r.expected is not None else ""),
                f"{r.updated_at.astimezone(UTC):%Y-%m-%d %H:%M}",
                ", ".join(r.reasons) or "-",
                r.case_id or "",
                r.note,
            )
        out.print(table)
    elif log.stats.reviews == 0:
        out.print(f"no reviews yet: `releasegate queue list {workflow} --env {env}`")
