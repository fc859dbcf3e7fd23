"""``models check``: installed local models against the blessed list.

Lists what Ollama has installed (with digests) and the GGUF files in the given
folders (with their sha256), each marked blessed or not; then each workflow's
model as register would pin it on this machine: installed, missing or changed,
and blessed by each list that applies. Exit 1 when any workflow's model is not
installed, not pinned or not blessed, so CI can ask "is this machine ready?".
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from releasegate.cli._common import NO, JsonOpt, command, emit, models_app, plural
from releasegate.domain.pinning import short_digest

if TYPE_CHECKING:
    from releasegate.release.models import ModelsCheck


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # unreachable: the loop returns at GB


def _short(digest: str | None) -> str:
    return short_digest(digest) if digest else ""


def _render(report: ModelsCheck) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    c = Console(highlight=False)
    ollama = report.ollama
    if ollama.is_reachable:
        c.print(f"ollama: {ollama.host}", markup=False)
    else:
        c.print(f"ollama: not reachable ({ollama.error})", markup=False)
    has_lists = bool(report.blessed_lists)
    for bl in report.blessed_lists:
        c.print(f"blessed list: {bl.label} ({plural(len(bl.models), 'model')})", markup=False)

    table = Table(title="installed models")
    for col in ("runtime", "model", "digest", "size", "blessed"):
        table.add_column(col)
    for item in report.installed:
        mark = ("yes" if item.blessed_by else "NO") if has_lists else "no list"
        table.add_row(
            item.runtime, item.path or item.name, _short(item.digest), _size(item.size), mark
        )
    if report.installed:
        c.print(table)
    else:
        c.print("installed models: none found")

    if not report.workflows:
        return
    table = Table(title="workflow models")
    for col in ("workflow", "runtime", "model", "pinned", "status", "blessed"):
        table.add_column(col)
    for w in report.workflows:
        pin = w.pin
        pinned = (_short(pin.digest) or pin.revision or "yes") if pin.is_pinned else "NO"
        blessed = ", ".join(
            f"{label.rsplit(' ', 1)[-1]}: {'yes' if ok else 'NO'}"
            for label, ok in w.blessed.items()
        )
        status = w.status if w.is_available else w.status.upper()
        cells = (w.workflow, pin.runtime, pin.name, pinned, status, blessed or "no list")
        table.add_row(*(escape(cell) for cell in cells))
    c.print(table)
    for problem in report.problems:
        c.print(f"[red]problem:[/] {escape(problem)}", soft_wrap=True)
    if report.is_ok:
        c.print("every workflow's model is installed, pinned and blessed")


@command(models_app, "check")
def models_check(
    ollama_host: Annotated[
        str | None,
        typer.Option(
            "--ollama-host",
            metavar="URL",
            help="Ollama server to list (default: OLLAMA_HOST, else 127.0.0.1:11434).",
        ),
    ] = None,
    gguf_dir: Annotated[
        list[Path] | None,
        typer.Option(
            "--gguf-dir", metavar="DIR", help="Folder of .gguf files to hash (repeatable)."
        ),
    ] = None,
    workflow: Annotated[
        list[Path] | None,
        typer.Option(
            "--workflow",
            metavar="FILE",
            help="Workflow file whose model must be installed and blessed (repeatable).",
        ),
    ] = None,
    blessed: Annotated[
        list[Path] | None,
        typer.Option(
            "--blessed", metavar="FILE", help="Blessed-models file to check against (repeatable)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> int | None:
    """List installed local models against the blessed lists; check workflows' pinned models."""
    from releasegate.release.models import check_models

    report = check_models(
        ollama_host=ollama_host,
        gguf_dirs=gguf_dir or [],
        workflows=workflow or [],
        blessed_files=blessed or [],
    )
    if as_json:
        emit(report.as_dict())
    else:
        _render(report)
    return None if report.is_ok else NO
