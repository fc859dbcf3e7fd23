"""Small services the fronts share: finding a run, reading window options, writing charts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from releasegate.domain.monitoring import parse_duration
from releasegate.errors import InputError
from releasegate.monitor.service import MonitorResult, Span, WindowReader, monitor, series
from releasegate.release import refs
from releasegate.reports.plots import Point, line_chart
from releasegate.store.engine import Store


def find_run(store: Store, run_id: str) -> dict[str, Any]:
    """A run by id or unique prefix, as a plain dict (times in epoch seconds)."""
    with store.read() as conn:
        return refs.find_run(conn, run_id)


def parse_window(text: str | None) -> timedelta | None:
    if text is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise InputError(str(exc), field="--window") from None


def parse_reference(text: str | None) -> Any:
    """``START..END`` with ISO dates or times (UTC unless an offset is given)."""
    if text is None:
        return None
    try:
        a, b = text.split("..")
        start, end = (_when(a), _when(b))
    except ValueError:
        raise InputError(
            f"'{text}' is not a window", field="--reference", hint="write 2026-11-01..2026-11-08"
        ) from None
    if end <= start:
        raise InputError("the reference window ends before it starts", field="--reference")
    return Span(start, end)


def _when(text: str) -> datetime:
    at = datetime.fromisoformat(text.strip())
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def signals_view(
    store: Store, workflow: str, env: str, days: int = 14
) -> tuple[MonitorResult, dict[str, str]]:
    """The dashboard's signals page: ``monitor`` read only (no alert raised, no pause, no
    embeddings, no judge) and ``charts`` of its last ``days``, both from one read of each
    stretch of time (the two weeks up to now, and the reference when it lies outside)."""
    now = datetime.now(UTC)
    reader = WindowReader(store, workflow, env, also=[Span(now - timedelta(days=days), now)])
    result = monitor(
        store, workflow, env, now=now, embeddings=False, alert=False, quality=False,
        reader=reader,
    )  # fmt: skip
    return result, charts(store, result, days, reader=reader)


def charts(
    store: Store, result: MonitorResult, days: int = 14, *, reader: WindowReader | None = None
) -> dict[str, str]:
    """Signal name -> an SVG chart of its daily values over ``days`` against the reference
    value, the days in alert marked (the memo's charts, the dashboard's signals page)."""
    points = series(
        store,
        result.workflow,
        result.env,
        end=result.current.end,
        buckets=days,
        bucket=timedelta(days=1),
        reference=result.reference,
        min_sample=max(10, min(50, result.runs // days or 10)),
        reader=reader,
    )
    refs = {s.name: s.reference for s in result.signals}
    return {
        name: line_chart(
            f"{result.workflow}@{result.env} {name.replace('_', ' ')}",
            [Point(f"{d:%m-%d}", v, a) for d, v, a in values],
            reference=refs.get(name),
        )
        for name, values in points.items()
    }


def write_plots(store: Store, result: MonitorResult, folder: Path, days: int = 14) -> list[Path]:
    """One SVG per scalar signal: daily values over ``days`` against the reference value."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, chart in charts(store, result, days).items():
        path = folder / f"{result.env}-{name}.svg"
        path.write_text(chart)
        written.append(path)
    return written
