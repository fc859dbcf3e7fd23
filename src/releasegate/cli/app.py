"""The ``releasegate`` command: thin verbs over the release services.

Each command parses its arguments, calls one service, and renders a table or,
with ``--json``, one JSON document on stdout. Services are imported inside the
commands so that a cold ``releasegate resolve`` pays for SQLAlchemy, not numpy.
Exit codes: 0 done/passed, 1 the answer is no, 2 bad input, 70 a bug.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from releasegate.cli._errors import guarded

app = typer.Typer(
    name="releasegate",
    help="The governed release loop for LLM workflows: register, eval, gate, promote, roll back.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)
db_app = typer.Typer(help="The store's schema.", no_args_is_help=True)
app.add_typer(audit_app, name="audit")
report_app = typer.Typer(help="Documents: gate reports, weekly memos.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(report_app, name="report")
suite_app = typer.Typer(help="Eval suites.", no_args_is_help=True)
app.add_typer(suite_app, name="suite")
models_app = typer.Typer(
    help="Local models: what is installed, pinned and blessed.", no_args_is_help=True
)
app.add_typer(models_app, name="models")
runs_app = typer.Typer(help="Production runs: import and inspect.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
EnvOpt = Annotated[str, typer.Option("--env", help="Environment, e.g. staging or production.")]


def _store(create: bool = True) -> Any:
    from releasegate.store.engine import Store

    return Store.open(create=create)


def _emit(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


@app.command()
def init(as_json: JsonOpt = False) -> None:
    """Create the store (.releasegate/ here, or RELEASEGATE_DATABASE_URL)."""

    def run() -> None:
        from releasegate.store import audit_keys
        from releasegate.store.faults import display_url

        store = _store()
        loc = store.location
        shown = loc.url if loc.is_embedded else display_url(loc.url)  # password masked
        keys = store.audit_keys(create=True)
        where = audit_keys.describe(loc.home)
        if as_json:
            _emit(
                {
                    "database": shown,
                    "blobs": str(loc.blob_root),
                    "audit_key": where,
                    "audit_key_id": keys.newest.key_id,
                }
            )
        else:
            _console().print(
                f"store ready: [bold]{shown}[/]\nblobs: {loc.blob_root}\n"
                f"audit key: {where} ({keys.newest.key_id}; keep it secret and backed up)"
            )

    guarded(run)


@app.command()
def register(
    files: Annotated[
        list[Path],
        typer.Argument(metavar="FILE", help="Workflow YAML file (several with --check)."),
    ],
    reason: Annotated[str, typer.Option(help="Why this change.")] = "",
    owner: Annotated[str | None, typer.Option(help="Owner of the change.")] = None,
    parent: Annotated[str | None, typer.Option(help="Parent version (default: what runs).")] = None,
    experiment: Annotated[
        bool, typer.Option("--experiment", help="Track as an experiment.")
    ] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Only validate and print the id; write nothing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Register a workflow file's behaviour as an immutable, content-hashed version."""

    def run() -> None:
        from releasegate.errors import InputError
        from releasegate.release.register import read_workflow, register_spec

        if check:  # pre-commit passes every changed file at once
            specs = [(f, read_workflow(f)) for f in files]  # the first bad file stops it
            if as_json:
                found = [
                    {"file": str(f), "version_id": s.version_id, "workflow": s.name, "valid": True}
                    for f, s in specs
                ]
                _emit(found[0] if len(found) == 1 else found)
            else:
                for f, s in specs:
                    _console().print(
                        f"{f}: valid; version id [bold]{s.version_id[:12]}[/] "
                        f"of {s.name} (nothing written)"
                    )
            return
        if len(files) != 1:
            raise InputError(
                f"register takes one workflow file, got {len(files)}",
                field="FILE",
                hint="register them one at a time, or validate several with --check",
            )
        file = files[0]
        spec = read_workflow(file)  # parse before touching the store: bad input writes nothing
        result = register_spec(
            _store(),
            spec,
            reason=reason,
            owner=owner,
            parent=parent,
            experiment=experiment,
            source_dir=file.parent,
            source_file=file,
        )
        if as_json:
            _emit(
                {
                    "version_id": result.version_id,
                    "workflow": result.workflow,
                    "is_new": result.is_new,
                    "parent_id": result.parent_id,
                    "track": result.track,
                    "source_commit": result.source_commit,
                    "policies_changed": list(result.policies_changed),
                }
            )
            return
        c = _console()
        short = result.version_id[:12]
        if result.is_new:
            parent_s = result.parent_id[:12] if result.parent_id else "none"
            c.print(
                f"registered [bold]{short}[/] of {result.workflow} "
                f"(track {result.track}, parent {parent_s})"
            )
        else:
            c.print(
                f"already registered: [bold]{short}[/] of {result.workflow} (same content, same id)"
            )
        for env in result.policies_changed:
            c.print(f"policy for {env} updated")

    guarded(run)


@app.command()
def versions(
    workflow: Annotated[str, typer.Argument(metavar="WORKFLOW")], as_json: JsonOpt = False
) -> None:
    """List a workflow's versions, newest last, with where each runs."""

    def run() -> None:
        from releasegate.release.inspect import list_versions

        rows = list_versions(_store(create=False), workflow)
        if as_json:
            _emit(rows)
            return
        from rich import box
        from rich.table import Table

        # ids never wrap or get cut, so they can be copied from an 80-column terminal
        table = Table(title=f"versions of {workflow}", box=box.SIMPLE_HEAD, pad_edge=False)
        tracks = any(r["track"] != "release" for r in rows)
        cols = ["version", "created", "owner", *(["track"] if tracks else []), "parent"]
        for col in cols:
            table.add_column(col, no_wrap=True)
        table.add_column("running in")
        table.add_column("reason", ratio=1, overflow="fold")
        for r in rows:
            table.add_row(
                r["version_id"][:12],
                r["created_at"][:10],
                r["owner"] or "",
                *([r["track"]] if tracks else []),
                (r["parent_id"] or "")[:12],
                ", ".join(r["environments"]),
                r["reason"],
            )
        _console().print(table)

    guarded(run)


@app.command()
def show(
    version: Annotated[str, typer.Argument(metavar="VERSION")], as_json: JsonOpt = False
) -> None:
    """Show one version: its manifest, metadata, evals and gate decisions."""

    def run() -> None:
        from releasegate.release.inspect import show_version

        info = show_version(_store(create=False), version)
        if as_json:
            _emit(info)
            return
        import yaml

        c = _console()
        c.print(f"[bold]{info['version_id']}[/]  {info['workflow']}")
        for key in ("owner", "reason", "track", "parent_id", "source_commit", "created_at"):
            c.print(f"  {key}: {info[key]}")
        c.print(f"  running in: {', '.join(info['environments']) or 'nowhere'}")
        c.print("\n[bold]manifest[/]")
        c.print(
            yaml.safe_dump(info["manifest"], sort_keys=True, allow_unicode=True).rstrip(),
            markup=False,
        )
        if info["evals"]:
            c.print("\n[bold]evals[/]")
            for e in info["evals"]:
                c.print(
                    f"  {e['started_at'][:19]}  suite {e['suite_id'][:12]}  {e['status']}  "
                    + "  ".join(f"{k}={v:.3f}" for k, v in e["metrics"].items())
                )
        if info["decisions"]:
            c.print("\n[bold]gate decisions[/]")
            for d in info["decisions"]:
                c.print(f"  {d['created_at'][:19]}  {d['env']}: {d['verdict']}")

    guarded(run)


@app.command()
def diff(
    a: Annotated[str, typer.Argument(metavar="A")],
    b: Annotated[str, typer.Argument(metavar="B")],
    as_json: JsonOpt = False,
) -> None:
    """Show what changed from version A to version B, and the change class."""

    def run() -> None:
        from releasegate.release.inspect import diff_versions

        info = diff_versions(_store(create=False), a, b)
        if as_json:
            _emit(info)
            return
        c = _console()
        c.print(
            f"{info['a'][:12]} -> {info['b'][:12]}: change class "
            f"[bold]{info['change_class'] or 'none'}[/]"
        )
        for line in info["lines"]:
            style = "green" if line.startswith("+") else "red" if line.startswith("-") else ""
            c.print(line, style=style, markup=False)

    guarded(run)


@app.command(name="eval")
def eval_(
    version: Annotated[str, typer.Argument(metavar="VERSION")],
    suite: Annotated[Path, typer.Option("--suite", help="Suite YAML file.")],
    epochs: Annotated[int, typer.Option(help="Samples per case.")] = 1,
    concurrency: Annotated[int, typer.Option(help="Cases in flight at once.")] = 8,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Call the model again.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a version on a suite: per-case outputs, scores, metrics with 95% intervals."""

    def run() -> None:
        from releasegate.cli.render import eval_table, progress_bar
        from releasegate.release.evaluate import evaluate

        store = _store()
        with progress_bar("evaluating", quiet=False) as tick:
            outcome = evaluate(
                store,
                version,
                suite,
                epochs=epochs,
                concurrency=concurrency,
                use_cache=not no_cache,
                progress=tick,
            )
        if as_json:
            _emit(
                {
                    "eval_id": outcome.eval_id,
                    "version_id": outcome.version_id,
                    "suite_id": outcome.suite_id,
                    "called": outcome.n_called,
                    "cached": outcome.n_cached,
                    "suite_changed": outcome.suite_changed,
                    **outcome.summary,
                }
            )
            return
        eval_table(_console(), outcome)

    guarded(run)


@app.command()
def gate(
    version: Annotated[str, typer.Argument(metavar="VERSION")],
    env: EnvOpt,
    report: Annotated[Path | None, typer.Option(help="Write the Markdown report here.")] = None,
    junit: Annotated[Path | None, typer.Option(help="Write JUnit XML here.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Decide pass / fail / hold / needs-approval; exit 0 only on pass."""

    def run() -> None:
        from releasegate.cli.render import gate_summary, progress_bar
        from releasegate.release.gate import gate as run_gate
        from releasegate.reports.gate_report import render_junit, render_markdown

        store = _store(create=False)
        with progress_bar("evaluating baseline") as tick:
            outcome = run_gate(store, version, env, progress=tick)
        md = render_markdown(outcome.report)
        path = report or store.location.home / "reports" / f"gate-{outcome.decision_id[:12]}.md"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(md, encoding="utf-8")
        if junit is not None:
            junit.parent.mkdir(parents=True, exist_ok=True)
            junit.write_text(render_junit(outcome.report), encoding="utf-8")
        if as_json:
            _emit({**outcome.report.to_json(), "report_path": str(path)})
        else:
            gate_summary(_console(), outcome.report, path)
        if not outcome.decision.passed:
            sys.exit(1)

    guarded(run)


@app.command()
def approve(
    version: Annotated[str, typer.Argument(metavar="VERSION")],
    env: EnvOpt,
    as_: Annotated[str, typer.Option("--as", help="Who approves.")],
    note: Annotated[str, typer.Option(help="A note for the record.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Approve a version for an environment (nobody approves their own change)."""

    def run() -> None:
        from releasegate.release.promote import approve as do_approve

        vid, role = do_approve(_store(create=False), version, env, approver=as_, note=note)
        if as_json:
            _emit({"version_id": vid, "env": env, "approver": as_, "role": role})
        else:
            _console().print(f"{as_} approved {vid[:12]} for {env} as {role}")

    guarded(run)


@app.command()
def promote(
    version: Annotated[str, typer.Argument(metavar="VERSION")],
    env: EnvOpt,
    canary: Annotated[
        float | None,
        typer.Option("--canary", metavar="PCT", help="Start a rollout: this % gets the version."),
    ] = None,
    steps: Annotated[
        str | None,
        typer.Option(help="The rollout's ramp, e.g. 5,25,50,100 (default: the policy's)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Move the environment to this version, if it passed the gate with its approvals."""

    def run() -> None:
        from releasegate.release.promote import promote as do_promote

        if canary is not None or steps is not None:
            cmd_rollout.start_canary(version, env, canary, steps, as_json)
            return

        moved = do_promote(_store(create=False), version, env)
        if as_json:
            _emit(_moved(moved))
        elif moved.changed:
            prev = moved.previous_id[:12] if moved.previous_id else "nothing"
            _console().print(f"{moved.workflow}@{env}: {prev} -> [bold]{moved.version_id[:12]}[/]")
        else:
            _console().print(f"{moved.version_id[:12]} already runs in {moved.workflow}@{env}")

    guarded(run)


def _moved(moved: Any) -> dict[str, Any]:
    return {
        "workflow": moved.workflow,
        "env": moved.env,
        "version_id": moved.version_id,
        "previous_id": moved.previous_id,
        "action": moved.action,
        "changed": moved.changed,
    }


@app.command()
def rollback(
    workflow: Annotated[str, typer.Argument(metavar="WORKFLOW")],
    env: EnvOpt,
    to: Annotated[str | None, typer.Option(help="A version that ran here before.")] = None,
    reason: Annotated[str, typer.Option(help="Why, for the record.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Move the environment back to the previous approved version, in one step."""

    def run() -> None:
        from releasegate.release.promote import rollback as do_rollback

        moved = do_rollback(_store(create=False), workflow, env, to=to, reason=reason)
        if as_json:
            _emit(_moved(moved))
        else:
            prev = moved.previous_id[:12] if moved.previous_id else ""
            _console().print(
                f"rolled back {workflow}@{env}: {prev} -> [bold]{moved.version_id[:12]}[/]"
            )

    guarded(run)


@app.command()
def resolve(
    workflow: Annotated[str, typer.Argument(metavar="WORKFLOW")],
    env: EnvOpt,
    as_json: JsonOpt = False,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            help="Seconds to wait for the store before serving the last known version.",
        ),
    ] = 2.0,
) -> None:
    """Print the version that runs in an environment (with --json, its manifest too)."""

    from releasegate.cli._resolve import run_resolve

    guarded(lambda: run_resolve(workflow, env, as_json, timeout))


@app.command()
def history(
    workflow: Annotated[str, typer.Argument(metavar="WORKFLOW")],
    env: EnvOpt,
    as_json: JsonOpt = False,
) -> None:
    """What ran in an environment, promotion by promotion."""

    def run() -> None:
        from releasegate.release.resolve import history as env_history

        rows: list[dict[str, Any]] = [
            {"seq": h.seq, **h.as_dict()} for h in env_history(_store(create=False), workflow, env)
        ]
        if as_json:
            _emit(rows)
            return
        from rich.table import Table

        table = Table(title=f"{workflow}@{env}")
        for col in ("at", "action", "version", "from", "by", "reason"):
            table.add_column(col)
        for r in rows:
            table.add_row(
                r["at"][:19].replace("T", " "),
                r["action"],
                r["version_id"][:12],
                (r["previous_id"] or "")[:12],
                r["actor"],
                r["reason"],
            )
        _console().print(table)

    guarded(run)


@audit_app.command("log")
def audit_log(
    workflow: Annotated[str | None, typer.Option(help="Only this workflow.")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the newest N events.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the audit log."""

    def run() -> None:
        from releasegate.release.audit import audit_log as events_of

        events = events_of(_store(create=False), workflow=workflow, limit=limit)
        rows: list[dict[str, Any]] = [
            {
                "seq": e.seq,
                "at": e.at.isoformat(),
                "kind": e.kind,
                "actor": e.actor,
                "workflow": e.workflow,
                "subject": e.subject,
                "payload": dict(e.payload),
                "hash": e.hash,
            }
            for e in events
        ]
        if as_json:
            _emit(rows)
            return
        from rich.table import Table

        table = Table(title="audit log")
        for col in ("#", "at", "event", "by", "workflow", "subject"):
            table.add_column(col)
        for r in rows:
            table.add_row(
                str(r["seq"]),
                r["at"][:19].replace("T", " "),
                r["kind"],
                r["actor"],
                r["workflow"] or "",
                (r["subject"] or "")[:12],
            )
        _console().print(table)

    guarded(run)


@audit_app.command("verify")
def audit_verify(
    against: Annotated[
        str | None,
        typer.Option(
            "--against",
            metavar="SEQ:DIGEST",
            help="A head exported earlier (`audit head`): prove nothing up to it changed.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the keyed chain, its head, environments and approvals; exit 1 on a break."""

    def run() -> None:
        from releasegate.domain.audit import parse_head
        from releasegate.release.audit import audit_verify as verify

        exported = parse_head(against) if against is not None else None
        result = verify(_store(create=False), against=exported)
        broken = result.broken
        if as_json:
            _emit(
                {
                    "ok": result.ok,
                    "events": result.events,
                    "head": {"seq": result.head.seq, "digest": result.head.digest},
                    "against": None
                    if exported is None
                    else {"seq": exported.seq, "digest": exported.digest},
                    "unkeyed_events": result.unkeyed,
                    "key_ids": list(result.key_ids),
                    "broken": None
                    if broken is None
                    else {"seq": broken.seq, "reason": broken.reason},
                }
            )
        elif broken is None:
            keyed = f"signed with {', '.join(result.key_ids)}" if result.key_ids else "no events"
            if result.unkeyed:
                keyed += f"; events 1..{result.unkeyed} from before keying are anchored"
            _console().print(
                f"audit log intact: {result.events} events, chain verified to head "
                f"{result.head} ({keyed})"
            )
            if exported is not None:
                _console().print(f"nothing up to the exported head {exported.seq} changed")
        else:
            where = "" if broken.seq is None else f" at event {broken.seq}"
            _console(stderr=True).print(f"[bold red]audit log broken[/]{where}: {broken.reason}")
        if broken is not None:
            sys.exit(1)

    guarded(run)


@audit_app.command("head")
def audit_head(as_json: JsonOpt = False) -> None:
    """Print the head (SEQ:DIGEST), to keep in write-once storage or a CI log."""

    def run() -> None:
        from releasegate.release.audit import audit_head as head_of

        info = head_of(_store(create=False))
        if as_json:
            _emit(
                {
                    "seq": info.seq,
                    "digest": info.digest,
                    "head": str(info.head),
                    "key_id": info.key_id,
                    "at": info.at,
                }
            )
        else:
            sys.stdout.write(f"{info.head}\n")

    guarded(run)


@audit_app.command("rotate-key")
def audit_rotate_key(as_json: JsonOpt = False) -> None:
    """Sign from now on with a new key; the old one signs the event that names the new."""

    def run() -> None:
        from releasegate.release.audit import rotate_key

        done = rotate_key(_store(create=False))
        if as_json:
            _emit(
                {
                    "previous_key_id": done.previous_key_id,
                    "key_id": done.key_id,
                    "seq": done.seq,
                    "keys": done.key_file,
                }
            )
        else:
            _console().print(
                f"audit key rotated: {done.previous_key_id or 'none'} -> {done.key_id} "
                f"(event {done.seq}); keep every key in {done.key_file}: verify needs them all"
            )

    guarded(run)


@audit_app.command("restore-head")
def audit_restore_head(
    head: Annotated[
        str, typer.Argument(metavar="SEQ:DIGEST", help="The head you exported with `audit head`.")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Write back a deleted head record from an exported head, if the chain ends there."""

    def run() -> None:
        from releasegate.domain.audit import parse_head
        from releasegate.release.audit import restore_head

        result = restore_head(_store(create=False), parse_head(head, field="SEQ:DIGEST"))
        if as_json:
            _emit({"ok": result.ok, "head": str(result.head), "events": result.events})
        else:
            _console().print(f"head restored: {result.head}")
        if not result.ok and result.broken is not None:
            _console(stderr=True).print(f"[bold red]audit log broken[/]: {result.broken}")
            sys.exit(1)

    guarded(run)


@report_app.command("gate")
def report_gate(
    ref: Annotated[str, typer.Argument(metavar="DECISION", help="Decision id, or a version.")],
    env: Annotated[
        str | None, typer.Option("--env", help="With a version: its latest decision here.")
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="markdown, json or junit.")] = "markdown",
    output: Annotated[Path | None, typer.Option("--output", help="Write to this file.")] = None,
) -> None:
    """Render a stored gate report again, as Markdown, JSON or JUnit XML."""

    def run() -> None:
        from releasegate.domain.gate_report import GateReport
        from releasegate.errors import InputError
        from releasegate.release.inspect import gate_report
        from releasegate.reports.gate_report import render_junit, render_markdown

        def as_json(report: GateReport) -> str:
            return json.dumps(report.to_json(), indent=2, sort_keys=True, default=str) + "\n"

        renderers = {"markdown": render_markdown, "junit": render_junit, "json": as_json}
        if fmt not in renderers:
            raise InputError(
                f"unknown format '{fmt}'", field="--format", hint="markdown, json or junit"
            )
        text = renderers[fmt](gate_report(_store(create=False), ref, env))
        if output is None:
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
        else:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(text, encoding="utf-8")

    guarded(run)


@suite_app.command("add-case")
def suite_add_case(
    suite: Annotated[Path, typer.Argument(metavar="SUITE_FILE", help="Suite YAML file.")],
    reason: Annotated[str, typer.Option(help="Why: the incident or bug it comes from.")],
    input_: Annotated[str | None, typer.Option("--input", help="The case's input.")] = None,
    from_run: Annotated[
        str | None, typer.Option("--from-run", help="Take the input from this production run.")
    ] = None,
    expected: Annotated[str | None, typer.Option(help="The expected output.")] = None,
    case_id: Annotated[str | None, typer.Option("--id", help="Case id (default: next).")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="A tag; repeat for more.")] = None,
    must_pass: Annotated[bool, typer.Option("--must-pass", help="The gate needs it.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Add a case to a suite (from an incident): a new suite version, used by the next gate."""

    def run() -> None:
        from releasegate.errors import InputError
        from releasegate.release.suites import add_case, case_from_run

        store = _store()
        if (input_ is None) == (from_run is None):
            raise InputError("give the case's input: --input TEXT or --from-run RUN_ID (one)")
        metadata = None
        case_input: Any = input_
        if from_run is not None:
            case_input, metadata = case_from_run(store, from_run)
        added = add_case(
            store,
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
            _emit(
                {
                    "case_id": added.case_id,
                    "suite_id": added.suite_id,
                    "previous_id": added.previous_id,
                    "cases": added.cases,
                    "cases_file": str(added.cases_file),
                }
            )
        else:
            prev = added.previous_id[:12] if added.previous_id else "none"
            _console().print(
                f"added case [bold]{added.case_id}[/] to {added.cases_file.name}: "
                f"suite {prev} -> [bold]{added.suite_id[:12]}[/] "
                f"({added.cases} cases); the next gate uses it"
            )

    guarded(run)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Upgrade the store's schema to this release (back up first)."""

    def run() -> None:
        from releasegate.store.engine import Store, locate
        from releasegate.store.migrate import upgrade_url

        loc = locate()
        if loc.is_embedded:
            Store.open().close()
        else:
            upgrade_url(loc.url)
            store = Store.open(create=False)
            store.seal_audit_log()  # a log from before keying is anchored with the key now
            store.close()
        _console().print("schema is up to date")

    guarded(run)


@app.command()
def demo(
    dir: Annotated[Path, typer.Option("--dir", help="Where to put the demo project.")] = Path(
        "releasegate-demo"
    ),
) -> None:
    """The whole loop on the embedded model, end to end, in under a minute."""

    def run() -> None:
        from releasegate.cli.demo import run_demo

        run_demo(dir)

    guarded(run)


def _print_version(value: bool) -> None:
    if value:
        from releasegate import __version__

        print(f"releasegate {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit.",
            is_eager=True,
            callback=_print_version,
        ),
    ] = False,
) -> None:
    """The governed release loop for LLM workflows: register, eval, gate, promote, roll back."""


def main() -> None:
    from releasegate.cli import main as cli_main

    cli_main()


# Commands kept in their own modules register themselves on the apps above.
from releasegate.cli import (  # noqa: E402
    cmd_compare,
    cmd_models,
    cmd_production,
    cmd_rollout,
    cmd_suite,
)

__all__ = [
    "app",
    "cmd_compare",
    "cmd_models",
    "cmd_production",
    "cmd_rollout",
    "cmd_suite",
    "main",
]
