"""``compare``: a pairwise judge between two versions on the same cases.

Both versions need an eval on the suite; the judge reads their cached outputs,
each case in both orders, and the command prints the win rate with its 95%
interval, the wins, losses and ties, how often the two orders disagreed, and
the cases the candidate did not win. Exit 0 whatever the verdict: it is a
report, not a gate. With ``RELEASEGATE_URL`` the suite and judge files are sent and the
server judges, as a job (``POST /v1/versions/{candidate}/compare``, then
``GET /v1/jobs/{id}``): the same output and exit code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from releasegate.cli._common import JsonOpt, app, command, emit, plural
from releasegate.cli._common import open_store as store
from releasegate.cli._remote import server

SHOWN_CASES = 20
OUTCOME_STYLE = {"win": "green", "loss": "red", "tie": "yellow", None: "dim"}


@command(app, served=True)
def compare(
    candidate: Annotated[str, typer.Argument(metavar="CANDIDATE", help="The new version.")],
    baseline: Annotated[str, typer.Argument(metavar="BASELINE", help="The version to beat.")],
    suite: Annotated[
        Path,
        typer.Option("--suite", metavar="FILE", help="Suite YAML file both were evaluated on."),
    ],
    judge: Annotated[
        Path, typer.Option("--judge", metavar="FILE", help="Judge YAML file: model, rubric.")
    ],
    concurrency: Annotated[int, typer.Option(help="Judge calls in flight at once.")] = 8,
    as_json: JsonOpt = False,
) -> None:
    """Judge CANDIDATE against BASELINE case by case, in both orders; win rate with 95% CI."""
    from releasegate.cli.render import progress_bar

    if (srv := server()) is not None:
        from releasegate.errors import InputError
        from releasegate.release.loaders import load_yaml, suite_files

        cases = suite_files(suite)  # a missing or bad file: the local message, exit 2
        load_yaml(judge, InputError)
        sent = {
            "baseline": baseline,
            "suite": suite.read_text(encoding="utf-8"),
            "source": str(suite),
            "files": cases,
            "judge": judge.read_text(encoding="utf-8"),
            "judge_source": str(judge),
            "concurrency": concurrency,
        }
        started = srv.post("v1", "versions", candidate, "compare", body=sent)
        with progress_bar("judging") as tick:
            report = srv.finished(started, tick)
    else:
        from releasegate.release.compare import compare as run_compare

        opened = store(create=False)
        with progress_bar("judging") as tick:
            outcome = run_compare(
                opened, candidate, baseline, suite, judge, concurrency=concurrency, progress=tick
            )
        report = outcome.to_dict()
    if as_json:
        emit(report)
    else:
        _render(report)


def _render(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False)
    j = report["judge"]
    pin = j.get("revision") or j.get("digest")
    console.print(
        f"compare {report['workflow']}: [bold]{report['candidate_id'][:12]}[/] vs "
        f"{report['baseline_id'][:12]} on suite {escape(report['suite'])} "
        f"({report['suite_id'][:12]})"
    )
    console.print(
        f"judge {escape(j['model'])}@{escape(str(pin))} (prompt {j['prompt_hash'][:12]}, "
        f"rubric {j['rubric_hash'][:12]}): {plural(report['called'], 'judge call')}, "
        f"{report['cached']} from cache"
    )
    wr = report["win_rate"]
    table = Table()
    for col in ("win rate [95% CI]", "n", "wins", "losses", "ties", "inconsistent", "not judged"):
        table.add_column(col)
    rate = "n/a" if wr is None else f"{wr['estimate']:.3f} [{wr['low']:.3f}, {wr['high']:.3f}]"
    table.add_row(
        rate,
        str(report["n"]),
        str(report["wins"]),
        str(report["losses"]),
        str(report["ties"]),
        str(report["inconsistent"]),
        str(report["not_judged"]),
    )
    console.print(table)
    if report["inconsistent"]:
        console.print(
            f"  [yellow]{plural(report['inconsistent'], 'pair')} got different verdicts in the two "
            "orders (position bias); they count as ties[/]"
        )
    not_won = [c for c in report["cases"] if c["outcome"] != "win"]
    if not_won:
        cases = Table(title="cases the candidate did not win")
        for col in ("case", "outcome", "candidate first", "baseline first", "note / reason"):
            cases.add_column(col)
        for c in not_won[:SHOWN_CASES]:
            first, second = c.get("candidate_first") or {}, c.get("baseline_first") or {}
            reason = c["note"] or first.get("reason") or second.get("reason") or ""
            style = OUTCOME_STYLE.get(c["outcome"], "")
            cases.add_row(
                escape(str(c["case_id"])),
                f"[{style}]{c['outcome'] or 'not judged'}[/]",
                escape(str(first.get("prefers") or "-")),
                escape(str(second.get("prefers") or "-")),
                escape(reason),
            )
        console.print(cases)
        if len(not_won) > SHOWN_CASES:
            console.print(f"  ... and {len(not_won) - SHOWN_CASES} more (see --json)")
    usage = report["judge_usage"]
    if usage["calls"]:
        console.print(
            f"judge tokens {usage['tokens_in']} in, {usage['tokens_out']} out; "
            f"cost ${usage['cost_usd']:.4f}"
        )
