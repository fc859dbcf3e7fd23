"""The dashboard's numbers: the program over the last weeks, and one workflow's trends.

``program_numbers`` is the home page's: runs per day, cost, escalation, edit and failure
rates over ``weeks`` weeks, for all workflows and each one, the last seven days against
the seven before. ``workflow_trends`` is a workflow page's: each environment's runs per
day, failure, escalation and edit rates, cost per run and mean latency over ``days`` days,
the days an alert was raised marked on the chart of its signal. Both read the runs per
day the store keeps beside the runs (``run_days``: a few rows per workflow and day), never
the runs themselves, so a page costs the same with a thousand runs or a million. Charts
are small SVGs drawn here (``reports.plots``), no script.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, date, datetime

from releasegate.domain.program import (
    Program,
    Trend,
    alert_days,
    by_env,
    period,
    program,
)
from releasegate.reports.plots import Point, line_chart, sparkline
from releasegate.store.alerts import AlertRepo
from releasegate.store.engine import Store
from releasegate.store.run_days import DayRepo
from releasegate.store.workflows import WorkflowRepo

WEEKS = 8
TREND_DAYS = 28
COMPACT = (360, 160)
"""A workflow page's charts, three in a row; the home page's are narrower, four in a row."""
NARROW = (272, 160)
PERCENT = {"error_rate", "escalation_rate", "edit_rate"}
TITLES = {
    "runs": "runs per day",
    "cost_usd": "cost per day",
    "cost_per_run": "cost per run",
    "error_rate": "failed",
    "escalation_rate": "escalated",
    "edit_rate": "edited",
    "latency_ms": "mean latency",
}
UNITS = {
    "cost_usd": "USD",
    "cost_per_run": "USD",
    "error_rate": "% of runs",
    "escalation_rate": "% of runs",
    "edit_rate": "% of runs",
    "latency_ms": "ms",
}
PROGRAM_CHARTS = ("runs", "cost_usd", "escalation_rate", "edit_rate")
WORKFLOW_CHARTS = (
    "runs",
    "error_rate",
    "escalation_rate",
    "edit_rate",
    "cost_per_run",
    "latency_ms",
)


def program_numbers(store: Store, *, weeks: int = WEEKS, now: datetime | None = None) -> Program:
    """Every workflow's runs per day over the ``weeks`` weeks ending today (UTC)."""
    first, last = period((now or datetime.now(UTC)).date(), weeks)
    with store.read() as conn:
        rows = DayRepo(conn).totals(first, last)
    return program(rows, first, last)


def chart(
    trend: Trend, metric: str, marked: Collection[date] = (), *, size: tuple[int, int] = COMPACT
) -> str:
    """A compact chart of one metric of ``trend`` per day from zero, the ``marked`` days in
    red, today (still counting) as a hollow point apart from the line."""
    scale = 100.0 if metric in PERCENT else 1.0
    today = trend.today
    points = [
        Point(
            "today" if d is today else f"{d.day:%m-%d}",
            None if v is None else v * scale,
            d.day in marked,
            d is today,
        )
        for d, v in zip(trend.days, trend.series(metric), strict=True)
    ]
    return line_chart(
        TITLES[metric],
        points,
        unit=UNITS.get(metric, ""),
        size=size,
        empty="no runs in these days",
        from_zero=True,
    )


def program_charts(numbers: Program) -> dict[str, str]:
    """Metric -> the chart of all workflows' days (runs, cost, escalation, edit rates)."""
    return {m: chart(numbers.total, m, size=NARROW) for m in PROGRAM_CHARTS}


def runs_sparkline(trend: Trend) -> str:
    """A workflow's runs per whole day as a line for its row in a table (today left out:
    still counting, it would read as a drop)."""
    days = trend.days[:-1] if trend.partial else trend.days
    return sparkline(
        [float(d.runs) for d in days],
        label=f"{trend.name}: runs per day, {days[0].day} to {days[-1].day}",
    )


@dataclass(frozen=True)
class EnvTrend:
    """One environment of a workflow over the days: its trend, the days in alert per
    metric, and a chart of each metric with those days marked."""

    env: str
    trend: Trend
    alerts: dict[str, set[date]]
    charts: dict[str, str]

    @property
    def alert_count(self) -> int:
        return sum(len(days) for days in self.alerts.values())


def workflow_trends(
    store: Store, workflow: str, *, days: int = TREND_DAYS, now: datetime | None = None
) -> list[EnvTrend]:
    """Each environment of ``workflow`` with served runs in the last ``days`` days (UTC):
    its daily numbers and charts, the days an alert was raised marked."""
    at = now or datetime.now(UTC)
    first, last = period(at.date(), max(1, days // 7))  # whole weeks, and today
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)  # alerts since then
    with store.read() as conn:
        order = WorkflowRepo(conn).get(workflow).environments  # NotFoundError if unknown
        rows = DayRepo(conn).totals(first, last, workflow)
        raised = AlertRepo(conn).between(workflow, start, at)
    out = []
    trends = by_env(rows, first, last)
    for env in sorted(trends, key=lambda e: (order.index(e) if e in order else len(order), e)):
        trend = trends[env]
        marked = alert_days((a.signal, a.created_at.date()) for a in raised if a.env == env)
        charts = {m: chart(trend, m, marked.get(m, ())) for m in WORKFLOW_CHARTS}
        out.append(EnvTrend(env, trend, marked, charts))
    return out
