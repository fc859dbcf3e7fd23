"""The production side: ``runs import``, ``runs show``, ``monitor``, ``report memo``.

Exit codes keep the contract: 0 done and quiet; 1 an alert was raised (a version
outside the gate, a signal that fired), so a cron job or CI step notices; 2 bad input,
with every rejected record named and nothing written.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from releasegate.cli._common import (
    BAD_INPUT,
    NO,
    EnvOpt,
    JsonOpt,
    WorkflowArg,
    app,
    command,
    emit,
    plural,
    report_app,
    runs_app,
    writable,
)
from releasegate.cli._common import console as _console
from releasegate.cli._common import open_store as _store
from releasegate.cli._remote import server

if TYPE_CHECKING:
    from releasegate.cli._remote import Server
    from releasegate.domain.runs import Rejection

MAX_REJECTIONS_LISTED = 50
"""As many rejections as ``runs import --json`` lists locally (``monitor.ingest``)."""


def _progress_file(path: Path, label: str) -> Any:
    """A byte-sized progress bar over a file being read (stderr, only on a terminal)."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    return Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        TextColumn("{task.completed:,} runs"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


@command(runs_app, "import", served=True)
def runs_import(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="JSONL of runs, or OTLP JSON.")],
    format: Annotated[
        str, typer.Option("--format", metavar="FORMAT", help="jsonl, otlp, or auto (by content).")
    ] = "auto",
    as_json: JsonOpt = False,
) -> int | None:
    """Import production runs: all of the file lands, or (with any bad record) none of it."""
    from releasegate.domain.runs import rejection_error

    if (srv := server()) is not None:
        data, rejected, total = _import_through(srv, file, format)
    else:
        from releasegate.monitor.ingest import import_file

        store = _store(create=False)  # runs belong to registered versions: no store, no runs
        with _progress_file(file, "importing") as bar:
            task = bar.add_task("importing", total=None)
            result = import_file(
                store, file, format=format, progress=lambda n: bar.update(task, advance=n)
            )
        data, rejected, total = result.as_dict(), result.rejected, result.rejected_count
    if rejected:
        if as_json:
            emit({**data, "landed": 0})
            return BAD_INPUT
        error = rejection_error(rejected, total, str(file))
        assert error is not None
        raise error
    if as_json:
        emit(data)
    else:
        console = _console()
        console.print(
            f"imported [bold]{plural(data['landed'], 'run')}[/] from {file}"
            + (f"; {data['duplicates']:,} already stored" if data["duplicates"] else "")
            + (f"; {data['skipped']:,} spans were not runs" if data["skipped"] else "")
        )
        if data["texts_dropped"]:
            console.print(
                f"{plural(data['texts_dropped'], 'run')} stored without input and output: "
                "their workflow's data class keeps run texts out of the store"
            )
        for o in data["outside_gate"]:
            console.print(
                f"[bold red]outside the gate:[/] {o['workflow']}@{o['env']} ran "
                f"{o['version_id'][:12]} {plural(o['runs'], 'time')}"
                + ("" if o["registered"] else " (never registered)")
            )
    return NO if data["outside_gate"] else None


def _import_through(
    srv: Any, file: Path, format: str
) -> tuple[dict[str, Any], list[Rejection], int]:
    """``runs import`` through a server: a JSONL file is checked here, by the parser the
    server and the local import use, so a bad record is named by its line and nothing is
    sent; then all of it goes in one ``POST /v1/runs`` (all or none). OTLP JSON goes to
    ``POST /v1/traces`` as it is. The answer, and the rejections found here."""
    from releasegate.domain.runs import parse_jsonl
    from releasegate.errors import InputError

    if format not in ("auto", "jsonl", "otlp"):
        raise InputError(f"unknown format '{format}'", field="--format", hint="jsonl, otlp")
    if not file.is_file():
        raise InputError(f"no such file: {file}", source=str(file))
    raw = file.read_bytes()
    head = raw[:4096].lstrip()
    if format == "otlp" or (
        format == "auto" and head.startswith(b"{") and b'"resourceSpans"' in head
    ):
        return dict(srv.post_raw("v1", "traces", content=raw)), [], 0
    lines = [line for line in raw.splitlines() if line.strip()]
    parsed = parse_jsonl(lines, now=datetime.now(UTC), source="jsonl")
    if parsed.rejected:
        total = parsed.rejected_count
        found = {
            "received": len(parsed.accepted) + parsed.duplicates + total,
            "landed": 0,
            "duplicates": parsed.duplicates,
            "skipped": 0,
            "rejected": [r.to_dict() for r in parsed.rejected[:MAX_REJECTIONS_LISTED]],
            "rejected_total": total,
            "outside_gate": [],
            "alerts": [],
            "texts_dropped": 0,
        }
        return found, parsed.rejected, total
    data = srv.post_raw("v1", "runs", content=b"[" + b",".join(lines) + b"]")
    return dict(data), [], 0


@command(runs_app, "show", served=True)
def runs_show(
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID", help="A run id (or its prefix).")],
    as_json: JsonOpt = False,
) -> None:
    """Show one production run: version, timings, tokens, status, input and output."""
    if (srv := server()) is not None:
        found = srv.get("v1", "runs", run_id)
    else:
        from releasegate.monitor.runs import find_run

        found = find_run(_store(create=False), run_id)
    if as_json:
        emit(found)
        return
    from rich.table import Table

    table = Table(show_header=False, box=None)
    for key, value in found.items():
        if value is None or key == "attributes_json":
            continue
        if key in ("started_at", "ended_at", "received_at"):
            value = datetime.fromtimestamp(value, UTC).isoformat()
        table.add_row(f"[bold]{key}[/]", str(value))
    _console().print(table)


@command(app, served=True)
def monitor(
    workflow: WorkflowArg,
    env: EnvOpt,
    window: Annotated[
        str | None,
        typer.Option(
            metavar="WINDOW", help="Window to watch, e.g. 24h or 7d (default: the workflow's)."
        ),
    ] = None,
    reference: Annotated[
        str | None,
        typer.Option(
            metavar="START..END",
            help="Reference window START..END (ISO dates); default: after promotion.",
        ),
    ] = None,
    embeddings: Annotated[
        bool, typer.Option("--embeddings/--no-embeddings", help="Input and output drift.")
    ] = True,
    alert: Annotated[
        bool, typer.Option("--alert/--no-alert", help="Record and route alerts that fire.")
    ] = True,
    quality: Annotated[
        bool,
        typer.Option("--quality/--no-quality", help="Score a sample of runs with the suite."),
    ] = True,
    plot: Annotated[
        Path | None,
        typer.Option(metavar="DIR", help="Write an SVG chart per signal (last 14 days) here."),
    ] = None,
    prometheus: Annotated[
        bool, typer.Option("--prometheus", help="Print the Prometheus text exposition.")
    ] = False,
    as_json: JsonOpt = False,
) -> int | None:
    """Signals of production runs against a reference; exit 1 while a signal is in alert."""
    from releasegate.reports.prometheus import exposition

    if (srv := server()) is not None:
        options = {"window": window, "reference": reference}
        flags = {"embeddings": embeddings, "quality": quality}
        doc = _monitor_through(srv, workflow, env, {**options, **flags}, alert=alert, plot=plot)
    else:
        from releasegate.cli.render import progress_bar
        from releasegate.monitor.runs import parse_reference, parse_window, write_plots
        from releasegate.monitor.service import monitor as run_monitor

        store = _store(create=False)
        with progress_bar("embedding run texts", quiet=as_json or prometheus) as tick:
            done = 0

            def advance(n: int) -> None:
                nonlocal done
                done += n
                tick(done, max(done, 1))

            result = run_monitor(
                store,
                workflow,
                env,
                window=parse_window(window),
                reference=parse_reference(reference),
                embeddings=embeddings,
                alert=alert,
                quality=quality,
                progress=advance,
            )
        if plot is not None:
            write_plots(store, result, plot)
        doc = result.as_dict()
    if prometheus:
        sys.stdout.write(exposition(workflow, env, doc["signals"]))
    elif as_json:
        emit(doc)
    else:
        _monitor_table(doc, plot)
    return NO if doc["status"] == "alert" else None  # also inside a cool-down: still "no"


def _monitor_through(
    srv: Server,
    workflow: str,
    env: str,
    options: dict[str, Any],
    *,
    alert: bool,
    plot: Path | None,
) -> dict[str, Any]:
    """``monitor --json`` from a server: with alerts (the default) an operator's POST,
    which records and routes the alerts that fire there as locally; ``--no-alert`` a
    viewer's GET, which sends none. ``--plot`` reads the store's history: refused here."""
    from releasegate.errors import InputError

    if plot is not None:
        raise InputError(
            "--plot is not available through a server: the charts are drawn from the "
            "store's history",
            field="--plot",
            hint="leave --plot out, or see the workflow page of the server's dashboard",
        )
    where = ("v1", "workflows", workflow, "environments", env, "monitor")
    if alert:
        return dict(srv.post(*where, body={**options, "alert": True}))
    return dict(srv.get(*where, **options))


def _monitor_table(doc: dict[str, Any], plot: Path | None) -> None:
    """``monitor``'s table, from its ``--json`` document (the local run's or a server's)."""
    from rich.markup import escape
    from rich.table import Table

    from releasegate.domain.monitoring import owner_mention, span_label
    from releasegate.domain.novelty import LISTED
    from releasegate.domain.novelty import SHOWN as NOVEL_SHOWN
    from releasegate.reports.memo import signal_value

    def at(text: str) -> datetime:
        return datetime.fromisoformat(text)

    def sent_to(a: dict[str, Any]) -> str:
        return f"to: {escape(owner_mention(a['owners']))}; routed: {escape(', '.join(a['routed']))}"

    console = _console()
    now = span_label(at(doc["window"]["start"]), at(doc["window"]["end"]))
    console.print(
        f"[bold]{doc['workflow']}@{doc['env']}[/]: {plural(doc['runs'], 'run')} in "
        f"{now}\nreference: {escape(doc['reference']['note'])} "
        f"({plural(doc['runs_reference'], 'run')})"
    )
    for v in doc["versions"]:
        mark = "" if v["gated"] else " [bold red]outside the gate[/]"
        console.print(f"  version {v['version_id'][:12]}: {plural(v['runs'], 'run')}{mark}")
    style = {"alert": "bold red", "ok": "green", "insufficient": "dim"}
    table = Table()
    for col in ("signal", "value", "reference", "test", "status"):
        table.add_column(col)
    for s in doc["signals"]:
        stat, p_value = s["statistic"], s["p_value"]
        stat_value = "nan" if stat["value"] is None else f"{stat['value']:.3g}"
        p = "" if p_value is None else ", p<1e-06" if p_value == 0 else f", p={p_value:.2g}"
        table.add_row(
            s["name"],
            signal_value(s["value"], s["name"]),
            signal_value(s["reference"], s["name"]),
            f"{stat['name']} {stat_value}{p}",
            f"[{style.get(s['status'], '')}]{s['status']}[/]",
        )
    console.print(table)
    for s in doc["signals"]:
        if s["status"] != "alert":
            continue
        listed = s["name"] == "novel_inputs" and s["examples"]
        detail = s["detail"].split("; novel: ")[0] if listed else s["detail"]
        console.print(f"[bold red]drift:[/] {escape(detail)}")
        if listed:  # the inputs themselves, one per line, so an operator sees what is new
            total = round(s["value"] * s["n"])
            console.print("[bold]novel inputs[/] (farthest from the reference first):")
            for line in s["examples"][:NOVEL_SHOWN]:
                console.print(f"  {escape(line)}", overflow="ellipsis", no_wrap=True)
            more = total - min(NOVEL_SHOWN, len(s["examples"]))
            if more > 0:
                whole = f"all {total:,}" if total <= LISTED else f"the first {LISTED}"
                console.print(f"  and {more:,} more ({whole} in --json)")
    for note in doc["notes"]:
        console.print(f"[yellow]note:[/] {escape(note)}")
    for a in doc["resent"]:
        console.print(
            f"[bold red]alert ({a['severity']}), raised {at(a['at']):%Y-%m-%d %H:%M} UTC and "
            f"not delivered then, sent now:[/] {escape(a['message'])}\n  {sent_to(a)}"
        )
    for a in doc["alerts"]:
        said = f"[bold red]alert ({a['severity']}):[/] {escape(a['message'])}"
        console.print(f"{said}\n  {sent_to(a)}")
    for a in doc["alerts"] + doc["resent"]:
        if a["error"] is not None:
            console.print(
                f"[yellow]not delivered (attempt {a['attempts']}):[/] {escape(a['error'])}; "
                "the next monitor sends it again"
            )
    for h in doc["held"]:
        console.print(f"[bold red]in alert (cool-down):[/] {escape(h['sentence'])}")
    _auto_pause_lines(doc["pause"], doc["pause_alerts"])
    verdict = {"alert": "bold red", "ok": "green", "insufficient": "yellow"}[doc["status"]]
    console.print(f"[{verdict}]{escape(doc['verdict'])}[/]")
    if plot is not None:
        console.print(f"charts: {plot}/")


def _auto_pause_lines(auto: dict[str, Any] | None, sent: list[dict[str, Any]]) -> None:
    """What the policy's ``pause_on`` rule did, if anything (``AutoPause.as_dict()``, and
    the pause's alerts as ``monitor --json`` lists them; shared with ``rollout check``,
    which gets it from the server too)."""
    from rich.markup import escape

    from releasegate.domain.monitoring import owner_mention

    if auto is None or not auto["severe"]:
        return
    console = _console()
    where = f"{auto['workflow']}@{auto['env']}"
    if auto["paused_now"]:
        console.print(
            f"[bold red]PAUSED {where}:[/] every request goes to the human fallback. "
            f"{escape(auto['reason'])}"
        )
        console.print(
            f"  next: `releasegate resume {auto['workflow']} --env {auto['env']}` once fixed"
        )
    else:
        was = auto["already_paused"]
        by = (
            f" (by {escape(was['by'])} since {was['at'][:16].replace('T', ' ')} UTC)" if was else ""
        )
        console.print(
            f"[bold red]{where} is paused{by}:[/] "
            + "; ".join(escape(b["sentence"]) for b in auto["breaches"])
        )
    for a in sent:
        console.print(
            f"  alert sent to {escape(owner_mention(a['owners']))}; "
            f"routed: {escape(', '.join(a['routed']))}"
        )


@command(report_app, "memo", served=True)
def report_memo(
    workflow: WorkflowArg,
    week: Annotated[
        str | None,
        typer.Option(
            metavar="WEEK", help="ISO week (2026-W47) or a date in it; default: last week."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(metavar="DIR", help="Directory for memo.md, memo.html and charts/."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """The weekly stability memo: actions, changes, signals, alerts, cost, trends."""
    from releasegate.reports.memo import write_memo

    if out is not None:
        writable(out, "--out", directory=True)
    written: dict[str, str] | None = None
    if (srv := server()) is not None:  # the files only with --out: the server keeps none
        where = ("v1", "workflows", workflow, "memo")
        memo = srv.get(*where, week=week, charts=True if out is not None else None)
        if out is not None:
            written = write_memo(memo, out)
    else:
        from releasegate.monitor.memo import build_memo

        store = _store(create=False)
        memo = build_memo(store, workflow, week)
        target = out or store.location.home / "reports" / f"memo-{workflow}-{memo['week']}"
        written = write_memo(memo, target)
    if as_json:
        envs = [{**e, "charts": sorted(e["charts"])} for e in memo["environments"]]
        emit({**memo, "environments": envs, "written": written})
        return
    console = _console()
    console.print(f"[bold]{workflow}[/] week {memo['week']}")
    nothing = memo["verdict"] if memo["status"] == "insufficient" else "nothing needs doing"
    for i, action in enumerate(memo["actions"] or [nothing], 1):
        console.print(f"  {i}. {action}")
    if written is None:
        console.print("memo: not written here (--out DIR writes memo.md, memo.html and charts/)")
    else:
        console.print(f"memo: {written['markdown']}\n      {written['html']}")
