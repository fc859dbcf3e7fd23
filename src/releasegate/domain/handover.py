"""A workflow's stage and the readiness checklist for handing it over to routine operation.

A workflow is an ``experiment``, a ``pilot`` or ``routine`` (operated day to day by its
care owner, from the runbook). Before it becomes routine the checklist must pass: two
named owners; tracked numbers with targets; alerts configured and delivered at least
once; escalation rules and a human fallback; a rollback rehearsed within the period;
runs recorded with registered version ids; nothing in flight. ``readiness`` is that
checklist over facts gathered elsewhere (``release.handover``): pure, so the rule is
tested without a store, and ``stage set routine`` and ``report handover`` use the same one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from releasegate.domain.rehearsal import Rehearsal
from releasegate.errors import InputError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

STAGES = ("experiment", "pilot", "routine")
DEFAULT_STAGE = "experiment"
"""The stage of a workflow no one has set one for."""
REHEARSAL_PERIOD = timedelta(days=90)
"""How recent the last rollback rehearsal must be for a handover."""
RUNS_PERIOD = timedelta(days=28)
"""The runs a handover looks at: the last four weeks."""


def parse_stage(text: str) -> str:
    stage = text.strip().lower()
    if stage not in STAGES:
        raise InputError(
            f"unknown stage '{text}'", field="STAGE", hint="one of: " + ", ".join(STAGES)
        )
    return stage


def parse_day(text: str, option: str = "--date") -> date:
    """An ISO date, ``2026-12-18``; bad input names the option."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"'{text}' is not a date", field=option, hint="write 2026-12-18") from None


@dataclass(frozen=True)
class StageRecord:
    """One recorded stage of a workflow: from ``handover_date`` on, with the owners named
    then; ``forced`` when it was set although the checklist failed (``failing`` says what)."""

    workflow: str
    stage: str
    handover_date: date
    change_owner: str | None
    care_owner: str | None
    actor: str
    reason: str
    forced: bool
    failing: tuple[str, ...]
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "stage": self.stage,
            "handover_date": self.handover_date.isoformat(),
            "change_owner": self.change_owner,
            "care_owner": self.care_owner,
            "actor": self.actor,
            "reason": self.reason,
            "forced": self.forced,
            "failing": list(self.failing),
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class StageState:
    """Where a workflow stands: the stage in effect today and a scheduled one, if any."""

    workflow: str
    current: StageRecord | None
    """In effect today (None: never set, so ``experiment``)."""
    scheduled: StageRecord | None
    """Recorded with a handover date after today."""

    @property
    def stage(self) -> str:
        return self.current.stage if self.current is not None else DEFAULT_STAGE

    def as_dict(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "stage": self.stage,
            "current": None if self.current is None else self.current.as_dict(),
            "scheduled": None if self.scheduled is None else self.scheduled.as_dict(),
        }


def stage_state(workflow: str, history: Sequence[StageRecord], today: date) -> StageState:
    """The stage in effect on ``today`` (the latest recorded whose date has come) and the
    latest one recorded for a later date, if it came after that."""
    current: StageRecord | None = None
    scheduled: StageRecord | None = None
    for r in history:  # oldest first: a later record replaces what it overlaps
        if r.handover_date <= today:
            current, scheduled = r, None
        else:
            scheduled = r
    return StageState(workflow, current, scheduled)


@dataclass(frozen=True)
class TrackedNumber:
    """One number an operator watches, its target, and its normal range: from the runs,
    the median day and the 10th to 90th percentile of days (so about 2 days in 10 fall
    outside it by construction: a range to read, not an alarm; ``monitor`` alarms); from
    the gate (``days`` 0), the suite's estimate and its 95% interval."""

    name: str
    label: str
    env: str
    unit: str
    """``usd``, ``ms``, ``share`` or ``score``."""
    direction: str
    """``max`` (the target is a ceiling) or ``min`` (a floor)."""
    target: float | None
    target_source: str
    typical: float | None
    low: float | None
    high: float | None
    days: int
    """Days with enough runs to count; for a gate number, 0."""
    source: str

    @property
    def has_target(self) -> bool:
        return self.target is not None

    @property
    def is_measured(self) -> bool:
        return self.typical is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "env": self.env,
            "unit": self.unit,
            "direction": self.direction,
            "target": self.target,
            "target_source": self.target_source,
            "typical": self.typical,
            "low": self.low,
            "high": self.high,
            "days": self.days,
            "source": self.source,
        }


@dataclass(frozen=True)
class HandoverFacts:
    """What the checklist is decided on, gathered from the store (``release.handover``)."""

    workflow: str
    now: datetime
    change_owner: str | None
    care_owner: str | None
    responders: tuple[str, ...]
    tracked: tuple[TrackedNumber, ...]
    alert_routes: tuple[str, ...]
    """The routes alerts leave the terminal by (``slack ($VAR)``, ``webhook``)."""
    alert_rules: int
    untested_rules: tuple[str, ...]
    """The signals of alert rules no delivered alert ever came from (as ``review`` says)."""
    delivered: tuple[str, ...]
    """The routes that took at least one alert."""
    last_alert: str | None
    """The last alert delivered, as a sentence (when, which signal, where)."""
    escalations: tuple[str, ...]
    """What the workflow sends to a human, as sentences (manifest and runs)."""
    rehearsal: Rehearsal | None
    """The last rollback rehearsal (``releasegate.domain.rehearsal``), in any environment."""
    runs: int
    """Runs recorded in the period, in every environment."""
    runs_unregistered: int
    """Of those, runs naming a version id this workflow never registered."""
    versions_seen: tuple[str, ...]
    in_flight: tuple[str, ...]
    """Changes not finished: an active rollout, a paused environment, a scheduled stage."""
    rehearsal_period: timedelta = REHEARSAL_PERIOD


@dataclass(frozen=True)
class CheckLine:
    key: str
    title: str
    passed: bool
    evidence: str
    fix: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "passed": self.passed,
            "evidence": self.evidence,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class Readiness:
    """The checklist and its verdict: ready only when every line passes."""

    workflow: str
    checked_at: datetime
    lines: tuple[CheckLine, ...] = field(default_factory=tuple)

    @property
    def is_ready(self) -> bool:
        return all(line.passed for line in self.lines)

    @property
    def failing(self) -> tuple[str, ...]:
        return tuple(line.key for line in self.lines if not line.passed)

    @property
    def verdict(self) -> str:
        if self.is_ready:
            return "ready for routine operation"
        n = len(self.failing)
        return f"not ready: {n} of {len(self.lines)} checks fail"

    def as_dict(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "checked_at": self.checked_at.isoformat(),
            "ready": self.is_ready,
            "verdict": self.verdict,
            "failing": list(self.failing),
            "checks": [line.as_dict() for line in self.lines],
        }


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "usd":
        return f"${value:.5f}" if value < 1 else f"${value:,.2f}"
    if unit == "ms":
        return f"{value:,.0f} ms"
    if unit == "share":
        return f"{value * 100:.1f}%"
    return f"{value:.3f}"


def describe(number: TrackedNumber) -> str:
    """``latency p95 (production): typically 31 ms (28-40 ms), target at most 250 ms``."""
    target = (
        "no target"
        if number.target is None
        else f"target {'at most' if number.direction == 'max' else 'at least'} "
        f"{format_value(number.target, number.unit)} ({number.target_source})"
    )
    if number.typical is None:
        measured = "not measured yet"
    elif number.low is None or number.high is None or number.low == number.high:
        measured = f"{format_value(number.typical, number.unit)}"
    elif number.days == 0:  # a figure from the gate: its 95% interval
        measured = (
            f"{format_value(number.typical, number.unit)} (95% interval "
            f"{format_value(number.low, number.unit)} to {format_value(number.high, number.unit)})"
        )
    else:
        measured = (
            f"typically {format_value(number.typical, number.unit)} "
            f"({format_value(number.low, number.unit)} to {format_value(number.high, number.unit)})"
        )
    return f"{number.label} ({number.env}): {measured}, {target}"


PROVING = ("passed", "suite-too-weak")
"""Rehearsal results that restored the original: the rollback worked (a suite too weak
for a mutation is the suite's problem, not the rollback's)."""


def is_rehearsed(rehearsal: Rehearsal | None, now: datetime, period: timedelta) -> bool:
    """The rollback was proven within ``period``: a rehearsal finished, restored the
    original, and not longer ago than that."""
    return (
        rehearsal is not None
        and rehearsal.finished_at is not None
        and rehearsal.result in PROVING
        and now - rehearsal.finished_at <= period
    )


def rehearsal_summary(rehearsal: Rehearsal | None) -> str:
    """``2026-12-01 on staging: passed, mutation score 5/5, detected in 2.1 s, reverted in
    0.3 s`` or ``never rehearsed``."""
    if rehearsal is None:
        return "never rehearsed"
    if rehearsal.is_running or rehearsal.finished_at is None:
        since = f"{rehearsal.started_at:%Y-%m-%d %H:%M} UTC"
        return f"a rehearsal on {rehearsal.env} is running since {since}"
    gated = [m for m in rehearsal.applied if m.verdict is not None]
    caught = sum(m.is_caught for m in gated)
    parts = [f"{rehearsal.finished_at:%Y-%m-%d} on {rehearsal.env}: {rehearsal.result}"]
    if gated:
        parts.append(f"mutation score {caught}/{len(gated)}")
    if rehearsal.time_to_detect_s is not None:
        parts.append(f"detected in {rehearsal.time_to_detect_s:.1f} s")
    if rehearsal.time_to_revert_s is not None:
        parts.append(f"reverted in {rehearsal.time_to_revert_s:.1f} s")
    return "last rehearsal " + ", ".join(parts)


def readiness(facts: HandoverFacts) -> Readiness:
    """The handover checklist over ``facts``, each line with its evidence and its fix."""
    wf = facts.workflow
    lines: list[CheckLine] = []

    owners = {"change": facts.change_owner, "care": facts.care_owner}
    missing = [role for role, name in owners.items() if not name]
    lines.append(
        CheckLine(
            "owners",
            "two named owners",
            not missing,
            f"change owner: {facts.change_owner or 'none'}; care owner: "
            f"{facts.care_owner or 'none'}",
            ""
            if not missing
            else "name them in the workflow file (owners: {change: NAME, care: NAME}) "
            "and register it again",
        )
    )

    tracked = facts.tracked
    untargeted = [n for n in tracked if not n.has_target]
    unmeasured = [n for n in tracked if not n.is_measured]
    numbers_ok = bool(tracked) and not untargeted and not unmeasured
    todo = []
    if untargeted or not tracked:
        todo.append("give each a target in the production policy (floors, budgets)")
    if unmeasured:
        todo.append(
            "measure each: a gate decision for what runs, and production runs recorded "
            "(the SDK's client.run)"
        )
    lines.append(
        CheckLine(
            "tracked_numbers",
            "tracked numbers with targets",
            numbers_ok,
            "; ".join(describe(n) for n in tracked) or "no tracked number",
            "; ".join(todo),
        )
    )

    missing_routes = [r for r in facts.alert_routes if r not in facts.delivered]
    alerts_ok = bool(facts.alert_routes) and not missing_routes and not facts.untested_rules
    if not facts.alert_routes:
        evidence = (
            f"{facts.alert_rules} alert rules, no route: alerts reach only the terminal "
            "of whoever runs monitor"
        )
    else:
        evidence = f"routes: {', '.join(facts.alert_routes)}; " + (
            f"never delivered through {', '.join(missing_routes)}"
            if missing_routes
            else f"each delivered at least once (last: {facts.last_alert})"
        )
    if facts.untested_rules:
        evidence += "; rules that never fired: " + ", ".join(facts.untested_rules)
    lines.append(
        CheckLine(
            "alerts",
            "alerts configured and fired in a test",
            alerts_ok,
            evidence,
            ""
            if alerts_ok
            else (
                "add monitor.routes (slack or webhook) to the workflow file and register it; "
                if not facts.alert_routes
                else ""
            )
            + "fire one alert through each route and rule (over a staging window that "
            f"crosses the rule: `releasegate monitor {wf} --env staging`)",
        )
    )

    escalation_ok = bool(facts.responders) and bool(facts.escalations)
    fixes = []
    if not facts.responders:
        fixes.append("name responders in the workflow file (owners.responders)")
    if not facts.escalations:
        fixes.append(
            "give the workflow a human path besides `releasegate pause` (an escalation "
            "label, runs marked escalated)"
        )
    lines.append(
        CheckLine(
            "escalation",
            "escalation rules and a human fallback",
            escalation_ok,
            f"responders: {', '.join(facts.responders) or 'none'}; "
            + ("; ".join(facts.escalations) or "nothing is sent to a human"),
            "; ".join(fixes),
        )
    )

    rehearsal = facts.rehearsal
    fresh = is_rehearsed(rehearsal, facts.now, facts.rehearsal_period)
    lines.append(
        CheckLine(
            "rollback_rehearsed",
            f"rollback rehearsed within {facts.rehearsal_period.days} days",
            fresh,
            rehearsal_summary(rehearsal),
            "" if fresh else f"rehearse it: `releasegate rehearse {wf} --env staging`",
        )
    )

    runs_ok = facts.runs > 0 and facts.runs_unregistered == 0
    seen = ", ".join(v[:12] for v in facts.versions_seen) or "none"
    lines.append(
        CheckLine(
            "runs_recorded",
            "runs recorded with version ids",
            runs_ok,
            f"{facts.runs:,} runs in the last {RUNS_PERIOD.days} days, versions {seen}"
            + (
                f"; {facts.runs_unregistered:,} name a version never registered"
                if facts.runs_unregistered
                else ""
            ),
            ""
            if runs_ok
            else "record every run with the version that served it "
            "(client.run(version, ...), or `releasegate runs import FILE`)",
        )
    )

    lines.append(
        CheckLine(
            "nothing_pending",
            "no stage change pending",
            not facts.in_flight,
            "; ".join(facts.in_flight) or "no rollout, pause or scheduled stage in flight",
            "" if not facts.in_flight else "finish or undo it first",
        )
    )
    return Readiness(wf, facts.now, tuple(lines))


MIN_DAY_RUNS = 20
"""A day with fewer runs says little about the normal range and is left out."""


class NormalRange(NamedTuple):
    typical: float | None
    low: float | None
    high: float | None
    days: int


def normal_range(
    started_at: npt.NDArray[np.float64],
    values: npt.NDArray[np.float64],
    statistic: str,
    *,
    min_runs: int = MIN_DAY_RUNS,
) -> NormalRange:
    """The median day and the 10th-90th percentile of days of ``statistic`` (``mean`` or
    ``p95``) over ``values`` (NaN: not reported), days by UTC date of ``started_at``; days
    with fewer than ``min_runs`` reported values are left out."""
    import numpy as np

    keep = ~np.isnan(values)
    day = np.floor(started_at[keep] / 86400.0)
    vals = values[keep]
    if len(vals) == 0:
        return NormalRange(None, None, None, 0)
    order = np.argsort(day, kind="stable")
    day, vals = day[order], vals[order]
    cuts = np.flatnonzero(np.diff(day)) + 1
    daily = []
    for chunk in np.split(vals, cuts):
        if len(chunk) < min_runs:
            continue
        daily.append(
            float(np.mean(chunk)) if statistic == "mean" else float(np.quantile(chunk, 0.95))
        )
    if not daily:
        return NormalRange(None, None, None, 0)
    arr = np.asarray(daily)
    low, mid, high = np.quantile(arr, [0.1, 0.5, 0.9])
    return NormalRange(float(mid), float(low), float(high), len(daily))
