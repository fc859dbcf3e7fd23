"""Approve, promote, roll back and resolve: moving an environment's alias, safely.

A promotion is checked and applied in one write transaction: ``promotable`` gathers
the facts (the version's latest gate decision for the environment and whether its
signed audit event vouches for it, the current suite and policy, where the alias
points, the approvals on record) and the rules are ``domain.promotion.refusal``,
pure: the decision cleared every check on the *current* suite and policy, the
data rules in force now still allow where the version sends its data (they may have
tightened since the gate), the approvals it required are on record now, and the alias
still points where it did when the gate looked. A rollout starts and completes through the same
``promotable``. The alias moves by compare-and-swap on its revision, so of two
promoters exactly one wins and the other gets a clear refusal.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from releasegate.domain.audit import Decided, vouch
from releasegate.domain.decision import Approval
from releasegate.domain.promotion import (
    DecidedFacts,
    Owners,
    PromotionFacts,
    approval_refusal,
    refusal,
    step_back,
)
from releasegate.domain.rollout import Rollout, aborted
from releasegate.errors import (
    RefusedError,
    RolloutRefusedError,
    StaleAliasError,
)
from releasegate.release.data_rules import version_violations
from releasegate.release.gate import current_policy
from releasegate.release.refs import actor as default_actor
from releasegate.release.refs import check_env, find_version
from releasegate.release.retry import retried
from releasegate.store.audit import AuditRepo
from releasegate.store.decisions import ApprovalRepo, DecisionRecord, DecisionRepo
from releasegate.store.engine import Store
from releasegate.store.environments import EnvironmentRepo, HistoryRecord
from releasegate.store.rollouts import RolloutRepo
from releasegate.store.suites import SuiteRepo
from releasegate.store.versions import VersionRecord
from releasegate.store.workflows import WorkflowRecord, WorkflowRepo


@dataclass(frozen=True)
class Approved:
    """A sign-off recorded (or already there): who approved which version for where, as what."""

    version_id: str
    env: str
    approver: str
    role: str
    """The role(s) they signed in, comma-separated (``approver``, ``business``)."""


@dataclass(frozen=True)
class Moved:
    workflow: str
    env: str
    version_id: str
    previous_id: str | None
    action: str
    changed: bool


@retried
def approve(
    store: Store,
    version_ref: str,
    env: str,
    *,
    approver: str,
    note: str = "",
    os_user: str | None = None,
    token_id: str | None = None,
) -> Approved:
    """Record ``approver``'s sign-off for ``env``, once (approving again changes nothing).

    The audit event also names how the approver was known: ``os_user``, the login that
    ran a local ``approve --as`` (so an impersonation is visible), or ``token_id``, the
    server's API token whose identity ``approver`` is."""
    with store.write() as conn:
        version = find_version(conn, version_ref)
        wf = WorkflowRepo(conn).get(version.workflow)
        check_env(wf, env)
        owners = Owners.of(wf.owners)
        refused = approval_refusal(
            approver,
            version_id=version.version_id,
            owner=version.owner,
            workflow=wf.name,
            owners=owners,
        )
        if refused is not None:
            raise refused.error()
        role = ",".join(owners.roles_of(approver))
        if ApprovalRepo(conn).add(
            version_id=version.version_id,
            env=env,
            workflow=wf.name,
            approver=approver,
            role=role,
            note=note,
        ):
            AuditRepo(conn).append(
                kind="approval.granted",
                actor=approver,
                workflow=wf.name,
                subject=version.version_id,
                payload={
                    "env": env,
                    "role": role,
                    "note": note,
                    **({"os_user": os_user} if os_user is not None else {}),
                    **({"token_id": token_id} if token_id is not None else {}),
                },
            )
    return Approved(version.version_id, env, approver, role)


@retried
def promote(
    store: Store,
    version_ref: str,
    env: str,
    *,
    who: str | None = None,
    pause_after_check: float = 0.0,
) -> Moved:
    """Move ``env`` to the version if, and only if, it earned it. See the module docstring."""
    who = who or default_actor()
    with store.write() as conn:
        version = find_version(conn, version_ref)
        wf = WorkflowRepo(conn).get(version.workflow)
        check_env(wf, env)
        current = EnvironmentRepo(conn).current(wf.name, env, lock=True)
        if current is not None and current[0] == version.version_id:
            return Moved(wf.name, env, version.version_id, version.version_id, "promote", False)
        running = RolloutRepo(conn).active(wf.name, env)
        if running is not None:
            raise RolloutRefusedError(
                f"a rollout of {running.canary_id[:12]} runs in {wf.name}@{env} "
                f"({running.serving}): a promotion would pull the ground from under it",
                hint=f"`releasegate rollout advance|abort {wf.name} --env {env}` first",
            )
        decision, given = promotable(conn, version, wf, env, current)
        seen = current[0] if current else None
        if pause_after_check:  # lets tests hold two promoters inside the critical section
            time.sleep(pause_after_check)
        EnvironmentRepo(conn).move(
            workflow=wf.name, env=env, version_id=version.version_id, expected=current
        )
        EnvironmentRepo(conn).record(
            workflow=wf.name,
            env=env,
            version_id=version.version_id,
            previous_id=seen,
            action="promote",
            actor=who,
            decision_id=decision.decision_id,
            reason=version.reason,
        )
        AuditRepo(conn).append(
            kind="env.promoted",
            actor=who,
            workflow=wf.name,
            subject=version.version_id,
            payload={
                "env": env,
                "previous_id": seen,
                "decision_id": decision.decision_id,
                "approvals": [a.approver for a in given],
            },
        )
    return Moved(wf.name, env, version.version_id, seen, "promote", True)


class Earned(NamedTuple):
    """What entitles a version to an environment: its passing gate decision and the
    approvals on record."""

    decision: DecisionRecord
    given: list[Approval]


def promotable(
    conn: Any,
    version: VersionRecord,
    wf: WorkflowRecord,
    env: str,
    current: tuple[str, int] | None,
) -> Earned:
    """The checks a promotion makes, inside the caller's write transaction (the alias read
    with ``lock=True``): the facts, then ``domain.promotion.refusal`` over them. Raises
    PromotionRefusedError or StaleAliasError naming what is missing. ``rollout`` starts
    and completes a canary through the same checks.
    """
    decision = DecisionRepo(conn).latest(version.version_id, env)
    facts = _facts(conn, version, wf, env, current[0] if current else None, decision)
    refused = refusal(facts)
    if refused is not None:
        raise refused.error()
    if decision is None:  # refusal() always says no without one
        raise RuntimeError("refusal() passed a version without a gate decision")
    return Earned(decision, list(facts.approvals))


def _facts(
    conn: Any,
    version: VersionRecord,
    wf: WorkflowRecord,
    env: str,
    running: str | None,
    decision: DecisionRecord | None,
) -> PromotionFacts:
    """What ``domain.promotion.refusal`` reads, from inside the caller's write transaction;
    ``running`` is what the alias points at now, read (and locked) by the caller."""
    decided = None
    if decision is not None:
        audit = AuditRepo(conn)
        row = Decided(
            version.version_id,
            env,
            decision.verdict,
            decision.suite_id,
            decision.policy_id,
            decision.baseline_id,
            decision.checks_passed,
        )
        decided = DecidedFacts(
            decision_id=decision.decision_id,
            verdict=decision.verdict,
            checks_passed=decision.checks_passed,
            suite_id=decision.suite_id,
            policy_id=decision.policy_id,
            baseline_id=decision.baseline_id,
            change_class=decision.change_class,
            reasons=decision.report.reasons,
            vouched=vouch(
                audit.gate_decided(version.version_id, decision.decision_id), row, audit.keys()
            ),
        )
    return PromotionFacts(
        version_id=version.version_id,
        owner=version.owner,
        workflow=wf.name,
        env=env,
        stakes=wf.stakes,
        owners=Owners.of(wf.owners),
        decision=decided,
        suite_id=SuiteRepo(conn).current_id(wf.name),
        policy=current_policy(conn, wf.name, env),
        running=running,
        approvals=tuple(
            Approval(a, r) for a, r in ApprovalRepo(conn).list(version.version_id, env)
        ),
        data_violations=tuple(
            v.message() for v in version_violations(version.manifest, wf.data_class)
        ),
    )


def record_abort(conn: Any, stopped: Rollout, revision: int, who: str, **extra: Any) -> bool:
    """Write the abort of a rollout last seen at ``revision`` and its ``rollout.aborted``
    audit event, or nothing and False when another writer changed the rollout first.
    Every abort goes through here: ``rollout abort``, ``rollout check`` and a rollback."""
    if not RolloutRepo(conn).save(stopped, expected_revision=revision):
        return False
    AuditRepo(conn).append(
        kind="rollout.aborted",
        actor=who,
        workflow=stopped.workflow,
        subject=stopped.canary_id,
        payload={
            "env": stopped.env,
            "rollout_id": stopped.rollout_id,
            "reason": stopped.reason,
            **extra,
        },
    )
    return True


def _stop_rollout(conn: Any, workflow: str, env: str, who: str, reason: str) -> None:
    """A rollback never waits for a rollout: the one running there is aborted with it."""
    running = RolloutRepo(conn).active(workflow, env)
    if running is None:
        return
    stopped = aborted(running, reason, datetime.now(UTC))
    if not record_abort(conn, stopped, running.revision, who):
        raise StaleAliasError(
            f"the rollout in {workflow}@{env} changed during the rollback", hint="try again"
        )


@retried
def rollback(
    store: Store,
    workflow: str,
    env: str,
    *,
    to: str | None = None,
    who: str | None = None,
    reason: str = "",
) -> Moved:
    """Move ``env`` back to the version that ran before (or ``to``, if it ran there before)."""
    who = who or default_actor()
    with store.write() as conn:
        wf = WorkflowRepo(conn).get(workflow)
        check_env(wf, env)
        current = EnvironmentRepo(conn).current(workflow, env, lock=True)
        if current is None:
            raise RefusedError(f"nothing runs in {workflow}@{env}: there is nothing to roll back")
        history = EnvironmentRepo(conn).history(workflow, env)
        target = _rollback_target(conn, history, current[0], to)
        _stop_rollout(conn, workflow, env, who, f"rolled back {reason}".strip())
        EnvironmentRepo(conn).move(workflow=workflow, env=env, version_id=target, expected=current)
        EnvironmentRepo(conn).record(
            workflow=workflow,
            env=env,
            version_id=target,
            previous_id=current[0],
            action="rollback",
            actor=who,
            decision_id=None,
            reason=reason,
        )
        AuditRepo(conn).append(
            kind="env.rolled_back",
            actor=who,
            workflow=workflow,
            subject=target,
            payload={"env": env, "from": current[0], "reason": reason},
        )
    return Moved(workflow, env, target, current[0], "rollback", True)


def _rollback_target(conn: Any, history: list[HistoryRecord], current: str, to: str | None) -> str:
    promoted = [h.version_id for h in history if h.action == "promote"]
    if to is not None:
        target = find_version(conn, to).version_id
        if target == current:
            raise RefusedError(f"{target[:12]} already runs there")
        if target not in promoted:
            raise RefusedError(
                f"{target[:12]} never passed the gate into this environment",
                hint="roll back only to a version that ran there; "
                "anything else goes through the gate",
            )
        return target
    earlier = step_back(promoted, current)
    if earlier is None:
        raise RefusedError(
            "no earlier approved version ran in this environment", hint="name one with --to VERSION"
        )
    return earlier
