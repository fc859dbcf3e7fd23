"""``rehearse``: rehearse a rollback on degraded copies of what an environment serves.

Each mutation of the current version is registered as an experiment and gated on the
current suite; the worst variant goes out, is rolled back, and ``resolve`` must answer the
original again. Exit codes: 0 the original serves again and the gate caught every
mutation; 1 the rollback did not restore it, or the suite let a mutation through (or could
not tell one from the original), or production without ``--allow-production`` (nothing
written); 2 bad input (an unknown workflow or environment).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from releasegate.cli._common import EnvOpt, JsonOpt, WorkflowArg, app, command, emit, open_store
from releasegate.cli._errors import NO

if TYPE_CHECKING:
    from releasegate.release.rehearse import RehearsalOutcome


def _seconds(s: float | None) -> str:
    return "-" if s is None else f"{s:.2f} s"


def print_rehearsal(done: RehearsalOutcome) -> None:
    r = done.rehearsal
    where = f"{r.workflow}@{r.env}"
    for u in done.undone:
        print(
            f"undid rehearsal {u.rehearsal_id[:12]}, which crashed: {where} serves "
            f"{u.original_id[:12]} again"
        )
    print(f"rehearsal {r.rehearsal_id[:12]} of {where} (serving {r.original_id[:12]})")
    print("mutations:")
    for m in r.mutations:
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
    deployed = (r.deployed_id or "")[:12]
    how = {
        "gate": "caught by gate",
        "runs": "missed by the gate, found in the runs",
    }.get(done.detected_by or "", "not caught by the gate")
    print(f"deployed the worst variant: {done.deployed_mutation} ({deployed}, {how})")
    shown = next((m for m in r.mutations if m.version_id == r.deployed_id), None)
    if shown is not None and shown.detection:
        print(f"  detection: {shown.detection}")
    restored = "yes" if r.is_restored else "NO"
    print(f"rolled back with: {done.rollback_command}")
    if done.rollback_error:
        print(f"  the rollback was refused: {done.rollback_error}")
    print(f"original serving again (resolve): {restored}")
    print(
        f"time to detect: {_seconds(r.time_to_detect_s)}; "
        f"time to revert: {_seconds(r.time_to_revert_s)}"
    )
    score = "-" if r.mutation_score is None else f"{r.mutation_score:.0%}"
    gated = len([m for m in r.applied if m.verdict is not None])
    caught = len([m for m in r.applied if m.is_caught])
    print(f"mutation score: {score} ({caught} of {gated} caught)")
    weak = [*r.escaped, *r.inconclusive]
    if weak:
        names = ", ".join(m.name for m in weak)
        print(f"the suite is too weak: it did not catch {names}. Cases that would have:")
        for m in weak:
            print(f"  {m.name}:")
            for line in m.proposed:
                print(f"    {line}")
    print(f"result: {r.result}")


@command(app)
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
    from releasegate.release.rehearse import rehearse as run_rehearsal

    with progress_bar("rehearsing") as tick:  # on stderr, and only on a terminal
        done = run_rehearsal(
            open_store(create=False),
            workflow,
            env,
            allow_production=allow_production,
            suite_file=str(suite) if suite is not None else "SUITE_FILE",
            progress=tick,
        )
    if as_json:
        emit(done.to_dict())
    else:
        print_rehearsal(done)
    return None if done.is_ok else NO
