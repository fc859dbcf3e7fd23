"""Suite commands: ``suite add-case`` (a case from an incident) and ``suite plan``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from releasegate.cli._common import JsonOpt, command, console, emit, plural, suite_app
from releasegate.cli._common import open_store as store


@command(suite_app, "add-case")
def suite_add_case(
    suite: Annotated[Path, typer.Argument(metavar="SUITE_FILE", help="Suite YAML file.")],
    reason: Annotated[str, typer.Option(help="Why: the incident or bug it comes from.")],
    input_: Annotated[str | None, typer.Option("--input", help="The case's input.")] = None,
    from_run: Annotated[
        str | None,
        typer.Option(
            "--from-run", metavar="RUN_ID", help="Take the input from this production run."
        ),
    ] = None,
    expected: Annotated[str | None, typer.Option(help="The expected output.")] = None,
    case_id: Annotated[
        str | None, typer.Option("--id", metavar="ID", help="Case id (default: next).")
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option(metavar="TAG", help="A tag; repeat for more.")
    ] = None,
    must_pass: Annotated[bool, typer.Option("--must-pass", help="The gate needs it.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Add a case to a suite (from an incident): a new suite version, used by the next gate."""
    from releasegate.errors import InputError
    from releasegate.release.suites import add_case, case_from_run

    opened = store()
    if (input_ is None) == (from_run is None):
        raise InputError("give the case's input: --input TEXT or --from-run RUN_ID (one)")
    metadata = None
    case_input: Any = input_
    if from_run is not None:
        case_input, metadata = case_from_run(opened, from_run)
    added = add_case(
        opened,
        suite,
        input=case_input,
        metadata=metadata,
        expected=expected,
        case_id=case_id,
        tags=tag or (),
        must_pass=must_pass,
        reason=reason,
    )
    if as_json:
        emit(added)
    else:
        prev = added.previous_id[:12] if added.previous_id else "none"
        console().print(
            f"added case [bold]{added.case_id}[/] to {added.cases_file.name}: "
            f"suite {prev} -> [bold]{added.suite_id[:12]}[/] "
            f"({plural(added.cases, 'case')}); the next gate uses it"
        )


@command(suite_app, "plan")
def suite_plan(
    version: Annotated[str, typer.Argument(metavar="VERSION", help="The version of the pilot.")],
    suite: Annotated[
        Path, typer.Option("--suite", metavar="FILE", help="Suite YAML file of the pilot eval.")
    ],
    env: Annotated[
        str | None,
        typer.Option("--env", metavar="ENV", help="Read the margin and baseline from here."),
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option(
            "--baseline", metavar="VERSION", help="Pair against this version (default: what runs)."
        ),
    ] = None,
    margin: Annotated[
        float | None, typer.Option("--margin", help="Override the policy's margin.")
    ] = None,
    power: Annotated[
        float,
        typer.Option("--power", help="Chance an equal-quality candidate passes the gate."),
    ] = 0.9,
    as_json: JsonOpt = False,
) -> None:
    """How many cases the policy's margin needs, from a pilot eval already stored."""
    from releasegate.release.plan import plan

    outcome = plan(
        store(create=False),
        version,
        suite,
        env=env,
        baseline_ref=baseline,
        margin=margin,
        power=power,
    )
    if as_json:
        emit(outcome.to_dict())
        return
    from releasegate.cli.render import plan_table

    plan_table(console(), outcome)
