"""Automatic pause: the policy's ceilings on a workflow's failure rates, and when one is shown.

An environment's policy may say ``pause_on: {error_rate: 0.5}``: when at least half of the
runs fail, stop sending requests to the model (the human fallback takes them) rather than
wait for a person. ``rollout check`` and ``monitor`` read the environment's runs of the last
``window`` (default 1 h; both arms under a rollout) and ask ``severe``. A rule fires when
the window holds at least ``min_runs`` runs and the one-sided exact (Clopper-Pearson) lower
confidence bound of the rate exceeds the ceiling at ``alpha`` (default 1%) split evenly over
the rules (Bonferroni). Error rates: a workflow whose rate is at or below every ceiling is
paused by one check with probability at most ``alpha``; successive checks read overlapping
windows, so ``k`` checks pause it wrongly at most ``k * alpha`` (in practice far less, the
windows being nearly the same runs). A rate well beyond the ceiling is shown quickly: 70%
errors in 50 runs beats a 0.5 ceiling.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NamedTuple

from releasegate.domain.document import Fields
from releasegate.domain.monitoring import SIGNALS, parse_duration

RATES: Mapping[str, str] = {
    "error_rate": "share of runs that failed",
    "escalation_rate": "share of runs escalated to a human",
    "edit_rate": "share of outputs edited",
    "negative_feedback_rate": "share of feedback that is negative (of runs with feedback)",
}
"""The signals a ceiling may name: per-run rates in [0, 1]."""
OPTIONS = ("window", "min_runs", "alpha")
DEFAULT_WINDOW = timedelta(hours=1)
DEFAULT_MIN_RUNS = 50
DEFAULT_ALPHA = 0.01


@dataclass(frozen=True)
class PauseOn:
    """The ``pause_on:`` section: signal -> ceiling, and how much evidence a pause needs."""

    ceilings: Mapping[str, float] = field(default_factory=dict)
    window: timedelta = DEFAULT_WINDOW
    min_runs: int = DEFAULT_MIN_RUNS
    alpha: float = DEFAULT_ALPHA

    def content(self) -> dict[str, Any]:
        return {
            "ceilings": dict(self.ceilings),
            "window_s": self.window.total_seconds(),
            "min_runs": self.min_runs,
            "alpha": self.alpha,
        }

    @classmethod
    def from_content(cls, data: Mapping[str, Any]) -> PauseOn:
        return cls(
            ceilings={str(k): float(v) for k, v in data["ceilings"].items()},
            window=timedelta(seconds=float(data["window_s"])),
            min_runs=int(data["min_runs"]),
            alpha=float(data["alpha"]),
        )


def parse_pause_on(f: Fields) -> PauseOn:
    """``pause_on: {error_rate: 0.5, window: 1h, min_runs: 50}``; a bad signal or value is
    an error naming the file, line and field."""
    ceilings: dict[str, float] = {}
    for key, value in f.value.items():
        name = str(key)
        if name in OPTIONS:
            continue
        if name not in RATES:
            what = (
                f"'{name}' is a monitor signal, but not a rate a ceiling can pause on"
                if name in SIGNALS
                else f"unknown signal '{name}'"
            )
            f.fail(name, what, hint="pause_on takes: " + ", ".join((*RATES, *OPTIONS)))
        if isinstance(value, bool) or not isinstance(value, int | float):
            f.fail(name, f"expected a ceiling (a share between 0 and 1), got {value!r}")
        if not (math.isfinite(value) and 0.0 < value < 1.0):
            f.fail(
                name,
                f"the ceiling must be above 0 and below 1, got {value}",
                hint=f"{name}: {RATES[name]}, e.g. 0.5",
            )
        ceilings[name] = float(value)
    if not ceilings:
        f.fail(
            None, "name at least one rate and its ceiling", hint="e.g. pause_on: {error_rate: 0.5}"
        )
    window = DEFAULT_WINDOW
    if f.has("window"):
        try:
            window = parse_duration(str(f.get("window", (str, int))))
        except ValueError as exc:
            f.fail("window", str(exc))
    min_runs = f.get("min_runs", int, DEFAULT_MIN_RUNS)
    if min_runs < 1:
        f.fail("min_runs", f"must be at least 1, got {min_runs}")
    alpha = f.get("alpha", float, DEFAULT_ALPHA)
    if not 0.0 < alpha < 0.5:
        f.fail("alpha", f"must be above 0 and below 0.5, got {alpha}")
    return PauseOn(ceilings=ceilings, window=window, min_runs=min_runs, alpha=alpha)


@dataclass(frozen=True)
class RateCount:
    """Runs that showed the event, of the runs that could (``negative_feedback_rate``: of
    the runs with feedback)."""

    events: int
    runs: int

    @property
    def rate(self) -> float:
        return self.events / self.runs if self.runs else math.nan


@dataclass(frozen=True)
class Breach:
    """A ceiling shown exceeded: the evidence a pause is recorded and alerted with."""

    signal: str
    ceiling: float
    events: int
    runs: int
    lower_bound: float
    alpha: float

    @property
    def rate(self) -> float:
        return self.events / self.runs

    def sentence(self) -> str:
        return (
            f"{self.signal} {self.rate:.1%} ({self.events:,} of {self.runs:,} runs) is above its "
            f"ceiling {self.ceiling:.0%}: the rate is at least {self.lower_bound:.1%} with "
            f"{1 - self.alpha:.1%} confidence"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "signal": self.signal,
            "ceiling": self.ceiling,
            "rate": self.rate,
            "events": self.events,
            "runs": self.runs,
            "lower_bound": self.lower_bound,
            "alpha": self.alpha,
        }


def lower_bound(events: int, runs: int, alpha: float) -> float:
    """One-sided exact (Clopper-Pearson) lower confidence bound of a rate, level 1 - alpha."""
    if runs <= 0 or events <= 0:
        return 0.0
    from scipy import stats  # here, not at import: every policy loads this module, and
    # scipy.stats costs ~0.5 s of CPU at start-up that review, gate and promote never use

    return float(stats.beta.ppf(alpha, events, runs - events + 1))


class WindowRates(NamedTuple):
    """The counts behind the rates of one window of runs (``RunRepo.rate_counts``)."""

    runs: int
    errors: int
    escalated: int
    edited: int
    with_feedback: int
    negative_feedback: int

    def counts(self) -> dict[str, RateCount]:
        return {
            "error_rate": RateCount(self.errors, self.runs),
            "escalation_rate": RateCount(self.escalated, self.runs),
            "edit_rate": RateCount(self.edited, self.runs),
            "negative_feedback_rate": RateCount(self.negative_feedback, self.with_feedback),
        }


def severe(counts: Mapping[str, RateCount], pause_on: PauseOn) -> tuple[Breach, ...]:
    """The ceilings shown exceeded by ``counts`` (signal -> events of runs), in the policy's
    order; empty when the workflow may keep running (see the module docstring)."""
    per_rule = pause_on.alpha / max(1, len(pause_on.ceilings))
    found: list[Breach] = []
    for signal, ceiling in pause_on.ceilings.items():
        count = counts.get(signal)
        if count is None or count.runs < pause_on.min_runs:
            continue
        low = lower_bound(count.events, count.runs, per_rule)
        if low > ceiling:
            found.append(Breach(signal, ceiling, count.events, count.runs, low, per_rule))
    return tuple(found)


def pause_reason(breaches: tuple[Breach, ...], by: str) -> str:
    """The pause's reason, as the responders and the application read it."""
    return f"paused automatically by {by}: " + "; ".join(b.sentence() for b in breaches)
