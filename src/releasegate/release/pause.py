"""Pause and resume an environment: the human fallback.

``pause WORKFLOW --env ENV --reason R`` marks the environment paused; while it is,
``resolve`` (the SDK's ``client.resolve`` and ``releasegate resolve``) still names the
version but says ``paused`` with the reason, so the application sends every request to its
human fallback. The pause, its ``env.paused`` audit event and an alert for the responders
(in the alert outbox, sent by ``monitor.alerts.resend_due``) are written in one
transaction; ``resume`` clears it the same way (``env.resumed``). Pausing a paused
environment, or resuming one that runs, is refused (exit 1) and writes nothing.

``pause_if_severe`` is the automatic pause a policy may ask for (``pause_on:``, see
``domain.pausing``): ``rollout check`` and ``monitor`` call it; when a ceiling is shown
exceeded it pauses exactly as a person would, with the evidence in the audit event and the
alert. The pause is a compare-and-swap, so of concurrent checks that all see the breach one
pauses (one event, one alert) and the others report the pause they found.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from releasegate.domain.pausing import Breach, PauseOn, WindowRates, pause_reason, severe
from releasegate.errors import InputError, NotFoundError, PauseRefusedError
from releasegate.release.gate import current_policy
from releasegate.release.refs import actor as default_actor
from releasegate.release.refs import check_env
from releasegate.store.alerts import ALERT_PENDING, AlertRepo, NewAlert
from releasegate.store.audit import AuditRepo
from releasegate.store.engine import Conn, Store
from releasegate.store.environments import EnvironmentRepo, Pause
from releasegate.store.runs import RunRepo
from releasegate.store.workflows import WorkflowRepo

MAX_REASON = 2000


@dataclass(frozen=True)
class PauseChange:
    """What ``pause`` or ``resume`` did: the environment, the version it runs, the pause
    set (or the one lifted), and the alert stored for the responders."""

    workflow: str
    env: str
    version_id: str
    action: str
    """``paused`` or ``resumed``."""
    pause: Pause
    alert_seq: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "env": self.env,
            "version_id": self.version_id,
            "action": self.action,
            "paused": self.action == "paused",
            "pause": self.pause.as_dict(),
            "alert_seq": self.alert_seq,
        }


def pause(
    store: Store, workflow: str, env: str, *, reason: str, who: str | None = None
) -> PauseChange:
    """Pause ``workflow@env``: every request goes to the human fallback until ``resume``."""
    reason = reason.strip()
    if not reason:
        raise InputError(
            "a pause needs a reason: the responders and the application are told it",
            field="--reason",
        )
    if len(reason) > MAX_REASON:
        raise InputError(f"the reason is over {MAX_REASON} characters", field="--reason")
    who = who or default_actor()
    held = Pause(reason, who, datetime.now(UTC))
    with store.write() as conn:
        version_id = _running(conn, workflow, env, "pause")
        if not EnvironmentRepo(conn).set_pause(workflow, env, held):
            was = EnvironmentRepo(conn).pause(workflow, env)
            raise PauseRefusedError(
                f"{workflow}@{env} is already paused"
                + (f" by {was.by} since {was.at:%Y-%m-%d %H:%M} UTC: {was.reason}" if was else ""),
                hint=f"resume it first: `releasegate resume {workflow} --env {env}`",
            )
        seq = _record(conn, "paused", workflow, env, version_id, held, who)
    return PauseChange(workflow, env, version_id, "paused", held, seq)


def resume(store: Store, workflow: str, env: str, *, who: str | None = None) -> PauseChange:
    """Lift the pause of ``workflow@env``: its version serves requests again."""
    who = who or default_actor()
    with store.write() as conn:
        version_id = _running(conn, workflow, env, "resume")
        was = EnvironmentRepo(conn).pause(workflow, env)
        if was is None or not EnvironmentRepo(conn).set_pause(workflow, env, None):
            raise PauseRefusedError(
                f"{workflow}@{env} is not paused: nothing to resume",
                hint=f"`releasegate resolve {workflow} --env {env}` shows what it runs",
            )
        seq = _record(conn, "resumed", workflow, env, version_id, was, who)
    return PauseChange(workflow, env, version_id, "resumed", was, seq)


def paused(store: Store, workflow: str, env: str) -> Pause | None:
    """The pause of ``workflow@env``, or None while it runs normally."""
    with store.read() as conn:
        return EnvironmentRepo(conn).pause(workflow, env)


def _running(conn: Conn, workflow: str, env: str, verb: str) -> str:
    check_env(WorkflowRepo(conn).get(workflow), env)
    current = EnvironmentRepo(conn).current(workflow, env, lock=True)
    if current is None:
        raise NotFoundError(
            f"nothing runs in {workflow}@{env} yet: nothing to {verb}",
            field="--env",
            hint="promote a version that passed the gate first",
        )
    return current.version_id


def _record(
    conn: Conn,
    action: str,
    workflow: str,
    env: str,
    version_id: str,
    held: Pause,
    who: str,
    evidence: Mapping[str, Any] | None = None,
) -> int:
    """The ``env.paused``/``env.resumed`` audit event and the responders' alert
    (``evidence``: what an automatic pause saw, in both)."""
    extra = {} if evidence is None else {"automatic": True, "evidence": dict(evidence)}
    AuditRepo(conn).append(
        kind=f"env.{action}",
        actor=who,
        workflow=workflow,
        subject=version_id,
        payload={"env": env, "reason": held.reason, "paused_by": held.by, **extra},
    )
    if action == "paused":
        message = (
            f"{workflow}@{env} was paused by {who}: every request goes to the human "
            f"fallback until `releasegate resume {workflow} --env {env}`. Reason: {held.reason}"
        )
    else:
        message = (
            f"{workflow}@{env} was resumed by {who}: version {version_id[:12]} serves "
            f"requests again (paused by {held.by}: {held.reason})"
        )
    return AlertRepo(conn).add(
        NewAlert(
            workflow=workflow,
            env=env,
            signal=f"env.{action}",
            severity="critical" if action == "paused" else "warning",
            message=message,
            payload={"version_id": version_id, "reason": held.reason, "by": who, **extra},
        ),
        status=ALERT_PENDING,  # no lease: the first sender to take it sends it
    )


@dataclass(frozen=True)
class AutoPause:
    """What the policy's ``pause_on`` rule saw in one check, and what it did: ``change``
    when this check paused the environment (and alerted), ``found`` when it was already
    paused (by a person, or a concurrent check), neither when no ceiling was exceeded."""

    workflow: str
    env: str
    rule: PauseOn
    seen: WindowRates
    breaches: tuple[Breach, ...]
    change: PauseChange | None = None
    found: Pause | None = None

    @property
    def has_paused(self) -> bool:
        return self.change is not None

    @property
    def is_severe(self) -> bool:
        return bool(self.breaches)

    def as_dict(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "env": self.env,
            "severe": self.is_severe,
            "paused_now": self.has_paused,
            "reason": None if self.change is None else self.change.pause.reason,
            "already_paused": None if self.found is None else self.found.as_dict(),
            "window_s": self.rule.window.total_seconds(),
            "runs": self.seen.runs,
            "ceilings": dict(self.rule.ceilings),
            "breaches": [{**b.as_dict(), "sentence": b.sentence()} for b in self.breaches],
            "alert_seq": None if self.change is None else self.change.alert_seq,
        }


def pause_if_severe(
    store: Store, workflow: str, env: str, *, by: str, who: str | None = None,
    now: datetime | None = None,
) -> AutoPause | None:  # fmt: skip
    """Pause ``workflow@env`` when its policy's ``pause_on`` ceilings are shown exceeded
    over the policy's window (``by`` names the command, for the reason); None when the
    policy has no ``pause_on``. See the module docstring."""
    who = who or default_actor()
    at = now or datetime.now(UTC)
    with store.read() as conn:
        rule = current_policy(conn, workflow, env).pause_on
        if rule is None:
            return None
        end = at.timestamp()
        seen = RunRepo(conn).rate_counts(workflow, env, end - rule.window.total_seconds(), end)
    breaches = severe(seen.counts(), rule)
    checked = AutoPause(workflow, env, rule, seen, breaches)
    if not breaches:
        return checked
    held = Pause(pause_reason(breaches, by)[:MAX_REASON], who, at)
    evidence = {
        "by": by,
        "window_s": rule.window.total_seconds(),
        "runs": seen.runs,
        "breaches": [b.as_dict() for b in breaches],
    }
    with store.write() as conn:
        current = EnvironmentRepo(conn).current(workflow, env, lock=True)
        if current is None:
            return checked  # nothing serves there: nothing to pause
        envs = EnvironmentRepo(conn)
        if not envs.set_pause(workflow, env, held):
            return AutoPause(workflow, env, rule, seen, breaches, found=envs.pause(workflow, env))
        version_id = current.version_id
        seq = _record(conn, "paused", workflow, env, version_id, held, who, evidence)
    change = PauseChange(workflow, env, version_id, "paused", held, seq)
    return AutoPause(workflow, env, rule, seen, breaches, change=change)
