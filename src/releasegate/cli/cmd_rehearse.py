"""``rehearse``: rehearse a rollback on degraded copies of what an environment serves.

Each mutation of the current version is registered as an experiment and gated on the
current suite; the worst variant goes out, is rolled back, and ``resolve`` must answer the
original again. Exit codes: 0 the original serves again and the gate caught every
mutation; 1 the rollback did not restore it, or the suite let a mutation through (or could
not tell one from the original), or production without ``--allow-production`` (nothing
written); 2 bad input (an unknown workflow or environment). With ``RELEASEGATE_URL`` it
runs on the server as a job (``POST .../rehearse``, then ``GET /v1/jobs/{id}``), the
same output and exit code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from releasegate.cli._common import EnvOpt, JsonOpt, WorkflowArg, app, command, emit, open_store
from releasegate.cli._errors import NO
from releasegate.cli._remote import server


def _seconds(s: float | None) -> str:
    return "-" if s is None else f"{s:.2f} s"


def print_rehearsal(doc: dict[str, Any]) -> None:
    """A rehearsal's ``--json`` document as the table a person reads (a local run's or a
    server's alike)."""
    from releasegate.domain.rehearsal import MutationOutcome

    where = f"{doc['workflow']}@{doc['env']}"
    mutations = [MutationOutcome.from_dict(m) for m in doc["mutations"]]
    for undone_id in doc["undone"]:
        print(
            f"undid rehearsal {undone_id[:12]}, which crashed: {where} serves "
            f"{doc['original_id'][:12]} again"
        )
    print(f"rehearsal {doc['rehearsal_id'][:12]} of {where} (serving {doc['original_id'][:12]})")
    print("mutations:")
    for m in mutations:
        if not m.is_applied:
            print(f"  {m.name:<21} skipped: {m.skipped}")
            continue
        if m.is_caught:
            what = "caught by the gate"
        elif m.is_inconclusive:
            what = "held: the suite cannot tell it from the original"
        else:
            what = f"LET THROUGH ({m.verdict})"
        score = "-" if m.score is None else f"{m.score:.3f}"
        print(f"  {m.name:<21} {what}; score {score}; {m.description}")
    deployed = (doc["deployed_id"] or "")[:12]
    how = {
        "gate": "caught by gate",
        "runs": "missed by the gate, found in the runs",
    }.get(doc["detected_by"] or "", "not caught by the gate")
    print(f"deployed the worst variant: {doc['deployed_mutation']} ({deployed}, {how})")
    shown = next((m for m in mutations if m.version_id == doc["deployed_id"]), None)
    if shown is not None and shown.detection:
        print(f"  detection: {shown.detection}")
    restored = "yes" if doc["restored"] else "NO"
    print(f"rolled back with: {doc['rollback_command']}")
    if doc["rollback_error"]:
        print(f"  the rollback was refused: {doc['rollback_error']}")
    print(f"original serving again (resolve): {restored}")
    print(
        f"time to detect: {_seconds(doc['time_to_detect_s'])}; "
        f"time to revert: {_seconds(doc['time_to_revert_s'])}"
    )
    score = "-" if doc["mutation_score"] is None else f"{doc['mutation_score']:.0%}"
    applied = [m for m in mutations if m.is_applied]
    gated = len([m for m in applied if m.verdict is not None])
    caught = len([m for m in applied if m.is_caught])
    print(f"mutation score: {score} ({caught} of {gated} caught)")
    weak = [m for m in mutations if m.is_escaped] + [m for m in mutations if m.is_inconclusive]
    if weak:
        names = ", ".join(m.name for m in weak)
        print(f"the suite is too weak: it did not catch {names}. Cases that would have:")
        for m in weak:
            print(f"  {m.name}:")
            for line in m.proposed:
                print(f"    {line}")
    print(f"result: {doc['result']}")


@command(app, served=True)
def rehearse(
    workflow: WorkflowArg,
    env: EnvOpt,
    allow_production: Annotated[
        bool,
        typer.Option(
            "--allow-production", help="Rehearse on production too (it serves a bad version)."
        ),
    ] = False,
    suite: Annotated[
        Path | None,
        typer.Option(
            "--suite", metavar="FILE", help="The suite file the proposed add-case lines name."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> int | None:
    """Rehearse a rollback: gate degraded variants, deploy the worst, roll back, verify."""
    from releasegate.cli.render import progress_bar

    suite_file = str(suite) if suite is not None else "SUITE_FILE"
    if (srv := server()) is not None:
        body = {"allow_production": allow_production, "suite_file": suite_file}
        started = srv.post("v1", "workflows", workflow, "environments", env, "rehearse", body=body)
        with progress_bar("rehearsing") as tick:
            doc = srv.finished(started, tick)
    else:
        from releasegate.release.rehearse import rehearse as run_rehearsal

        with progress_bar("rehearsing") as tick:  # on stderr, and only on a terminal
            done = run_rehearsal(
                open_store(create=False),
                workflow,
                env,
                allow_production=allow_production,
                suite_file=suite_file,
                progress=tick,
            )
        doc = done.to_dict()
    if as_json:
        emit(doc)
    else:
        print_rehearsal(doc)
    return None if doc["ok"] else NO
