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
from releasegate.cli._remote import server


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
    ramp = None
    if steps is not None:
        from releasegate.domain.rollout import parse_steps_flag

        ramp = parse_steps_flag(steps)
    if (srv := server()) is not None:
        body = {
            "env": env,
            "canary": canary,
            "steps": None if ramp is None else list(ramp),
            "shadow": shadow,
        }
        data = srv.post("v1", "versions", version, "promote", body=body)
    else:
        from releasegate.release.rollout import Checked, rollout_dict, start

        r = start(
            open_store(create=False), version, env, canary_pct=canary, steps=ramp, shadow=shadow
        )
        data = rollout_dict(Checked(r, None, 0))
    if as_json:
        emit(data)
        return
    workflow, canary_id, stable_id = data["workflow"], data["canary_id"], data["stable_id"]
    ramp_text = " -> ".join(f"{s:g}%" for s in data["steps"])
    if data["mode"] == "shadow":
        console().print(
            f"{workflow}@{env}: shadow of [bold]{canary_id[:12]}[/] started (served to "
            f"nobody; stable {stable_id[:12]} serves everything); then {ramp_text}"
        )
        console().print(
            "the application runs version.shadow on the same input and records it with "
            "client.run(version.shadow, input=..., shadow=True)"
        )
    else:
        console().print(
            f"{workflow}@{env}: rollout of [bold]{canary_id[:12]}[/] started at "
            f"{data['weight']:g}% (stable {stable_id[:12]}); steps {ramp_text}"
        )
    console().print(f"next: `releasegate rollout check {workflow} --env {env}` every few minutes")


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


def _report(data: dict[str, Any], as_json: bool) -> None:
    """Print a rollout's document (``rollout_dict``, as the server answers it)."""
    if as_json:
        emit(data)
    elif data["state"] is None:
        console().print(
            f"no rollout ever ran in {data['workflow']}@{data['env']}: nothing to check; "
            f"start one with `releasegate promote VERSION --env {data['env']} --canary PCT`"
        )
    else:
        _show(data)
        for a in data.get("alerts_sent") or []:
            print(f"  alert sent: {', '.join(a['routed'])}", file=sys.stderr)


def _paused_line(held: dict[str, Any], data: dict[str, Any]) -> None:
    """The environment's pause (``Pause.as_dict()``) under a rollout: its shares wait for
    the resume."""
    from rich.markup import escape

    workflow, env = data["workflow"], data["env"]
    after = (
        f", the rollout's shares apply again after `releasegate resume {workflow} --env {env}`"
        if data["state"] == "running"
        else ""
    )
    console().print(
        f"  [bold]PAUSED[/] since {held['at'][:16].replace('T', ' ')} UTC by "
        f"{escape(held['by'])}: {escape(held['reason'])}; every request goes to the human "
        f"fallback{after}"
    )


def _path(workflow: str, env: str, *more: str) -> tuple[str, ...]:
    return ("v1", "workflows", workflow, "environments", env, "rollout", *more)


@command(rollout_app, "status", served=True)
def rollout_status(workflow: WorkflowArg, env: EnvOpt, as_json: JsonOpt = False) -> None:
    """The newest rollout of the environment and what its evidence says."""
    if (srv := server()) is not None:
        data = srv.get(*_path(workflow, env))
    else:
        from releasegate.release.pause import paused
        from releasegate.release.rollout import rollout_dict, status

        store = open_store(create=False)
        checked = status(store, workflow, env)
        held = paused(store, workflow, env)  # the weights apply only once it is resumed
        data = {**rollout_dict(checked), "paused": None if held is None else held.as_dict()}
    if as_json:
        emit(data)
        return
    _report(data, as_json)
    if data["paused"] is not None:
        _paused_line(data["paused"], data)


@command(rollout_app, "advance", served=True)
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
    if (srv := server()) is not None:
        if force:
            from releasegate.errors import InputError

            raise InputError(
                "not available through a server: the server advances an eligible step only",
                field="--force",
                hint="unset RELEASEGATE_URL to force a step on the store itself",
            )
        data = srv.post(*_path(workflow, env, "advance"))
    else:
        from releasegate.release.rollout import Checked, advance, rollout_dict

        moved = advance(open_store(create=False), workflow, env, force=force, reason=reason)
        data = rollout_dict(Checked(moved, None, 0))
    _report(data, as_json)


@command(rollout_app, "abort", served=True)
def rollout_abort(
    workflow: WorkflowArg,
    env: EnvOpt,
    reason: Annotated[str, typer.Option(help="Why, for the record.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Weight 0 now: the stable version serves everything again."""
    if (srv := server()) is not None:
        data = srv.post(*_path(workflow, env, "abort"), body={"reason": reason})
    else:
        from releasegate.release.rollout import Checked, abort, rollout_dict

        stopped = abort(open_store(create=False), workflow, env, reason=reason)
        data = rollout_dict(Checked(stopped, None, 0))
    _report(data, as_json)


@command(rollout_app, "check", served=True)
def rollout_check(workflow: WorkflowArg, env: EnvOpt, as_json: JsonOpt = False) -> int | None:
    """Compare canary (or shadow) and stable on the runs since the last check; abort (exit 1)
    if worse."""
    srv = server()
    if srv is not None:
        data = srv.post(*_path(workflow, env, "check"))
    else:
        from releasegate.monitor.alerts import resend_due
        from releasegate.monitor.quality import arm_quality
        from releasegate.release.rollout import check, rollout_dict

        store = open_store(create=False)
        checked = check(store, workflow, env, quality=arm_quality)
        sent = resend_due(store, workflow, env)  # the abort's or pause's alert, any left unsent
        data = rollout_dict(checked, workflow, env)
        data["alerts_sent"] = [{"message": a.message, "routed": a.routed} for a in sent]
    _report(data, as_json)
    auto = data["pause"]
    if not as_json:
        from releasegate.cli.cmd_production import _auto_pause_lines

        _auto_pause_lines(auto, [])
        if srv is not None:
            found = srv.get("v1", "workflows", workflow, "environments")
            held = next((e.get("pause") for e in found if e["env"] == env), None)
        else:
            from releasegate.release.pause import paused

            pause = paused(store, workflow, env)
            held = None if pause is None else pause.as_dict()
        if held is not None and not (auto and auto["severe"]):
            _paused_line(held, data)  # (a severe one was said just above)
    is_no = data["aborted_now"] or bool(auto and auto["severe"])
    return NO if is_no else None


@command(rollout_app, "shadow-replay", served=True)
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
    from releasegate.cli.render import progress_bar

    if (srv := server()) is not None:
        body = {"candidate": candidate, "limit": limit, "concurrency": concurrency}
        where = ("v1", "workflows", workflow, "environments", env, "rollout", "shadow-replay")
        started = srv.post(*where, body=body)
        with progress_bar("replaying") as tick:
            data = srv.finished(started, tick)
    else:
        from releasegate.release.replay import shadow_replay

        with progress_bar("replaying") as tick:  # on stderr, and only on a terminal
            result = shadow_replay(
                open_store(create=False),
                workflow,
                env,
                candidate=candidate,
                limit=limit,
                concurrency=concurrency,
                progress=tick,
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
    return NO if data["outcome"] == "worse" else None
