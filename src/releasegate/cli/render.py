"""Terminal rendering shared by the commands: progress, eval tables, gate summaries."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

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


def fmt_interval(m: Mapping[str, Any]) -> str:
    return f"{m['estimate']:.3f} [{m['low']:.3f}, {m['high']:.3f}]"


def eval_table(console: Console, outcome: Any) -> None:
    s = outcome.summary
    console.print(
        f"eval {outcome.eval_id[:12]}: version [bold]{outcome.version_id[:12]}[/] on "
        f"suite {outcome.suite_name} ({outcome.suite_id[:12]}), {s['cases']} cases x "
        f"{s['epochs']} epoch(s): {outcome.n_called} model calls, "
        f"{outcome.n_cached} from cache"
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
        + (f"; flaky {len(s['flaky'])}" if s["flaky"] else "")
    )


def gate_summary(console: Console, report: Mapping[str, Any], path: Path) -> None:
    verdict = report["verdict"]
    style = VERDICT_STYLE.get(verdict, "bold")
    base = report["baseline"]["id"][:12] if report["baseline"] else "nothing (first release)"
    console.print(
        f"gate {report['workflow']}@{report['env']}: [{style}]{verdict.upper()}[/]  "
        f"{report['version']['id'][:12]} vs {base}  "
        f"(change class: {report['change']['class'] or 'none'})"
    )
    table = Table(show_header=True)
    for col in ("check", "status", "detail"):
        table.add_column(col)
    colors = {"ok": "green", "fail": "red", "hold": "yellow", "info": "dim"}
    for c in report["checks"]:
        table.add_row(
            c["name"], f"[{colors.get(c['status'], '')}]{c['status']}[/]", escape(c["detail"])
        )
    console.print(table)
    metrics = [m for m in report["metrics"] if m["comparison"] is not None]
    if metrics:
        mt = Table(title="against the baseline (paired, same cases)")
        for col in ("metric", "baseline", "candidate", "delta [95% CI]", "mde", "method"):
            mt.add_column(col)
        for m in metrics:
            c = m["comparison"]
            mt.add_row(
                m["name"],
                f"{m['baseline']['estimate']:.3f}",
                f"{m['candidate']['estimate']:.3f}",
                f"{c['delta']:+.3f} [{c['low']:+.3f}, {c['high']:+.3f}]",
                f"{c['mde']:.3f}",
                c["method"],
            )
        console.print(mt)
    for reason in report["reasons"]:
        console.print(f"  - {escape(reason)}")
    console.print(f"report: {path}")
