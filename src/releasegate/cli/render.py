"""Terminal rendering shared by the commands: progress, eval tables, gate summaries."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from releasegate.cli._common import plural

if TYPE_CHECKING:
    from releasegate.domain.gate_report import GateReport

VERDICT_STYLE = {
    "pass": "bold green",
    "fail": "bold red",
    "hold": "bold yellow",
    "needs-approval": "bold cyan",
}


@contextmanager
def progress_bar(label: str, quiet: bool = False) -> Iterator[Callable[[int, int], None]]:
    """A progress bar on stderr (stdout stays clean for --json); shown only once work starts."""
    console = Console(stderr=True)
    bar = Progress(
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=quiet or not console.is_terminal,
    )
    task = None

    def tick(done: int, total: int) -> None:
        nonlocal task
        if task is None:
            task = bar.add_task(label, total=total)
        bar.update(task, completed=done, total=total)

    with bar:
        yield tick


def versions_table(workflow: str, rows: list[dict[str, Any]], width: int = 120) -> Table:
    """``versions``: ids never wrap or get cut, so they can be copied at 80 columns.

    The reason keeps room to be read: the track column is shown only when some version is
    an experiment, and below 100 columns the parent is left out (``show`` and ``--json``
    have it)."""
    from rich import box

    table = Table(title=f"versions of {workflow}", box=box.SIMPLE_HEAD, pad_edge=False)
    columns: list[tuple[str, Any]] = [
        ("version", lambda r: r["version_id"][:12]),
        ("created", lambda r: r["created_at"][:10]),
        ("owner", lambda r: r["owner"] or ""),
    ]
    if any(r["track"] != "release" for r in rows):
        columns.append(("track", _track))
    if width >= 100:
        columns.append(("parent", lambda r: (r["parent_id"] or "")[:12]))
    for name, _ in columns:
        table.add_column(name, no_wrap=True)
    table.add_column("running in", overflow="fold")
    table.add_column("reason", ratio=1, overflow="fold")
    for r in rows:
        row = (*(cell(r) for _, cell in columns), ", ".join(r["environments"]), r["reason"])
        table.add_row(*(Text(str(c)) for c in row))  # the users' words, never Rich markup
    return table


def history_table(title: str, rows: list[dict[str, Any]], width: int = 120) -> Table:
    """``history``: ids never wrap or get cut, so they can be copied at 80 columns, and the
    reason keeps room to be read: below 100 columns the time is shown to the minute and the
    ``from`` column is left out (it is the row above's version; ``--json`` has it)."""
    from rich import box

    wide = width >= 100
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    columns: list[tuple[str, Any]] = [
        ("at", lambda r: r["at"][: 19 if wide else 16].replace("T", " ")),
        ("action", lambda r: r["action"]),
        ("version", lambda r: r["version_id"][:12]),
    ]
    if wide:
        columns.append(("from", lambda r: (r["previous_id"] or "")[:12]))
    for name, _ in columns:
        table.add_column(name, no_wrap=True)
    table.add_column("by", overflow="fold")
    table.add_column("reason", ratio=1, overflow="fold")
    for r in rows:
        row = (*(cell(r) for _, cell in columns), r["actor"], r["reason"])
        table.add_row(*(Text(str(c)) for c in row))  # the users' words, never Rich markup
    return table


def _track(row: Mapping[str, Any]) -> str:
    """``release``, or ``experiment`` with its expiry (``expired`` once past it)."""
    if row["track"] != "experiment" or not row.get("expires_at"):
        return str(row["track"])
    when = "expired" if row.get("is_expired") else "expires"
    return f"experiment ({when} {row['expires_at'][:10]})"


def fmt_interval(m: Mapping[str, Any]) -> str:
    return f"{m['estimate']:.3f} [{m['low']:.3f}, {m['high']:.3f}]"


def eval_table(console: Console, outcome: Any) -> None:
    s = outcome.summary
    console.print(
        f"eval {outcome.eval_id[:12]}: version [bold]{outcome.version_id[:12]}[/] on "
        f"suite {outcome.suite_name} ({outcome.suite_id[:12]}), {plural(s['cases'], 'case')} x "
        f"{plural(s['epochs'], 'epoch')}: {plural(outcome.n_called, 'model call')}, "
        f"{outcome.n_cached:,} from cache"
    )
    if outcome.suite_changed:
        console.print("  the suite changed: this is now the workflow's current suite")
    table = Table()
    for col in ("metric", "value [95% CI]", "n", "method", "threshold"):
        table.add_column(col)
    for name, m in s["metrics"].items():
        th = s["thresholds"].get(name)
        th_s = "" if th is None else (f"{'ok' if th['ok'] else 'BELOW'} {th['floor']:.3f}")
        table.add_row(name, fmt_interval(m), str(m["n"]), m["method"], th_s)
    console.print(table)
    mp = s["must_pass"]
    if mp["total"]:
        bad = len(mp["failures"])
        style = "red" if bad else "green"
        console.print(f"must-pass: [{style}]{mp['total'] - bad}/{mp['total']} passed[/]")
        for f in mp["failures"][:10]:
            console.print(
                f"  [red]x[/] {escape(str(f['case_id']))}: expected "
                f"{escape(str(f['expected']))}, got {escape(str(f['output']))}"
            )
    console.print(
        f"latency p50 {s['latency_ms']['p50']:.1f} ms, p95 {s['latency_ms']['p95']:.1f} ms"
        f"; cost ${s['cost_usd']['total']:.4f}; errors {s['errors']['count']}"
    )
    for e in s["errors"].get("examples", []):  # each error with its reason, not just a count
        console.print(f"  [red]![/] {escape(str(e['case_id']))}: {escape(str(e['error']))}")
    if s["errors"]["count"] > len(s["errors"].get("examples", [])):
        console.print(f"  … {s['errors']['count'] - len(s['errors']['examples'])} more (--json)")
    judges = s["cost_usd"].get("judges") or {}
    if judges:
        calls = sum(u["calls"] for u in judges.values())
        console.print(
            f"judges: ${s['cost_usd']['judges_total']:.4f} over {plural(calls, 'call')} "
            f"({', '.join(escape(n) for n in judges)}), beside the model's cost"
        )
    priced = s["cost_usd"].get("priced_by") or {}
    if priced.get("warning"):
        console.print(f"[yellow]![/] {escape(priced['warning'])}")
    elif priced.get("source") == "table":
        console.print(
            f"priced by table {escape(str(priced['table_version']))} "
            f"({escape(str(priced['entry']))}: ${priced['input_per_1m']}/"
            f"${priced['output_per_1m']} per 1M tokens in/out)"
        )
    precision_lines(console, s)


def precision_lines(console: Console, s: Mapping[str, Any]) -> None:
    """Clusters, epoch advice and flaky cases of an eval summary (nothing when absent)."""
    if s.get("clusters"):
        console.print(
            f"clusters: {plural(s['clusters'], 'cluster')} over {plural(s['cases'], 'case')}; "
            "intervals are "
            "cluster-robust (CR1, t with clusters - 1 df)"
        )
    for name, advice in (s.get("epoch_advice") or {}).items():
        console.print(f"epochs for {escape(name)}: {escape(advice['text'])}")
    flaky = s.get("flaky") or []
    if flaky:
        total = s.get("flaky_total", len(flaky))
        console.print(
            f"[yellow]flaky: {plural(total, 'case')}[/] passed in some epochs and failed in others"
        )
        for f in flaky[:10]:
            per_epoch = " ".join(str(v) for v in f["per_epoch"])
            console.print(
                f"  ~ {escape(str(f['case_id']))}: passed {f['passed']} of {f['epochs']} "
                f"epochs ({per_epoch})"
            )
        if total > 10:
            console.print(f"  … {total - 10} more (--json lists up to 50)")


def gate_summary(console: Console, report: GateReport, path: Path | None) -> None:
    verdict = report.verdict.value
    style = VERDICT_STYLE.get(verdict, "bold")
    base = report.baseline_id[:12] if report.baseline_id else "nothing (first release)"
    console.print(
        f"gate {report.workflow}@{report.env}: [{style}]{verdict.upper()}[/]  "
        f"{report.version_id[:12]} vs {base}  "
        f"(change class: {report.change.change_class or 'none'})"
    )
    table = Table(show_header=True)
    for col in ("check", "status", "detail"):
        table.add_column(col)
    colors = {"ok": "green", "fail": "red", "hold": "yellow", "info": "dim"}
    for check in report.checks:
        status = check.status.value
        table.add_row(check.name, f"[{colors.get(status, '')}]{status}[/]", escape(check.detail))
    console.print(table)
    compared = [
        (m.name, m.baseline, m.candidate, m.comparison)
        for m in report.metrics
        if m.comparison is not None and m.baseline is not None and m.candidate is not None
    ]
    if compared:
        mt = Table(title="against the baseline (paired, same cases)")
        for col in ("metric", "baseline", "candidate", "delta [95% CI]", "mde", "method"):
            mt.add_column(col)
        for name, base_iv, cand_iv, c in compared:
            mt.add_row(
                name,
                f"{base_iv.estimate:.3f}",
                f"{cand_iv.estimate:.3f}",
                f"{c.delta:+.3f} [{c.low:+.3f}, {c.high:+.3f}]",
                f"{c.mde:.3f}",
                c.method,
            )
        console.print(mt)
    for reason in report.reasons:
        console.print(f"  - {escape(reason)}")
    if path is not None:
        console.print(f"report: {path}")
    else:  # through a server, with no --out: the server keeps it
        console.print(f"report: `releasegate report gate {report.decision_id[:12]}`")
    from releasegate.reports.gate_report import next_step

    console.print(escape(next_step(report)))


def plan_table(console: Console, doc: Mapping[str, Any]) -> None:
    """``suite plan``: one row per gated metric, then epoch advice and notes, from its
    ``--json`` document (the local plan's or a server's)."""
    if doc["basis"] == "paired":
        against = f"paired against {doc['baseline_id'][:12]}"
        sd_col = "sd of differences"
    else:
        against = "from the candidate's own variance"
        sd_col = "sd of scores"
    where = f" for {doc['env']}" if doc["env"] else ""
    metrics = doc["metrics"]
    console.print(
        f"plan{where}: pilot {doc['version_id'][:12]} on suite {escape(doc['suite'])} "
        f"({doc['suite_id'][:12]}), {plural(metrics[0]['pilot_n'], 'case')} x "
        f"{plural(doc['epochs'], 'epoch')}, "
        f"{against}; sized so an equal-quality candidate passes {doc['power']:.0%} of the "
        "time and one worse by the margin passes 2.5%"
    )
    table = Table()
    columns = ("metric", "margin", "pilot n", sd_col, "MDE now", "cases needed")
    for col in (*columns, "P(pass) equal", "P(pass) -margin", "verdict"):
        table.add_column(col)
    for m in metrics:
        style = "green" if m["add"] == 0 else "yellow"
        table.add_row(
            escape(m["metric"]),
            f"{m['margin']:.3f}",
            str(m["pilot_n"]),
            "—" if m["sd"] is None else f"{m['sd']:.3f}",
            f"{m['mde']:.3f}",
            str(m["cases_needed"]),
            "—" if m["pass_if_equal"] is None else f"{m['pass_if_equal']:.0%}",
            "—" if m["pass_if_worse"] is None else f"{m['pass_if_worse']:.1%}",
            f"[{style}]{m['verdict']}[/]",
        )
    console.print(table)
    for m in metrics:
        if m["epoch_advice"] is not None:
            basis = (
                "per-epoch differences" if m["epoch_advice_basis"] == "differences" else "candidate"
            )
            console.print(
                f"epochs for {escape(m['metric'])} ({basis}): {escape(m['epoch_advice']['text'])}"
            )
    for note in doc["notes"]:
        console.print(f"note: {escape(note)}")
