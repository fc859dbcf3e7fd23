"""Alerts out: recorded, then routed to the workflow's care owner and responders.

Every alert is stored first (the memo and the cool-down read them), then sent to the
terminal of whoever ran the command, to a JSON webhook and to Slack-compatible
webhooks named in the workflow's ``monitor.routes``. A route that fails is recorded
as failed on the alert; it never hides the alert itself.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from releasegate.domain.monitoring import Firing, MonitorConfig, Route
from releasegate.errors import NotFoundError
from releasegate.store.engine import Store
from releasegate.store.repos import AlertRepo, WorkflowRecord, WorkflowRepo

log = logging.getLogger("releasegate.alerts")
TIMEOUT_S = 5.0


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
        }

    @property
    def mention(self) -> str:
        names = [self.owners.get("care"), *self.owners.get("responders", [])]
        return ", ".join(dict.fromkeys(n for n in names if n)) or "no owner on record"


def _workflow(store: Store, name: str) -> WorkflowRecord | None:
    try:
        with store.read() as conn:
            return WorkflowRepo.get(conn, name)
    except NotFoundError:
        return None


def _config(wf: WorkflowRecord | None) -> MonitorConfig:
    return MonitorConfig.from_dict(wf.monitor if wf is not None else None)


def send(alert: Alert, routes: Iterable[Route]) -> list[str]:
    """Deliver to each route; returns what happened per route ("slack: sent", ...)."""
    outcome = []
    for route in routes:
        url = route.url or (os.environ.get(route.url_env) if route.url_env else None)
        label = route.kind + (f" (${route.url_env})" if route.url_env else "")
        if not url:
            outcome.append(f"{label}: not sent, ${route.url_env} is not set")
            continue
        body = (
            {"text": f":rotating_light: *{alert.severity}* {alert.message} (cc {alert.mention})"}
            if route.kind == "slack"
            else alert.as_dict()
        )
        request = urllib.request.Request(
            url,
            data=json.dumps(body, default=str).encode("utf-8"),
            headers={"Content-Type": "application/json", "User-Agent": "releasegate"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                outcome.append(f"{label}: sent ({response.status})")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            outcome.append(f"{label}: failed ({reason})")
            log.warning("alert route %s failed: %s", label, reason)
    return outcome


def _raise(store: Store, alert: Alert, cooldown: timedelta, routes: Iterable[Route]) -> bool:
    """Record the alert unless its signal alerted within ``cooldown``, then route it.

    The check and the insert share one write transaction under a lock, so two monitors
    (or an import and a monitor) seeing the same thing at once page people once. The
    alert is stored before it is sent, so a slow or failing route never loses it.
    """
    with store.write() as conn:
        seq = AlertRepo.claim(
            conn,
            workflow=alert.workflow,
            env=alert.env,
            signal=alert.signal,
            severity=alert.severity,
            message=alert.message,
            payload=alert.payload,
            cooldown=cooldown,
            at=alert.at,
        )
    if seq is None:
        return False
    alert.routed = ["terminal", *send(alert, routes)]
    with store.write() as conn:
        AlertRepo.set_routed(conn, seq, alert.routed)
    return True


def raise_outside_gate(store: Store, outside: Sequence[Any]) -> list[Alert]:
    """A version running where it never passed the gate: critical, at once, once per cool-down."""
    raised: list[Alert] = []
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
        if _raise(store, alert, config.cooldown, config.routes):
            raised.append(alert)
    return raised


def raise_firings(
    store: Store,
    workflow: str,
    env: str,
    fired: Sequence[Firing],
    signals: Mapping[str, Mapping[str, Any]],
) -> list[Alert]:
    """Record and route the signals that fire; ``signals`` are their reports by name."""
    wf = _workflow(store, workflow)
    config = _config(wf)
    raised = []
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
        if _raise(store, alert, config.cooldown_for(f.signal), config.routes):
            raised.append(alert)
    return raised


def last_fired(store: Store, workflow: str, env: str, names: Iterable[str]) -> dict[str, datetime]:
    with store.read() as conn:
        out = {}
        for name in names:
            last = AlertRepo.last(conn, workflow, env, name)
            if last is not None:
                out[name] = last.created_at
        return out
