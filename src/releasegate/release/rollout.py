"""Rollout: promote a version progressively, and let its own runs stop it when it is worse.

``start`` is a promotion that moves only a share of traffic: the version must have
earned the environment exactly as ``promote`` requires (``promote.promotable``, in the
same write transaction, the alias locked), and the rollout is stored and audited there.
``check`` reads the runs each arm served since the last check, feeds them to the
comparisons (``domain.rollout``) and acts: abort (weight 0, audited, one alert for the
responders), hold, or advance when eligible and the policy says ``auto_advance``. The
runs are read outside any write; the decision is written by compare-and-swap on the
rollout's revision, so of two concurrent checks that both see "abort" exactly one writes
it, with its alert in the alert outbox in the same transaction, and the other reports it.
The outbox's sender (``monitor.alerts.resend_due``: the CLI calls it after each check,
else the next ``monitor``) takes each alert under a lease, so it is sent once.
``advance`` into the last step completes the rollout: the same promotion checks again,
then the alias moves. A shadow rollout (``shadow=True``) serves the candidate to nobody:
its check pairs the stable's runs with the shadow runs of the same inputs
(``domain.shadow``), and advancing it starts the ramp's first step.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np

from releasegate.domain.canary import Blocks
from releasegate.domain.rollout import (
    CheckOutcome,
    Mode,
    Rollout,
    aborted,
    advanced,
    assess,
    begin,
    observe_sums,
    ramp,
    reference,
    with_references,
)
from releasegate.domain.shadow import observe_shadow
from releasegate.errors import InputError, RolloutRefusedError, StaleAliasError
from releasegate.release.gate import current_policy
from releasegate.release.pause import AutoPause, pause_if_severe
from releasegate.release.promote import promotable, record_abort
from releasegate.release.refs import actor as default_actor
from releasegate.release.refs import check_env, find_version, forced_reason
from releasegate.release.retry import retried
from releasegate.store.alerts import ALERT_PENDING, AlertRepo, NewAlert
from releasegate.store.audit import AuditRepo
from releasegate.store.engine import Store
from releasegate.store.environments import EnvironmentRepo
from releasegate.store.rollouts import RolloutRepo
from releasegate.store.workflows import WorkflowRecord, WorkflowRepo


def _now() -> datetime:
    return datetime.now(UTC)


@retried
def start(
    store: Store,
    version_ref: str,
    env: str,
    *,
    canary_pct: float | None = None,
    steps: tuple[float, ...] | None = None,
    who: str | None = None,
    rollout_id: str | None = None,
    shadow: bool = False,
) -> Rollout:
    """Start serving ``canary_pct``% of ``env``'s traffic with the version (see the module
    docstring). ``steps`` replaces the policy's ramp; the first step is ``canary_pct``.
    ``rollout_id`` (default: random) seeds who gets the canary: the same id, the same keys.
    ``shadow``: serve it to nobody, compare it on the stable's inputs; ``steps`` is then
    the ramp it takes once advanced (it may be just 100)."""
    who = who or default_actor()
    if shadow and canary_pct is not None:
        raise InputError(
            "--shadow and --canary: a rollout starts in one of them",
            field="--shadow",
            hint="start in shadow, then `releasegate rollout advance` to the first step",
        )
    mode: Mode = "shadow" if shadow else "canary"
    with store.write() as conn:
        version = find_version(conn, version_ref)
        wf = WorkflowRepo(conn).get(version.workflow)
        check_env(wf, env)
        policy = current_policy(conn, wf.name, env).rollout_or_default
        chosen = steps if steps is not None else policy.steps
        ramp_steps = tuple(chosen) if shadow else ramp(chosen, canary_pct)
        repo = RolloutRepo(conn)
        running = repo.active(wf.name, env)
        if running is not None:
            raise RolloutRefusedError(
                f"a rollout of {running.canary_id[:12]} already runs in {wf.name}@{env} "
                f"({running.serving})",
                hint=f"`releasegate rollout advance|abort {wf.name} --env {env}` first",
            )
        current = EnvironmentRepo(conn).current(wf.name, env, lock=True)
        if current is None:
            raise RolloutRefusedError(
                f"nothing runs in {wf.name}@{env} yet: a {mode} needs a stable version "
                "to be compared with",
                hint=f"promote the first version without --canary: "
                f"`releasegate promote {version.version_id[:12]} --env {env}`",
            )
        at = _now()
        earned = promotable(conn, version, wf, env, current)
        latency, cost = repo.reference_runs(wf.name, env, current[0], before=at.timestamp())
        evidence = replace(reference(latency, cost), cursor=repo.last_run_seq())
        rollout = begin(
            rollout_id=rollout_id or uuid.uuid4().hex,
            workflow=wf.name,
            env=env,
            stable_id=current[0],
            canary_id=version.version_id,
            policy=policy.with_steps(ramp_steps),
            at=at,
            actor=who,
            evidence=evidence,
            mode=mode,
        )
        repo.add(rollout)
        AuditRepo(conn).append(
            kind="rollout.started",
            actor=who,
            workflow=wf.name,
            subject=version.version_id,
            payload={
                "env": env,
                "rollout_id": rollout.rollout_id,
                "mode": mode,
                "stable_id": current[0],
                "steps": list(ramp_steps),
                "weight": rollout.weight,
                "decision_id": earned.decision.decision_id,
                "approvals": [a.approver for a in earned.given],
            },
        )
    return rollout


def _running(conn: Any, workflow: str, env: str, verb: str) -> Rollout:
    """The rollout running in ``workflow@env``, or a refusal saying why there is none."""
    repo = RolloutRepo(conn)
    running = repo.active(workflow, env)
    if running is not None:
        return running
    last = repo.latest(workflow, env)
    if last is not None:
        advanced(last, _now()) if verb == "advance" else aborted(last, "", _now())  # refuses
    raise RolloutRefusedError(
        f"no rollout runs in {workflow}@{env}",
        hint=f"start one with `releasegate promote VERSION --env {env} --canary PCT`",
    )


def _complete(conn: Any, wf: WorkflowRecord, r: Rollout, done: Rollout, who: str) -> None:
    """Advancing into 100%: the promotion checks again, then the alias moves to the canary."""
    current = EnvironmentRepo(conn).current(wf.name, r.env, lock=True)
    if current is None or current[0] != r.stable_id:
        raise StaleAliasError(
            f"{wf.name}@{r.env} no longer runs {r.stable_id[:12]}, the rollout's stable version",
            hint=f"abort the rollout: `releasegate rollout abort {wf.name} --env {r.env}`",
        )
    version = find_version(conn, r.canary_id)
    earned = promotable(conn, version, wf, r.env, current)
    EnvironmentRepo(conn).move(
        workflow=wf.name, env=r.env, version_id=r.canary_id, expected=current
    )
    EnvironmentRepo(conn).record(
        workflow=wf.name,
        env=r.env,
        version_id=r.canary_id,
        previous_id=r.stable_id,
        action="promote",
        actor=who,
        decision_id=earned.decision.decision_id,
        reason=f"rollout {r.rollout_id} completed",
    )
    AuditRepo(conn).append(
        kind="env.promoted",
        actor=who,
        workflow=wf.name,
        subject=r.canary_id,
        payload={
            "env": r.env,
            "previous_id": r.stable_id,
            "decision_id": earned.decision.decision_id,
            "approvals": [a.approver for a in earned.given],
            "rollout_id": r.rollout_id,
        },
    )


def _verdict_lines(r: Rollout) -> list[str]:
    """What the evidence says now, signal by signal (kept in the audit when it is left)."""
    return [v.reason for v in assess(r, now=_now()).verdicts]


def _advance_in(
    conn: Any, r: Rollout, who: str, why: str, extra: dict[str, Any] | None = None
) -> Rollout:
    wf = WorkflowRepo(conn).get(r.workflow)
    moved = advanced(r, _now())
    if moved.state == "completed":
        _complete(conn, wf, r, moved, who)
    if not RolloutRepo(conn).save(moved, expected_revision=r.revision):
        raise RolloutRefusedError(
            f"the rollout in {r.workflow}@{r.env} changed while advancing it",
            hint=f"look again: `releasegate rollout status {r.workflow} --env {r.env}`",
        )
    AuditRepo(conn).append(
        kind="rollout.completed" if moved.state == "completed" else "rollout.advanced",
        actor=who,
        workflow=r.workflow,
        subject=r.canary_id,
        payload={
            "env": r.env,
            "rollout_id": r.rollout_id,
            "weight": moved.weight,
            "from_weight": r.weight,
            "from_mode": r.mode,
            "why": why,
            **({"shadow_verdicts": _verdict_lines(r)} if r.is_shadow else {}),
            **(extra or {}),
        },
    )
    return moved


@retried
def advance(
    store: Store,
    workflow: str,
    env: str,
    *,
    who: str | None = None,
    force: bool = False,
    reason: str = "",
) -> Rollout:
    """The next step, by hand (an operator's call: audited with who made it). Only a step
    the evidence so far calls eligible advances (a held step is never passed quietly);
    ``force`` with a ``reason`` advances anyway, the reason and the overridden assessment
    in the audit event. Refused while the environment is paused."""
    who = who or default_actor()
    reason = forced_reason(reason, force=force, recorded_with="the assessment it overrides")
    with store.write() as conn:
        check_env(WorkflowRepo(conn).get(workflow), env)
        r = _running(conn, workflow, env, "advance")
        held = EnvironmentRepo(conn).pause(workflow, env)
        if held is not None:
            raise RolloutRefusedError(
                f"{workflow}@{env} is paused (by {held.by} since {held.at:%Y-%m-%d %H:%M} UTC: "
                f"{held.reason}): the rollout does not advance while every request goes to "
                "the human fallback",
                hint=f"resume it first: `releasegate resume {workflow} --env {env}`",
            )
        outcome = assess(r, now=_now())
        if outcome.is_eligible:
            return _advance_in(conn, r, who, "by hand", {"reason": reason} if reason else None)
        said = {"abort": "would abort it", "hold": "holds it"}[outcome.action]
        if not force:
            where = "the shadow" if r.is_shadow else f"step {r.step + 1} at {r.weight:g}%"
            raise RolloutRefusedError(
                f"{where} of {workflow}@{env} is not eligible to advance: the check {said} "
                f"({'; '.join(outcome.reasons)})",
                hint=f"`releasegate rollout check {workflow} --env {env}` reads the newest "
                "runs; to advance anyway, on the record: "
                f'`releasegate rollout advance {workflow} --env {env} --force --reason "..."`',
            )
        overrode = {
            "forced": True,
            "reason": reason,
            "overrode": {
                "action": outcome.action,
                "reasons": list(outcome.reasons),
                "step_runs": outcome.step_runs,
                "min_runs": outcome.min_runs,
            },
        }
        return _advance_in(conn, r, who, f"by hand, forced: the check {said}", overrode)


@retried
def abort(
    store: Store, workflow: str, env: str, *, who: str | None = None, reason: str = ""
) -> Rollout:
    """Weight 0 now: the stable version serves everything again."""
    who = who or default_actor()
    with store.write() as conn:
        check_env(WorkflowRepo(conn).get(workflow), env)
        r = _running(conn, workflow, env, "abort")
        stopped = aborted(r, reason or f"aborted by {who}", _now())
        if not record_abort(conn, stopped, r.revision, who):
            raise RolloutRefusedError(
                f"the rollout in {workflow}@{env} changed while aborting it", hint="try again"
            )
    return stopped


@dataclass(frozen=True)
class Checked:
    """What one check saw and did. ``has_aborted``: this check found the canary worse and
    the rollout is aborted now (``wrote_abort``: this process wrote it, and alerted).
    ``rollout`` is None when no rollout ever ran in the environment (``check`` still
    applies the ``pause_on`` rule there)."""

    rollout: Rollout | None
    outcome: CheckOutcome | None
    runs_read: int
    has_aborted: bool = False
    wrote_abort: bool = False
    has_advanced: bool = False
    alert_seq: int | None = None
    """The abort's alert, stored in the outbox with the abort (``monitor.alerts.resend_due``
    sends it: ``rollout check`` does at once, else the next ``monitor``)."""
    alert_message: str | None = None
    auto_pause: AutoPause | None = None
    """The policy's ``pause_on`` rule after the check, when the policy has one."""

    @property
    def is_no(self) -> bool:
        """Exit 1: the check aborted the rollout, or a ``pause_on`` ceiling is exceeded."""
        return self.has_aborted or (self.auto_pause is not None and self.auto_pause.is_severe)


def status(store: Store, workflow: str, env: str) -> Checked:
    """The newest rollout of ``workflow@env`` and what its evidence says now (no new reads)."""
    with store.read() as conn:
        check_env(WorkflowRepo(conn).get(workflow), env)
        r = RolloutRepo(conn).latest(workflow, env)
    if r is None:
        raise RolloutRefusedError(
            f"no rollout ever ran in {workflow}@{env}",
            hint=f"start one with `releasegate promote VERSION --env {env} --canary PCT`",
        )
    return Checked(r, assess(r, now=_now()) if r.is_running else None, 0)


def check(
    store: Store,
    workflow: str,
    env: str,
    *,
    who: str | None = None,
    pause_after_read: float = 0.0,
    quality: QualitySampler | None = None,
) -> Checked:
    """Read the new runs, compare the arms, and abort, hold or advance (module docstring);
    then the policy's ``pause_on`` rule (``release.pause.pause_if_severe``) over the
    environment's recent runs, which may pause it. ``quality`` scores a sample of each
    arm's new runs when the policy compares ``quality`` (``monitor.quality.arm_quality``;
    the CLI passes it). ``pause_after_read`` lets a test hold two checks between their
    read and their write."""
    who = who or default_actor()
    checked = _check(
        store, workflow, env, who=who, pause_after_read=pause_after_read, quality=quality
    )
    auto = pause_if_severe(store, workflow, env, by="rollout check", who=who)
    return checked if auto is None else replace(checked, auto_pause=auto)


QualitySampler = Callable[[Store, Rollout, int, int], Blocks | None]
"""(store, rollout, after_seq, upto) -> the sampled quality of each arm, in blocks."""


@retried
def _check(
    store: Store,
    workflow: str,
    env: str,
    *,
    who: str,
    pause_after_read: float,
    quality: QualitySampler | None,
) -> Checked:
    with store.read() as conn:
        wf = WorkflowRepo(conn).get(workflow)
        check_env(wf, env)
        r = RolloutRepo(conn).active(workflow, env)
        if r is None:
            # nothing to compare: exit 0 for the cron or CI that calls this (the pause_on
            # rule still applies); the newest rollout, ended, or None if none ever ran
            return Checked(RolloutRepo(conn).latest(workflow, env), None, 0)
        repo = RolloutRepo(conn)
        if r.is_shadow:
            shadow_runs = repo.shadow_runs(r, r.evidence.cursor, r.evidence.waiting)
            n_read = shadow_runs.read
        else:  # the database sums the runs per block and arm (store.rollouts.arm_sums)
            ev = r.evidence
            if ev.latency_ref is None or ev.cost_ref is None:  # a new environment: learn them
                latency, cost = repo.first_stable_runs(r, ev.cursor)
                ev = with_references(ev, np.asarray(latency), np.asarray(cost))
            cost_upper = None if ev.cost_ref is None else ev.cost_ref[1]
            mix = "label_mix" in r.policy.signals
            sums = repo.arm_sums(r, ev.cursor, ev.latency_ref, cost_upper, labels=mix)
            n_read = sums.canary_runs + sums.stable_runs
    if not r.is_shadow and quality is not None and "quality" in r.policy.signals:
        sampled = quality(store, r, r.evidence.cursor, sums.cursor)
        if sampled is not None:
            sums = sums._replace(blocks={**sums.blocks, "quality": sampled})
    if pause_after_read:
        time.sleep(pause_after_read)
    if r.is_shadow:
        seen = replace(r, evidence=observe_shadow(r.evidence, r.policy, shadow_runs))
    else:
        seen = replace(r, evidence=observe_sums(ev, r.policy, sums))
    outcome = assess(seen, now=_now())
    if outcome.action == "abort":
        return _abort_on_check(store, wf, r, seen, outcome, who, n_read)
    with store.write() as conn:
        repo = RolloutRepo(conn)
        if outcome.action == "advance" and r.policy.auto_advance:
            try:
                moved = _advance_in(conn, replace(seen, revision=r.revision), who, "checked")
            except RolloutRefusedError:
                moved = None  # another check moved it first: it said so
            if moved is not None:
                return Checked(moved, outcome, n_read, has_advanced=True)
        saved = replace(seen, revision=r.revision + 1, updated_at=_now())
        if not repo.save(saved, expected_revision=r.revision):
            saved = repo.get(r.rollout_id) or saved  # another check saved first
    return Checked(saved, outcome, n_read)


def _abort_on_check(
    store: Store,
    wf: WorkflowRecord,
    r: Rollout,
    seen: Rollout,
    outcome: CheckOutcome,
    who: str,
    runs_read: int,
) -> Checked:
    reason = "; ".join(outcome.reasons)
    at = _now()
    stopped = aborted(replace(seen, revision=r.revision), reason, at)
    if r.is_shadow:
        message = (
            f"{r.workflow}@{r.env}: the shadow of {r.canary_id[:12]} was aborted (it served "
            f"nobody; stable {r.stable_id[:12]} serves everything): {reason}"
        )
    else:
        message = (
            f"{r.workflow}@{r.env}: the rollout of {r.canary_id[:12]} was aborted at "
            f"{r.weight:g}% (stable {r.stable_id[:12]} serves everything again): {reason}"
        )
    payload = {
        "rollout_id": r.rollout_id,
        "mode": r.mode,
        "canary_id": r.canary_id,
        "stable_id": r.stable_id,
        "weight": r.weight,
        "verdicts": [v.reason for v in outcome.verdicts],
    }
    seq: int | None = None
    with store.write() as conn:
        evidence = stopped.evidence.to_dict()
        won = record_abort(
            conn, stopped, r.revision, who, weight=r.weight, evidence=evidence, by="check"
        )
        if won:
            seq = AlertRepo(conn).add(
                NewAlert(
                    workflow=r.workflow,
                    env=r.env,
                    signal=f"rollout:{r.rollout_id[:12]}",
                    severity="critical",
                    message=message,
                    payload=payload,
                ),
                at=at,
                status=ALERT_PENDING,  # no lease: the first sender to take it sends it
            )
        else:
            stopped = RolloutRepo(conn).get(r.rollout_id) or stopped
    if not won:
        # another check wrote first: aborted by it (and alerted once), or moved on
        return Checked(stopped, outcome, runs_read, has_aborted=stopped.state == "aborted")
    return Checked(stopped, outcome, runs_read, True, True, alert_seq=seq, alert_message=message)


def rollout_dict(c: Checked, workflow: str = "", env: str = "") -> dict[str, Any]:
    """What ``rollout status|check --json`` prints; with no rollout ever run there (a
    ``check``), the ``workflow`` and ``env`` named, ``state`` and ``rollout_id`` null."""
    r = c.rollout
    if r is None:
        return {
            "rollout_id": None,
            "workflow": workflow,
            "env": env,
            "state": None,
            "runs_read": 0,
            "aborted_now": False,
            "advanced_now": False,
            "pause": None if c.auto_pause is None else c.auto_pause.as_dict(),
        }
    out: dict[str, Any] = {
        "rollout_id": r.rollout_id,
        "workflow": r.workflow,
        "env": r.env,
        "state": r.state,
        "mode": r.mode,
        "stable_id": r.stable_id,
        "canary_id": r.canary_id,
        "steps": list(r.steps),
        "step": 0 if r.is_shadow else r.step + 1,
        "weight": r.weight,
        "started_at": r.started_at.isoformat(),
        "updated_at": r.updated_at.isoformat(),
        "step_started_at": r.step_started_at.isoformat(),
        "reason": r.reason,
        "canary_runs": r.evidence.canary_runs,
        "stable_runs": r.evidence.stable_runs,
        "step_runs": r.evidence.step_runs,
        "min_runs_per_step": r.policy.min_runs_per_step,
        "auto_advance": r.policy.auto_advance,
        "runs_read": c.runs_read,
        "unpaired": r.evidence.unpaired,
        "replay": r.evidence.replay,
        "aborted_now": c.has_aborted,
        "advanced_now": c.has_advanced,
    }
    if c.outcome is not None:
        out["outcome"] = {
            "action": c.outcome.action,
            "reasons": list(c.outcome.reasons),
            "alpha_per_signal": c.outcome.alpha_per_signal,
            "signals": [v.to_dict() for v in c.outcome.verdicts],
        }
    if c.alert_message is not None:
        out["alert"] = {"seq": c.alert_seq, "message": c.alert_message}
    out["pause"] = None if c.auto_pause is None else c.auto_pause.as_dict()
    return out
