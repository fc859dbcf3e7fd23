"""Progressive rollouts: ``promote --canary|--shadow``, ``rollout status|advance|abort|check``
and ``rollout shadow-replay``.

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


def start_rollout(
    version: str,
    env: str,
    canary: float | None,
    steps: str | None,
    as_json: bool,
    *,
    shadow: bool = False,
) -> None:
    """``promote VERSION --env ENV (--canary PCT | --shadow) [--steps 5,25,50,100]``."""
    from releasegate.domain.rollout import parse_steps_flag
    from releasegate.release.rollout import Checked, rollout_dict, start

    ramp = parse_steps_flag(steps) if steps is not None else None
    r = start(open_store(create=False), version, env, canary_pct=canary, steps=ramp, shadow=shadow)
    if as_json:
        emit(rollout_dict(Checked(r, None, 0)))
        return
    ramp_text = " -> ".join(f"{s:g}%" for s in r.steps)
    if r.is_shadow:
        console().print(
            f"{r.workflow}@{env}: shadow of [bold]{r.canary_id[:12]}[/] started (served to "
            f"nobody; stable {r.stable_id[:12]} serves everything); then {ramp_text}"
        )
        console().print(
            "the application runs version.shadow on the same input and records it with "
            "client.run(version.shadow, input=..., shadow=True)"
        )
    else:
        console().print(
            f"{r.workflow}@{env}: rollout of [bold]{r.canary_id[:12]}[/] started at "
            f"{r.weight:g}% (stable {r.stable_id[:12]}); steps {ramp_text}"
        )
    console().print(f"next: `releasegate rollout check {r.workflow} --env {env}` every few minutes")


def _show(data: dict[str, Any]) -> None:
    from rich.markup import escape  # reasons are the users' words: "[/]" is no markup

    out = console()
    weight = f"{data['weight']:g}%"
    if data["state"] == "aborted" and data["step"]:  # weight 0 now: say the step it stopped at
        weight = f"{data['steps'][data['step'] - 1]:g}%"
    ramp = " -> ".join(f"{s:g}%" for s in data["steps"])
    shadow = data["mode"] == "shadow"
    where = (
        f"in shadow (served to nobody; then {ramp})"
        if shadow
        else f"at {weight} (step {data['step']} of {len(data['steps'])}: {ramp})"
    )
    out.print(
        f"{data['workflow']}@{data['env']}: rollout of [bold]{data['canary_id'][:12]}[/] "
        f"over {data['stable_id'][:12]}: [bold]{data['state']}[/] {where}"
    )
    if data["reason"]:
        out.print(f"  {escape(data['reason'])}")
    read_now = f"; read now {data['runs_read']:,}" if data["runs_read"] else ""
    if shadow:
        out.print(
            f"  runs: shadow paired {data['canary_runs']:,} ({data['min_runs_per_step']:,} "
            f"needed), unpaired {data['unpaired']:,}, stable {data['stable_runs']:,}{read_now}"
        )
    else:
        out.print(
            f"  runs: canary {data['canary_runs']:,} ({data['step_runs']:,} in this step, "
            f"{data['min_runs_per_step']:,} needed), stable {data['stable_runs']:,}{read_now}"
        )
    if data.get("replay"):
        replay = data["replay"]
        out.print(
            f"  last shadow-replay: {replay['outcome']} on {replay['pairs']:,} pairs "
            f"({replay['skipped_no_text']:,} runs without stored input skipped)"
        )
    outcome = data.get("outcome")
    if outcome:
        label = {"abort": "ABORT", "hold": "hold", "advance": "eligible to advance"}
        out.print(f"  check: [bold]{label[outcome['action']]}[/]")
        for reason in outcome["reasons"]:
            out.print(f"    {escape(reason)}")
    if data.get("alert"):
        out.print(f"  alert raised: {escape(data['alert']['message'])}")


def _report(
    checked: Any, as_json: bool, sent: list[Any] | None = None, where: tuple[str, str] = ("", "")
) -> None:
    from releasegate.release.rollout import rollout_dict

    data = rollout_dict(checked, *where)
    if sent:
        data["alerts_sent"] = [{"message": a.message, "routed": a.routed} for a in sent]
    if as_json:
        emit(data)
    elif data["state"] is None:
        console().print(
            f"no rollout ever ran in {data['workflow']}@{data['env']}: nothing to check; "
            f"start one with `releasegate promote VERSION --env {data['env']} --canary PCT`"
        )
    else:
        _show(data)
        for a in sent or []:
            print(f"  alert sent: {', '.join(a.routed)}", file=sys.stderr)


def _paused_line(held: Any, checked: Any, workflow: str, env: str) -> None:
    """The environment's pause under a rollout: its shares wait for the resume."""
    from rich.markup import escape

    after = (
        f", the rollout's shares apply again after `releasegate resume {workflow} --env {env}`"
        if checked.rollout is not None and checked.rollout.is_running
        else ""
    )
    console().print(
        f"  [bold]PAUSED[/] since {held.at:%Y-%m-%d %H:%M} UTC by {escape(held.by)}: "
        f"{escape(held.reason)}; every request goes to the human fallback{after}"
    )


@command(rollout_app, "status")
def rollout_status(workflow: WorkflowArg, env: EnvOpt, as_json: JsonOpt = False) -> None:
    """The newest rollout of the environment and what its evidence says."""
    from releasegate.release.pause import paused
    from releasegate.release.rollout import rollout_dict, status

    store = open_store(create=False)
    checked = status(store, workflow, env)
    held = paused(store, workflow, env)  # the weights apply only once it is resumed
    if as_json:
        emit({**rollout_dict(checked), "paused": None if held is None else held.as_dict()})
        return
    _report(checked, as_json)
    if held is not None:
        _paused_line(held, checked, workflow, env)


@command(rollout_app, "advance")
def rollout_advance(
    workflow: WorkflowArg,
    env: EnvOpt,
    force: Annotated[
        bool, typer.Option("--force", help="Advance a step the check does not call eligible.")
    ] = False,
    reason: Annotated[str, typer.Option(help="Why, for the record (needed with --force).")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Move the canary to the next step once the check calls it eligible (else --force
    --reason R); into 100% it becomes the environment's version."""
    from releasegate.release.rollout import Checked, advance

    moved = advance(open_store(create=False), workflow, env, force=force, reason=reason)
    _report(Checked(moved, None, 0), as_json)


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
    """Compare canary (or shadow) and stable on the runs since the last check; abort (exit 1)
    if worse."""
    from releasegate.monitor.alerts import resend_due
    from releasegate.monitor.quality import arm_quality
    from releasegate.release.rollout import check

    store = open_store(create=False)
    checked = check(store, workflow, env, quality=arm_quality)
    sent = resend_due(store, workflow, env)  # the abort's or pause's alert, any left unsent
    _report(checked, as_json, sent, (workflow, env))
    if not as_json:
        from releasegate.cli.cmd_production import _auto_pause_lines
        from releasegate.release.pause import paused

        _auto_pause_lines(checked.auto_pause, [])
        held = paused(store, workflow, env)
        if held is not None and not (checked.auto_pause and checked.auto_pause.is_severe):
            _paused_line(held, checked, workflow, env)  # (a severe one was said just above)
    return NO if checked.is_no else None


@command(rollout_app, "shadow-replay")
def rollout_shadow_replay(
    workflow: WorkflowArg,
    env: EnvOpt,
    candidate: Annotated[
        str | None,
        typer.Option(metavar="VERSION", help="Replay this version (default: the rollout's)."),
    ] = None,
    limit: Annotated[int, typer.Option(metavar="N", help="The newest N served runs.")] = 200,
    concurrency: Annotated[int, typer.Option(metavar="N", help="Calls at once.")] = 8,
    as_json: JsonOpt = False,
) -> int | None:
    """Run the candidate on the inputs of recent production runs and compare them paired,
    input by input (exit 1 if it is shown worse)."""
    from releasegate.release.replay import shadow_replay

    result = shadow_replay(
        open_store(create=False),
        workflow,
        env,
        candidate=candidate,
        limit=limit,
        concurrency=concurrency,
    )
    data = result.to_dict()
    if as_json:
        emit(data)
    else:
        from rich.markup import escape

        out = console()
        label = {"worse": "WORSE", "not_worse": "not worse", "inconclusive": "inconclusive"}
        out.print(
            f"{workflow}@{env}: {data['candidate_id'][:12]} replayed on {data['pairs']:,} "
            f"production runs of {data['stable_id'][:12]} ({data['distinct_inputs']:,} distinct "
            f"inputs; {data['skipped_no_text']:,} of {data['runs_read']:,} runs read had no "
            f"stored input and were skipped): [bold]{label[data['outcome']]}[/]"
        )
        for s in data["signals"]:
            out.print(f"  {escape(s['reason'])}")
        lat = data["latency_ms"]
        if lat["stable"] is not None and lat["candidate"] is not None:
            out.print(
                f"  latency (reported, not judged): stable median {lat['stable']:.1f} ms in "
                f"production, candidate {lat['candidate']:.1f} ms here"
            )
        out.print(
            f"  error rate: a candidate no worse is called worse at most "
            f"{data['alpha']:.0%} of the time (all signals together, "
            f"{data['alpha_per_signal']:.2%} each)"
        )
        where = data["recorded_on"]
        out.print(f"  recorded: audit log{f' and rollout {where[:12]} evidence' if where else ''}")
    return NO if result.is_worse else None
