"""Suite commands beyond ``add-case``: ``suite plan``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from releasegate.cli._errors import guarded
from releasegate.cli.app import JsonOpt, _emit, _store, suite_app


@suite_app.command("plan")
def suite_plan(
    version: Annotated[str, typer.Argument(metavar="VERSION", help="The version of the pilot.")],
    suite: Annotated[Path, typer.Option("--suite", help="Suite YAML file of the pilot eval.")],
    env: Annotated[
        str | None, typer.Option("--env", help="Read the margin and baseline from here.")
    ] = None,
    baseline: Annotated[
        str | None,
        typer.Option("--baseline", help="Pair against this version (default: what runs)."),
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

    def run() -> None:
        from releasegate.release.plan import plan

        outcome = plan(
            _store(create=False),
            version,
            suite,
            env=env,
            baseline_ref=baseline,
            margin=margin,
            power=power,
        )
        if as_json:
            _emit(outcome.to_dict())
            return
        from rich.console import Console

        from releasegate.cli.render import plan_table

        plan_table(Console(highlight=False), outcome)

    guarded(run)
