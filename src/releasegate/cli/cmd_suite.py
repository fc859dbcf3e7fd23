"""Suite commands: ``suite add-case`` (a case from an incident) and ``suite plan``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from releasegate.cli._common import JsonOpt, command, console, emit, plural, suite_app
from releasegate.cli._common import open_store as store
from releasegate.cli._remote import server

if TYPE_CHECKING:
    from releasegate.cli._remote import Server


@command(suite_app, "add-case", served=True)
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
    from releasegate.release.review_queue import check_suite_file
    from releasegate.release.suites import check_case_input, check_reason

    check_case_input(input_, from_run)
    check_reason(reason)
    check_suite_file(suite)  # either way before a store, a lock file or a request is made
    case = {"expected": expected, "id": case_id, "tag": tag or [], "must_pass": must_pass}
    if (srv := server()) is not None:
        body = {**case, "reason": reason, "input": input_, "from_run": from_run}
        doc = case_through(srv, suite, ("v1", "suites", "cases"), body)
    else:
        import dataclasses

        from releasegate.release.suites import add_case, case_input

        opened = store()
        value, metadata = case_input(opened, input_, from_run)
        added = add_case(
            opened,
            suite,
            input=value,
            metadata=metadata,
            expected=expected,
            case_id=case_id,
            tags=tag or (),
            must_pass=must_pass,
            reason=reason,
        )
        doc = {**dataclasses.asdict(added), "cases_file": str(added.cases_file)}
    if as_json:
        emit(doc)
    else:
        prev = doc["previous_id"][:12] if doc["previous_id"] else "none"
        console().print(
            f"added case [bold]{doc['case_id']}[/] to {Path(doc['cases_file']).name}: "
            f"suite {prev} -> [bold]{doc['suite_id'][:12]}[/] "
            f"({plural(doc['cases'], 'case')}); the next gate uses it"
        )


def case_through(
    srv: Server, suite: Path, where: tuple[str, ...], body: dict[str, Any]
) -> dict[str, Any]:
    """A case added through a server (``suite add-case``, ``queue case``; the suite file
    checked first, ``check_suite_file``): the suite file and its cases file sent with
    ``body`` to ``where``, and the line the server answers
    (``appended``) appended here, so the file and the suite registered there are one.
    The answer, with ``cases_file`` the file written here, as a local run names it."""
    from releasegate.release.loaders import sent_suite
    from releasegate.release.suites import append_sent_case, locked

    with locked(suite):  # as locally: clients on this machine take turns on the file
        sent = sent_suite(suite)
        doc: dict[str, Any] = srv.post(*where, body={**body, **sent})
        line = doc.pop("appended")
        doc["cases_file"] = str(append_sent_case(suite, sent["files"], line))
    return doc


@command(suite_app, "plan", served=True)
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
    if (srv := server()) is not None:
        from releasegate.release.loaders import sent_suite

        options = {"env": env, "baseline": baseline, "margin": margin, "power": power}
        doc = srv.post("v1", "versions", version, "plan", body={**sent_suite(suite), **options})
    else:
        from releasegate.release.plan import plan

        doc = plan(
            store(create=False),
            version,
            suite,
            env=env,
            baseline_ref=baseline,
            margin=margin,
            power=power,
        ).to_dict()
    if as_json:
        emit(doc)
        return
    from releasegate.cli.render import plan_table

    plan_table(console(), doc)
