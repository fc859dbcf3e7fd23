"""Progressive rollouts: ``promote --canary``, and ``rollout status|advance|abort|check``.

``rollout check`` is what cron, CI or a scheduler calls: it reads the runs served since the
last check, aborts a canary shown worse (weight 0, audited, the responders alerted) and
exits 1 then, so the job that called it notices; it holds otherwise, or advances when the
policy says ``auto_advance``. When the policy has ``pause_on`` ceilings and one is
shown exceeded, it pauses the environment (audited with the evidence, alerted). Exit
codes keep the contract: 0 done, 1 the answer is no (an abort, a pause, a refused
advance), 2 bad input (bad steps, an unknown environment), nothing written.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from releasegate.cli._common import (
    NO,
    EnvOpt,
    JsonOpt,
    WorkflowArg,
    command,
    console,
    emit,
    open_store,
    rollout_app,
)


def start_canary(
    version: str, env: str, canary: float | None, steps: str | None, as_json: bool
) -> None:
    """``promote VERSION --env ENV --canary PCT [--steps 5,25,50,100]``."""
    from releasegate.domain.rollout import parse_steps_flag
    from releasegate.release.rollout import Checked, rollout_dict, start

    ramp = parse_steps_flag(steps) if steps is not None else None
    r = start(open_store(create=False), version, env, canary_pct=canary, steps=ramp)
    if as_json:
        emit(rollout_dict(Checked(r, None, 0)))
        return
    console().print(
        f"{r.workflow}@{env}: rollout of [bold]{r.canary_id[:12]}[/] started at "
        f"{r.weight:g}% (stable {r.stable_id[:12]}); steps "
        + " -> ".join(f"{s:g}%" for s in r.steps)
    )
    console().print(f"next: `releasegate rollout check {r.workflow} --env {env}` every few minutes")


def _show(data: dict[str, Any]) -> None:
    out = console()
    weight = f"{data['weight']:g}%"
    out.print(
        f"{data['workflow']}@{data['env']}: rollout of [bold]{data['canary_id'][:12]}[/] "
        f"over {data['stable_id'][:12]}: [bold]{data['state']}[/] at {weight} "
        f"(step {data['step']} of {len(data['steps'])}: "
        + " -> ".join(f"{s:g}%" for s in data["steps"])
        + ")"
    )
    if data["reason"]:
        out.print(f"  {data['reason']}")
    out.print(
        f"  runs: canary {data['canary_runs']:,} ({data['step_runs']:,} in this step, "
        f"{data['min_runs_per_step']:,} needed), stable {data['stable_runs']:,}"
        + (f"; read now {data['runs_read']:,}" if data["runs_read"] else "")
    )
    outcome = data.get("outcome")
    if outcome:
        label = {"abort": "ABORT", "hold": "hold", "advance": "eligible to advance"}
        out.print(f"  check: [bold]{label[outcome['action']]}[/]")
        for reason in outcome["reasons"]:
            out.print(f"    {reason}")
    if data.get("alert"):
        out.print(f"  alert raised: {data['alert']['message']}")


def _report(checked: Any, as_json: bool, sent: list[Any] | None = None) -> None:
    from releasegate.release.rollout import rollout_dict

    data = rollout_dict(checked)
    if sent:
        data["alerts_sent"] = [{"message": a.message, "routed": a.routed} for a in sent]
    if as_json:
        emit(data)
    else:
        _show(data)
        for a in sent or []:
            print(f"  alert sent: {', '.join(a.routed)}", file=sys.stderr)


@command(rollout_app, "status")
def rollout_status(workflow: WorkflowArg, env: EnvOpt, as_json: JsonOpt = False) -> None:
    """The newest rollout of the environment and what its evidence says."""
    from releasegate.release.rollout import status

    _report(status(open_store(create=False), workflow, env), as_json)


@command(rollout_app, "advance")
def rollout_advance(workflow: WorkflowArg, env: EnvOpt, as_json: JsonOpt = False) -> None:
    """Move the canary to the next step; into 100% it becomes the environment's version."""
    from releasegate.release.rollout import Checked, advance

    _report(Checked(advance(open_store(create=False), workflow, env), None, 0), as_json)


@command(rollout_app, "abort")
def rollout_abort(
    workflow: WorkflowArg,
    env: EnvOpt,
    reason: Annotated[str, typer.Option(help="Why, for the record.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Weight 0 now: the stable version serves everything again."""
    from releasegate.release.rollout import Checked, abort

    stopped = abort(open_store(create=False), workflow, env, reason=reason)
    _report(Checked(stopped, None, 0), as_json)


@command(rollout_app, "check")
def rollout_check(workflow: WorkflowArg, env: EnvOpt, as_json: JsonOpt = False) -> int | None:
    """Compare canary and stable on the runs since the last check; abort (exit 1) if worse."""
    from releasegate.monitor.alerts import resend_due
    from releasegate.release.rollout import check

    store = open_store(create=False)
    checked = check(store, workflow, env)
    sent = resend_due(store, workflow, env)  # the abort's or pause's alert, any left unsent
    _report(checked, as_json, sent)
    if not as_json:
        from releasegate.cli.cmd_production import _auto_pause_lines

        _auto_pause_lines(checked.auto_pause, [])
    return NO if checked.is_no else None
