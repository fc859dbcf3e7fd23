"""The program numbers from stored days, without I/O: every day present, rates of the
day's runs, the weeks of whole days (today apart), changes, and where an alert is marked."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from releasegate.domain.program import (
    ALL,
    DayTotals,
    alert_days,
    by_env,
    change,
    period,
    program,
)

TODAY = date(2026, 12, 4)


def row(
    days_ago: int, runs: int, *, wf: str = "router", env: str = "production", **kw: float
) -> DayTotals:
    counts: dict[str, float] = {
        "errors": 0,
        "escalated": 0,
        "edited": 0,
        "costed": 0,
        "cost_usd": 0.0,
    }
    counts.update(kw)
    return DayTotals(
        wf, env, TODAY - timedelta(days=days_ago), runs, int(counts["errors"]),
        int(counts["escalated"]), int(counts["edited"]), int(counts["costed"]),
        float(counts["cost_usd"]), 100.0 * runs,
    )  # fmt: skip


def test_every_day_is_present_and_a_day_without_runs_has_no_rate() -> None:
    first, last = period(TODAY, 2)
    assert (first, last) == (TODAY - timedelta(days=14), TODAY)
    p = program([row(3, 40, escalated=4, edited=2, costed=20, cost_usd=1.0)], first, last)
    assert len(p.total.days) == 15 and p.weeks == 2 and p.total.name == ALL
    day = p.total.days[-4]
    assert (day.day, day.runs, day.escalation_rate, day.edit_rate) == (
        TODAY - timedelta(3),
        40,
        0.1,
        0.05,
    )
    assert day.cost_per_run == 0.05  # over the 20 runs that have a cost, not the 40
    assert day.latency_ms == 100.0
    empty = p.total.days[0]
    assert empty.runs == 0 and empty.escalation_rate is None and empty.metric("cost_usd") is None
    assert p.total.series("runs")[-4] == 40.0


def test_weeks_are_whole_days_and_today_stands_apart() -> None:
    rows = [row(0, 500), row(1, 70, escalated=7), row(7, 10, escalated=5), row(8, 30)]
    p = program(rows, *period(TODAY, 2))
    this, before = p.total.week(0), p.total.week(1)
    assert (this.runs, before.runs) == (80, 30)  # days 1-7, then days 8-14; today apart
    assert p.total.today is not None and p.total.today.runs == 500
    assert this.escalation_rate == pytest.approx(12 / 80)
    assert change(this.runs, before.runs) == pytest.approx(80 / 30 - 1)
    assert change(1.0, 0) is None and change(None, 1.0) is None


def test_workflows_busiest_first_and_the_total_sums_them() -> None:
    rows = [row(2, 5, wf="a"), row(2, 50, wf="b"), row(2, 7, wf="a", env="staging")]
    p = program(rows, *period(TODAY, 1))
    assert [t.name for t in p.workflows] == ["b", "a"]
    assert p.total.week().runs == 62 and p.workflows[1].week().runs == 12
    envs = by_env([r for r in rows if r.workflow == "a"], *period(TODAY, 1))
    assert {e: t.runs for e, t in envs.items()} == {"production": 5, "staging": 7}


def test_an_alert_is_marked_on_the_chart_of_its_signal() -> None:
    d = TODAY - timedelta(days=2)
    marked = alert_days([("escalation_rate", d), ("latency_p95", d), ("label_mix", TODAY)])
    assert marked == {"escalation_rate": {d}, "latency_ms": {d}, "runs": {TODAY}}


def test_an_unknown_metric_and_an_empty_period_are_errors() -> None:
    p = program([], *period(TODAY, 1))
    with pytest.raises(ValueError, match="unknown metric"):
        p.total.days[0].metric("nope")
    with pytest.raises(ValueError, match="at least one week"):
        period(TODAY, 0)
