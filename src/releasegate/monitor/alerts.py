"""Alerts out, through an outbox: stored, then sent, then marked as sent.

Every alert is first stored ``pending`` with a lease held by the monitor that raised it
(the memo and the cool-down read the stored alerts), then sent to the terminal of
whoever ran the command, to JSON webhooks and to Slack-compatible webhooks named in the
workflow's ``monitor.routes``, then marked ``routed`` -- or ``failed`` with the error and
the attempt count when a route did not take it. A monitor killed between storing and
sending leaves the alert pending; once the lease has run out the next ``monitor`` sends
it, and re-sends failed ones (only to the routes that have not taken it yet). The
cool-down decides whether a *new* alert is raised; it never hides one not yet delivered.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from releasegate.domain.masking import mask_secrets
from releasegate.domain.monitoring import (
    Firing,
    MonitorConfig,
    Route,
    delivery_lease,
    owner_mention,
)
from releasegate.errors import NotFoundError
from releasegate.store.alerts import (
    ALERT_FAILED,
    ALERT_PENDING,
    ALERT_ROUTED,
    AlertRecord,
    AlertRepo,
    NewAlert,
)
from releasegate.store.decisions import DecisionRepo
from releasegate.store.engine import Conn, Store
from releasegate.store.environments import EnvironmentRepo
from releasegate.store.rollouts import RolloutRepo
from releasegate.store.workflows import WorkflowRecord, WorkflowRepo

log = logging.getLogger("releasegate.alerts")


@dataclass
class Alert:
    workflow: str
    env: str
    signal: str
    severity: str
    message: str
    owners: Mapping[str, Any]
    payload: Mapping[str, Any] = field(default_factory=dict)
    routed: list[str] = field(default_factory=list)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    seq: int | None = None
    status: str = ALERT_PENDING
    attempts: int = 0
    error: str | None = None
    is_resend: bool = False  # raised by an earlier monitor, delivered (again) by this one

    def as_dict(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "env": self.env,
            "signal": self.signal,
            "severity": self.severity,
            "message": self.message,
            "owners": dict(self.owners),
            "payload": dict(self.payload),
            "routed": list(self.routed),
            "at": self.at.isoformat(),
            "status": self.status,
            "attempts": self.attempts,
            "error": self.error,
            "resent": self.is_resend,
        }

    @property
    def mention(self) -> str:
        return owner_mention(self.owners)


@dataclass(frozen=True)
class Held:
    """A signal in alert inside its cool-down: its alert was already raised, and stays
    quiet until ``quiet_until`` (``delivery`` is that alert's outbox status)."""

    signal: str
    message: str
    raised_at: datetime
    quiet_until: datetime
    delivery: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "signal": self.signal,
            "message": self.message,
            "raised_at": self.raised_at.isoformat(),
            "quiet_until": self.quiet_until.isoformat(),
            "delivery": self.delivery,
            "sentence": self.sentence,
        }

    @property
    def sentence(self) -> str:
        already = {
            ALERT_ROUTED: "already sent",
            ALERT_FAILED: "already raised (its delivery failed; the next monitor re-sends it)",
            ALERT_PENDING: "already raised (being sent)",
        }.get(self.delivery, "already raised")
        return (
            f"{self.message}: {already} at {self.raised_at:%Y-%m-%d %H:%M} UTC, "
            f"quiet until {self.quiet_until:%Y-%m-%d %H:%M} UTC"
        )


class Delivery(NamedTuple):
    outcome: list[str]  # one line per route: "slack: sent (200)", "webhook: failed (...)"
    error: str | None  # None when every route took it


def _workflow(store: Store, name: str) -> WorkflowRecord | None:
    try:
        with store.read() as conn:
            return WorkflowRepo(conn).get(name)
    except NotFoundError:
        return None


def _config(wf: WorkflowRecord | None) -> MonitorConfig:
    return MonitorConfig.from_dict(wf.monitor if wf is not None else None)


def send(alert: Alert, routes: Iterable[Route], done: Sequence[str] = ()) -> Delivery:
    """Deliver to each route not already in ``done`` (outcome lines of an earlier attempt)."""
    outcome: list[str] = []
    errors: list[str] = []
    for route in routes:
        label = route.label
        earlier = next((d for d in done if d.startswith(f"{label}: sent")), None)
        if earlier is not None:  # this route took it last time: nobody is paged twice
            outcome.append(earlier)
            continue
        url = route.url or (os.environ.get(route.url_env) if route.url_env else None)
        if not url:
            line = f"{label}: not sent, ${route.url_env} is not set"
            outcome.append(line)
            errors.append(line)
            continue
        body = (
            {"text": f":rotating_light: *{alert.severity}* {alert.message} (cc {alert.mention})"}
            if route.kind == "slack"
            else alert.as_dict()
        )
        import urllib.error  # here, not at the top: a monitor that sends nothing never pays
        import urllib.request  # for http.client and the email parser it brings

        request = urllib.request.Request(
            url,
            data=json.dumps(body, default=str).encode("utf-8"),
            headers={"Content-Type": "application/json", "User-Agent": "releasegate"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=route.timeout.total_seconds()) as response:
                outcome.append(f"{label}: sent ({response.status})")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = mask_secrets(str(getattr(exc, "reason", exc)))
            line = f"{label}: failed ({reason})"
            outcome.append(line)
            errors.append(line)
            log.warning("alert route %s failed: %s", label, reason)
    return Delivery(outcome, "; ".join(errors) or None)


def _deliver(store: Store, alert: Alert, routes: Sequence[Route], done: Sequence[str]) -> None:
    """Send (the caller holds the lease), then record the attempt on the stored alert."""
    assert alert.seq is not None
    delivery = send(alert, routes, done)
    alert.routed = ["terminal", *delivery.outcome]
    alert.error = delivery.error
    alert.status = ALERT_ROUTED if delivery.error is None else ALERT_FAILED
    alert.attempts += 1
    with store.write() as conn:
        AlertRepo(conn).finish(alert.seq, alert.routed, delivery.error)


def _held(store: Store, alert: Alert, cooldown: timedelta, last: AlertRecord | None = None) -> Held:
    if last is None:
        with store.read() as conn:
            last = AlertRepo(conn).last(alert.workflow, alert.env, alert.signal)
    raised_at = last.created_at if last is not None else alert.at
    return Held(
        alert.signal,
        alert.message,
        raised_at,
        raised_at + cooldown,
        last.status if last is not None else ALERT_ROUTED,
    )


def _raise(store: Store, alert: Alert, cooldown: timedelta, routes: Sequence[Route]) -> Held | None:
    """Store the alert as pending unless its signal alerted within ``cooldown``, then send
    it and mark it routed or failed; returns what holds it when the cool-down does.

    The check and the insert share one write transaction under a lock, so two monitors
    (or an import and a monitor) seeing the same thing at once page people once. The
    alert is stored, its lease held, before it is sent: a slow, failing or killed route
    never loses it.
    """
    with store.write() as conn:
        seq = AlertRepo(conn).claim(
            NewAlert(
                alert.workflow,
                alert.env,
                alert.signal,
                alert.severity,
                alert.message,
                alert.payload,
            ),
            cooldown=cooldown,
            at=alert.at,
            lease=delivery_lease(routes),
        )
    if seq is None:
        return _held(store, alert, cooldown)
    alert.seq = seq
    _deliver(store, alert, routes, ())
    return None


def resend_due(store: Store, workflow: str, env: str) -> list[Alert]:
    """Send the pending and failed alerts of ``workflow@env`` whose lease has run out: one
    raised by a monitor killed before it sent it, or one a route refused last time."""
    with store.read() as conn:
        due = AlertRepo(conn).due(workflow, env)
    if not due:  # the common case: one indexed query, nothing else
        return []
    wf = _workflow(store, workflow)
    config = _config(wf)
    lease = delivery_lease(config.routes)
    sent: list[Alert] = []
    for record in due:
        with store.write() as conn:
            if not AlertRepo(conn).take(record.seq, lease):
                continue  # another monitor is sending it right now
        alert = _from_record(record, wf.owners if wf else {})
        _deliver(store, alert, config.routes, [r for r in record.routed if r != "terminal"])
        sent.append(alert)
    return sent


def _from_record(record: AlertRecord, owners: Mapping[str, Any]) -> Alert:
    return Alert(
        workflow=record.workflow,
        env=record.env,
        signal=record.signal,
        severity=record.severity,
        message=record.message,
        owners=owners,
        payload=record.payload,
        routed=list(record.routed),
        at=record.created_at,
        seq=record.seq,
        status=record.status,
        attempts=record.attempts,
        error=record.last_error,
        is_resend=True,
    )


class Raised(NamedTuple):
    alerts: list[Alert]  # raised and sent (or tried) now
    held: list[Held]  # in alert, but inside the cool-down of an alert already raised


@dataclass(frozen=True)
class Outside:
    """A version seen running in an environment it never passed the gate for (found by
    ``runs import`` and by ``monitor``; raised here)."""

    workflow: str
    env: str
    version_id: str
    runs: int
    registered: bool


def gated(conn: Conn, workflow: str, env: str, version_id: str) -> bool:
    """Did this version reach ``env`` through the loop (promoted or rolled back to there,
    the candidate of a rollout there, or holding a passing gate decision for it)?"""
    if any(h.version_id == version_id for h in EnvironmentRepo(conn).history(workflow, env)):
        return True
    if RolloutRepo(conn).was_candidate(workflow, env, version_id):
        return True  # a rollout starts only with the gate decision and the approvals
    decision = DecisionRepo(conn).latest(version_id, env)
    return decision is not None and decision.verdict == "pass"


def raise_outside_gate(store: Store, outside: Sequence[Any]) -> Raised:
    """A version running where it never passed the gate: critical, at once, once per cool-down."""
    out = Raised([], [])
    for o in outside:
        wf = _workflow(store, o.workflow)
        config = _config(wf)
        what = "a version never registered" if not o.registered else "a version"
        alert = Alert(
            workflow=o.workflow,
            env=o.env,
            signal=f"outside_gate:{o.version_id[:12]}",
            severity="critical",
            message=(
                f"{o.workflow}@{o.env} is running {what} that never passed the gate there: "
                f"{o.version_id[:12]} ({o.runs} runs)"
            ),
            owners=wf.owners if wf else {},
            payload={"version_id": o.version_id, "runs": o.runs, "registered": o.registered},
        )
        held = _raise(store, alert, config.cooldown, config.routes)
        if held is None:
            out.alerts.append(alert)
        else:
            out.held.append(held)
    return out


def raise_firings(
    store: Store,
    workflow: str,
    env: str,
    fired: Sequence[Firing],
    signals: Mapping[str, Mapping[str, Any]],
    last: Mapping[str, AlertRecord] | None = None,
) -> Raised:
    """Record and route the signals that fire outside their cool-down; ``signals`` are
    their reports by name. Those inside it come back as held, not dropped."""
    wf = _workflow(store, workflow)
    config = _config(wf)
    out = Raised([], [])
    for f in fired:
        reason = f"{f.signal} {f.reason} (rule)" if f.by_rule else f.reason
        alert = Alert(
            workflow=workflow,
            env=env,
            signal=f.signal,
            severity="warning",
            message=f"{workflow}@{env}: {reason}",
            owners=wf.owners if wf else {},
            payload={
                "value": f.value,
                "threshold": f.threshold,
                "by_rule": f.by_rule,
                "signal": signals.get(f.signal),
            },
        )
        cooldown = config.cooldown_for(f.signal)
        quiet = f.quiet_until is not None
        held = _held(store, alert, cooldown, (last or {}).get(f.signal)) if quiet else None
        if held is None:
            held = _raise(store, alert, cooldown, config.routes)
        if held is None:
            out.alerts.append(alert)
        else:
            out.held.append(held)
    return out


def last_alerts(
    store: Store, workflow: str, env: str, names: Iterable[str]
) -> dict[str, AlertRecord]:
    """The last alert of each signal named, in one read transaction."""
    with store.read() as conn:
        out = {}
        for name in names:
            last = AlertRepo(conn).last(workflow, env, name)
            if last is not None:
                out[name] = last
        return out
