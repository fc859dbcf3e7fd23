"""The loop: ``eval``, ``gate``, ``approve``, ``promote``, ``rollback``, then ``resolve``,
``history`` and ``report gate``: each parses its arguments, calls one release service and
prints a table or, with ``--json``, one JSON document. ``gate`` exits 1 unless it passed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from releasegate.cli._common import (
    NO,
    EnvOpt,
    JsonOpt,
    VersionArg,
    WorkflowArg,
    app,
    command,
    console,
    emit,
    out_path,
    report_app,
    writable,
)
from releasegate.cli._common import open_store as store
from releasegate.cli._remote import refuse_as, server

if TYPE_CHECKING:
    from releasegate.cli._remote import Server


@command(app, "eval", served=True)
def eval_(
    version: VersionArg,
    suite: Annotated[Path, typer.Option("--suite", metavar="FILE", help="Suite YAML file.")],
    epochs: Annotated[int, typer.Option(help="Samples per case.")] = 1,
    concurrency: Annotated[int, typer.Option(help="Cases in flight at once.")] = 8,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Call the model again.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a version on a suite: per-case outputs, scores, metrics with 95% intervals."""
    from releasegate.cli.render import eval_table, progress_bar

    if (srv := server()) is not None:
        from releasegate.release.loaders import sent_suite

        sent = {
            **sent_suite(suite),  # a missing or bad suite file: the local message, exit 2
            "epochs": epochs,
            "concurrency": concurrency,
            "no_cache": no_cache,
        }
        started = srv.post("v1", "versions", version, "evals", body=sent)
        with progress_bar("evaluating", quiet=False) as tick:
            doc = _finished(srv, started["eval_id"], tick)
        if as_json:
            emit(doc)
        else:
            eval_table(console(), _EvalDocument(doc))
        return
    from releasegate.release.evaluate import evaluate

    with progress_bar("evaluating", quiet=False) as tick:
        outcome = evaluate(
            store(),
            version,
            suite,
            epochs=epochs,
            concurrency=concurrency,
            use_cache=not no_cache,
            progress=tick,
        )
    if as_json:
        emit(outcome.to_dict())
    else:
        eval_table(console(), outcome)


def _finished(srv: Server, eval_id: str, tick: Callable[[int, int], None]) -> dict[str, Any]:
    """The ``eval --json`` document of the server's eval ``eval_id`` once it completed,
    its progress shown meanwhile; a failed or interrupted eval is one line, exit 2."""
    from releasegate.errors import PrerequisiteError

    state = srv.poll("v1", "evals", eval_id, tick=tick)
    if state["status"] == "completed":
        return dict(state["result"])
    why = state.get("error") or state.get("interrupted") or "no reason recorded"
    raise PrerequisiteError(
        f"eval {eval_id[:12]} {state['status']} on the server at {srv.url}: {why}",
        hint=f"its record: GET /v1/evals/{eval_id}; run `releasegate eval` again",
    )


class _EvalDocument:
    """An ``eval --json`` document read as the outcome ``eval_table`` prints."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.eval_id = doc["eval_id"]
        self.version_id = doc["version_id"]
        self.suite_id = doc["suite_id"]
        self.suite_name = doc["suite"]
        self.n_called = doc["called"]
        self.n_cached = doc["cached"]
        self.suite_changed = doc["suite_changed"]
        self.summary = doc


@command(app, served=True)
def gate(
    version: VersionArg,
    env: EnvOpt,
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="FILE", help="Write the Markdown report here."),
    ] = None,
    junit: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Write JUnit XML here.")
    ] = None,
    as_json: JsonOpt = False,
    report: Annotated[Path | None, typer.Option("--report", hidden=True)] = None,
) -> int | None:
    """Decide pass / fail / hold / needs-approval; exit 0 only on pass."""
    from releasegate.cli.render import gate_summary, progress_bar
    from releasegate.reports.gate_report import render_junit, render_markdown

    chosen = out_path(out, report)
    if chosen is not None:
        writable(chosen, "--out" if out is not None else "--report")
    if junit is not None:
        writable(junit, "--junit")
    if (srv := server()) is not None:
        from releasegate.domain.gate_report import GateReport

        doc = srv.post("v1", "versions", version, "gate", body={"env": env})
        if "job_id" in doc:  # 202: the server evaluates the baseline first
            with progress_bar("evaluating baseline") as tick:
                doc = srv.finished(doc, tick)
        decided = GateReport.from_json(doc)
        path = chosen
        if path is not None:  # the server keeps no file for a client: written here, if asked
            path.write_text(render_markdown(decided), encoding="utf-8")
        if junit is not None:
            junit.write_text(render_junit(decided), encoding="utf-8")
        if as_json:
            emit({**doc, "report_path": None if path is None else str(path)})
        else:
            gate_summary(console(), decided, path)
        return None if decided.verdict.value == "pass" else NO
    from releasegate.release.gate import gate as run_gate

    opened = store(create=False)
    with progress_bar("evaluating baseline") as tick:
        outcome = run_gate(opened, version, env, progress=tick)
    md = render_markdown(outcome.report)
    default = opened.location.home / "reports" / f"gate-{outcome.decision_id[:12]}.md"
    path = chosen or default
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(md, encoding="utf-8")
    if junit is not None:
        junit.write_text(render_junit(outcome.report), encoding="utf-8")
    if as_json:
        emit({**outcome.report.to_json(), "report_path": str(path)})
    else:
        gate_summary(console(), outcome.report, path)
    return None if outcome.decision.passed else NO


@command(app, served=True)
def approve(
    version: VersionArg,
    env: EnvOpt,
    as_: Annotated[
        str | None,
        typer.Option(
            "--as",
            metavar="NAME",
            help="Who approves (through a server: the token's name, and --as is refused).",
        ),
    ] = None,
    note: Annotated[str, typer.Option(help="A note for the record.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Approve a version for an environment (nobody approves their own change)."""
    from releasegate.errors import InputError

    if (srv := server()) is not None:
        refuse_as(as_, "an approval", "approver")
        approved = srv.post("v1", "versions", version, "approve", body={"env": env, "note": note})
    else:
        from dataclasses import asdict

        from releasegate.release.promote import approve as do_approve
        from releasegate.release.refs import os_user

        if not as_:
            raise InputError("name who approves", field="--as", hint="--as NAME")
        done = do_approve(
            store(create=False), version, env, approver=as_, note=note, os_user=os_user()
        )
        approved = asdict(done)
    if as_json:
        emit(approved)
    else:
        console().print(
            f"{approved['approver']} approved {approved['version_id'][:12]} for {env} "
            f"as {approved['role']}",
            markup=False,
        )


@command(app, served=True)
def promote(
    version: VersionArg,
    env: EnvOpt,
    canary: Annotated[
        float | None,
        typer.Option("--canary", metavar="PCT", help="Start a rollout: this % gets the version."),
    ] = None,
    steps: Annotated[
        str | None,
        typer.Option(
            metavar="STEPS", help="The rollout's ramp, e.g. 5,25,50,100 (default: the policy's)."
        ),
    ] = None,
    shadow: Annotated[
        bool,
        typer.Option(
            "--shadow", help="Start a shadow rollout: served to nobody, run beside the stable."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Move the environment to this version, if it passed the gate with its approvals."""
    if canary is not None or steps is not None or shadow:
        from releasegate.cli.cmd_rollout import start_rollout

        start_rollout(version, env, canary, steps, as_json, shadow=shadow)
        return
    if (srv := server()) is not None:
        moved = srv.post("v1", "versions", version, "promote", body={"env": env})
    else:
        from dataclasses import asdict

        from releasegate.release.promote import promote as do_promote

        moved = asdict(do_promote(store(create=False), version, env))
    if as_json:
        emit(moved)
    elif moved["changed"]:
        prev = moved["previous_id"][:12] if moved["previous_id"] else "nothing"
        console().print(f"{moved['workflow']}@{env}: {prev} -> [bold]{moved['version_id'][:12]}[/]")
    else:
        console().print(f"{moved['version_id'][:12]} already runs in {moved['workflow']}@{env}")


@command(app, served=True)
def rollback(
    workflow: WorkflowArg,
    env: EnvOpt,
    to: Annotated[
        str | None, typer.Option(metavar="VERSION", help="A version that ran here before.")
    ] = None,
    reason: Annotated[str, typer.Option(help="Why, for the record.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Move the environment back to the previous approved version, in one step."""
    if (srv := server()) is not None:
        body = {"to": to, "reason": reason}
        moved = srv.post("v1", "workflows", workflow, "environments", env, "rollback", body=body)
    else:
        from dataclasses import asdict

        from releasegate.release.promote import rollback as do_rollback

        moved = asdict(do_rollback(store(create=False), workflow, env, to=to, reason=reason))
    if as_json:
        emit(moved)
    else:
        prev = moved["previous_id"][:12] if moved["previous_id"] else ""
        console().print(
            f"rolled back {workflow}@{env}: {prev} -> [bold]{moved['version_id'][:12]}[/]"
        )


@command(app, served=True)
def resolve(
    workflow: WorkflowArg,
    env: EnvOpt,
    as_json: JsonOpt = False,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            metavar="SECONDS",
            help="Seconds to wait for the store before serving the last known version.",
        ),
    ] = 2.0,
) -> None:
    """Print the version that runs in an environment (with --json, its manifest too)."""
    from releasegate.cli._resolve import run_resolve

    run_resolve(workflow, env, as_json, timeout)


@command(app, served=True)
def history(workflow: WorkflowArg, env: EnvOpt, as_json: JsonOpt = False) -> None:
    """What ran in an environment, promotion by promotion."""
    srv = server()
    if srv is not None:
        rows = srv.get("v1", "workflows", workflow, "environments", env, "history")
    else:
        from releasegate.release.resolve import history as env_history

        rows = [
            {"seq": h.seq, **h.as_dict()} for h in env_history(store(create=False), workflow, env)
        ]
    if as_json:
        emit(rows)
        return
    from releasegate.cli.render import history_table

    out = console()
    out.print(history_table(f"{workflow}@{env}", rows, width=out.width))
    if srv is not None:
        found = srv.get("v1", "workflows", workflow, "environments")
        held = next((e.get("pause") for e in found if e["env"] == env), None)
    else:
        from releasegate.release.pause import paused

        pause = paused(store(create=False), workflow, env)
        held = None if pause is None else pause.as_dict()
    if held is not None:
        from rich.markup import escape

        console().print(
            f"[bold]PAUSED[/] since {held['at'][:16].replace('T', ' ')} UTC by "
            f"{escape(held['by'])}: {escape(held['reason'])} "
            "(every request goes to the human fallback; "
            f"`releasegate resume {workflow} --env {env}` lifts it)"
        )


FORMATS = ("markdown", "json", "junit")


@command(report_app, "gate", served=True)
def report_gate(
    ref: Annotated[str, typer.Argument(metavar="DECISION", help="Decision id, or a version.")],
    env: Annotated[
        str | None,
        typer.Option("--env", metavar="ENV", help="With a version: its latest decision here."),
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", metavar="FORMAT", help="markdown, json or junit.")
    ] = "markdown",
    out: Annotated[
        Path | None, typer.Option("--out", metavar="FILE", help="Write to this file.")
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", hidden=True)] = None,
) -> None:
    """Render a stored gate report again, as Markdown, JSON or JUnit XML."""
    import json
    import sys

    from releasegate.errors import InputError

    if fmt not in FORMATS:
        raise InputError(
            f"unknown format '{fmt}'", field="--format", hint="markdown, json or junit"
        )
    target = out_path(out, output)
    if target is not None:
        writable(target, "--out" if out is not None else "--output")
    if (srv := server()) is not None:  # the server renders it, byte for byte the same
        where = ("v1", "versions", ref, "gate") if env is not None else ("v1", "decisions", ref)
        text = srv.get_text(*where, env=env, format=fmt)
    else:
        from releasegate.release.inspect import gate_report
        from releasegate.reports.gate_report import render_junit, render_markdown

        report = gate_report(store(create=False), ref, env)
        if fmt == "markdown":
            text = render_markdown(report)
        elif fmt == "junit":
            text = render_junit(report)
        else:
            text = json.dumps(report.to_json(), indent=2, sort_keys=True, default=str) + "\n"
    if target is None:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        target.write_text(text, encoding="utf-8")
