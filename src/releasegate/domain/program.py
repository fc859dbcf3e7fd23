"""The program numbers: runs per day, cost, escalation and edit rates over the last weeks.

The store keeps, per workflow, environment and UTC day, the counts and sums of the served
runs (``DayTotals``); this module turns them into what the dashboard shows: a ``Trend``
per workflow and one for all of them, every day of the period present (a day without
runs has zero runs and no rate), today still counting (drawn apart), and the last seven
whole days against the seven before. A rate is a share of the day's runs; the cost per
run is over the runs that have a cost (a run without a reported or priced cost is not
counted as free). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

EPOCH_DAY = date(1970, 1, 1)
ALL = "all workflows"
METRICS = (
    "runs",
    "cost_usd",
    "cost_per_run",
    "error_rate",
    "escalation_rate",
    "edit_rate",
    "latency_ms",
)
"""What a ``Day`` reports, by name: runs and cost per day, and per run the cost, the
shares failed, escalated and edited, and the mean latency."""


def day_number(day: date) -> int:
    """Days since 1970-01-01, the key the store counts runs under."""
    return (day - EPOCH_DAY).days


def from_day_number(n: int) -> date:
    return EPOCH_DAY + timedelta(days=n)


@dataclass(frozen=True)
class DayTotals:
    """The served runs of one workflow in one environment on one UTC day, as stored."""

    workflow: str
    env: str
    day: date
    runs: int
    errors: int
    escalated: int
    edited: int
    costed: int
    """How many of the runs have a cost."""
    cost_usd: float
    latency_ms: float
    """The sum of the runs' latencies."""


@dataclass(frozen=True)
class Day:
    """Runs of one scope (a workflow, or all) summed over a day or a week."""

    day: date
    runs: int = 0
    errors: int = 0
    escalated: int = 0
    edited: int = 0
    costed: int = 0
    cost_usd: float = 0.0
    latency_sum: float = 0.0

    def plus(self, other: Day | DayTotals) -> Day:
        return Day(
            self.day,
            self.runs + other.runs,
            self.errors + other.errors,
            self.escalated + other.escalated,
            self.edited + other.edited,
            self.costed + other.costed,
            self.cost_usd + other.cost_usd,
            self.latency_sum + (other.latency_sum if isinstance(other, Day) else other.latency_ms),
        )

    def _share(self, n: int) -> float | None:
        return n / self.runs if self.runs else None

    @property
    def error_rate(self) -> float | None:
        return self._share(self.errors)

    @property
    def escalation_rate(self) -> float | None:
        return self._share(self.escalated)

    @property
    def edit_rate(self) -> float | None:
        return self._share(self.edited)

    @property
    def cost_per_run(self) -> float | None:
        return self.cost_usd / self.costed if self.costed else None

    @property
    def latency_ms(self) -> float | None:
        return self.latency_sum / self.runs if self.runs else None

    def metric(self, name: str) -> float | None:
        """One of ``METRICS``; None where the day has no run to say it (no cost: no cost)."""
        if name == "runs":
            return float(self.runs)
        if name == "cost_usd":
            return self.cost_usd if self.costed else None
        if name not in METRICS:
            raise ValueError(f"unknown metric {name!r}; one of {', '.join(METRICS)}")
        value: float | None = getattr(self, name)
        return value


@dataclass(frozen=True)
class Trend:
    """One scope's days over the period, oldest first, every day present."""

    name: str
    days: tuple[Day, ...]
    partial: bool = False
    """The last day is today, still counting: the weeks leave it out."""

    def series(self, metric: str) -> list[float | None]:
        return [d.metric(metric) for d in self.days]

    @property
    def today(self) -> Day | None:
        return self.days[-1] if self.partial else None

    def week(self, back: int = 0) -> Day:
        """The seven whole days ending ``back`` weeks before the last whole day, summed
        (fewer if the period is shorter); dated by its first day."""
        stop = len(self.days) - (1 if self.partial else 0) - 7 * back
        chunk = self.days[max(0, stop - 7) : max(0, stop)]
        total = Day(chunk[0].day if chunk else self.days[0].day)
        for d in chunk:
            total = total.plus(d)
        return total

    @property
    def runs(self) -> int:
        return sum(d.runs for d in self.days)


@dataclass(frozen=True)
class Program:
    """The program numbers of a period: all workflows, and each one with runs in it."""

    first: date
    last: date
    total: Trend
    workflows: tuple[Trend, ...]
    """Busiest first (runs in the last seven days, then in the period), then by name."""

    @property
    def weeks(self) -> int:
        return len(self.total.days) // 7  # whole weeks, and today


def change(now: float | None, before: float | None) -> float | None:
    """The relative change from ``before`` to ``now`` (0.25 is 25% up), None when either
    is missing or ``before`` is zero."""
    if now is None or before is None or before == 0:
        return None
    return (now - before) / before


def period(today: date, weeks: int) -> tuple[date, date]:
    """The first and last day of ``weeks`` whole weeks before ``today``, and ``today``."""
    if weeks < 1:
        raise ValueError("a period is at least one week")
    return today - timedelta(days=7 * weeks), today


def trend(
    name: str, rows: Iterable[DayTotals], first: date, last: date, *, partial: bool = True
) -> Trend:
    """``rows`` summed per day (every environment) over ``first``..``last``; ``partial``:
    ``last`` is today, still counting."""
    span = (last - first).days + 1
    days = [Day(first + timedelta(days=i)) for i in range(span)]
    for r in rows:
        i = (r.day - first).days
        if 0 <= i < span:
            days[i] = days[i].plus(r)
    return Trend(name, tuple(days), partial)


def program(rows: Sequence[DayTotals], first: date, last: date) -> Program:
    """All workflows' and each workflow's trend over ``first``..``last`` (today)."""
    by_workflow: dict[str, list[DayTotals]] = {}
    for r in rows:
        by_workflow.setdefault(r.workflow, []).append(r)
    trends = [trend(name, part, first, last) for name, part in by_workflow.items()]
    trends.sort(key=lambda t: (-t.week().runs, -t.runs, t.name))
    return Program(first, last, trend(ALL, rows, first, last), tuple(trends))


def by_env(rows: Sequence[DayTotals], first: date, last: date) -> dict[str, Trend]:
    """One workflow's trend per environment (those with runs in the period), by name;
    ``last`` is today."""
    envs = sorted({r.env for r in rows if first <= r.day <= last})
    return {env: trend(env, [r for r in rows if r.env == env], first, last) for env in envs}


ALERT_METRIC = {
    "error_rate": "error_rate",
    "escalation_rate": "escalation_rate",
    "edit_rate": "edit_rate",
    "cost_per_task": "cost_per_run",
    "latency_p50": "latency_ms",
    "latency_p95": "latency_ms",
}
"""The daily metric on whose chart an alert on a monitor signal is marked; an alert on
another signal (label mix, drift, quality ...) has no daily chart of its own and is marked
on the runs per day."""


def alert_days(alerts: Iterable[tuple[str, date]]) -> dict[str, set[date]]:
    """Metric -> the days an alert was raised on it, from (signal, day) pairs."""
    out: dict[str, set[date]] = {}
    for signal, day in alerts:
        out.setdefault(ALERT_METRIC.get(signal, "runs"), set()).add(day)
    return out
