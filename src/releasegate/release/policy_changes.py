"""Policy changes through review: propose a floor, approve it, show the history.

``propose`` writes the environment's current policy with the new floors as a proposal
(``policy.proposed`` in the audit log); nothing the gate reads changes yet. ``approve``
(one of the workflow's approvers, never the proposer) makes the proposed policy the
environment's current one in the same transaction as the proposal's state and two
audit events, ``policy.approved`` and ``policy.changed`` (the kind ``register`` writes
when a workflow file's policy changes, with the proposal and its approver added).
Every gate from then on reads it (``release.gate.current_policy``). A proposal whose
base policy is no longer current is refused: it would silently undo the other change.

The workflow file still holds its own floors: the next ``register`` of a file whose
policy differs makes the file's policy current again (audited as ``policy.changed``),
so an approved change is also written into the file; ``show`` prints the lines.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from releasegate.domain.identity import content_hash
from releasegate.domain.policy import Policy, default_policy, policy_from_content
from releasegate.domain.promotion import Owners
from releasegate.domain.ratchet import (
    APPROVED,
    PROPOSED,
    PolicyProposal,
    apply_floors,
    approval_refusal,
    floor_changes,
)
from releasegate.errors import InputError, NotFoundError, RefusedError
from releasegate.release.refs import MIN_PREFIX, check_env
from releasegate.release.refs import actor as default_actor
from releasegate.store.audit import AuditRepo
from releasegate.store.engine import Conn, Store
from releasegate.store.environments import EnvironmentRepo
from releasegate.store.evals import EvalRepo
from releasegate.store.policies import PolicyRepo
from releasegate.store.proposals import ProposalRepo
from releasegate.store.workflows import WorkflowRepo

MAX_REASON = 2000


@dataclass(frozen=True)
class PolicyState:
    """An environment's current policy, its stored history and its proposals."""

    workflow: str
    env: str
    policy_id: str
    content: dict[str, Any]
    is_default: bool
    history: tuple[dict[str, Any], ...]
    proposals: tuple[PolicyProposal, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "workflow": self.workflow,
            "env": self.env,
            "policy_id": self.policy_id,
            "is_default": self.is_default,
            "policy": self.content,
            "history": list(self.history),
            "proposals": [p.as_dict() for p in self.proposals],
        }


def _current(conn: Conn, workflow: str, env: str) -> tuple[Policy, bool]:
    found = PolicyRepo(conn).current(workflow, env)
    if found is None:
        return default_policy(workflow, env), True
    return policy_from_content(found.content), False


def _check_metrics(
    conn: Conn, workflow: str, env: str, floors: Mapping[str, float], before: Policy
) -> None:
    """A new floor names a metric the evals of what runs there measured: a typo would
    fail every gate after the approval. Nothing runs there yet, or no eval: not checked."""
    alias = EnvironmentRepo(conn).current(workflow, env)
    if alias is None:
        return
    known = {
        m
        for e in EvalRepo(conn).for_version(alias.version_id)
        for m in e.summary.get("metrics") or {}
    }
    unknown = sorted(m for m in floors if m not in before.floors and m not in known)
    if known and unknown:
        raise InputError(
            f"no metric '{unknown[0]}' in the evals of {alias.version_id[:12]}, which runs in "
            f"{workflow}@{env}: a floor on it would fail every gate",
            field="--floor",
            hint=f"metrics: {', '.join(sorted(known))}",
        )


def propose(
    store: Store,
    workflow: str,
    env: str,
    floors: dict[str, float],
    *,
    reason: str,
    who: str | None = None,
) -> PolicyProposal:
    """Propose the current policy of ``workflow@env`` with ``floors`` set (module doc)."""
    who = who or default_actor()
    reason = reason.strip()
    if not reason:
        raise InputError("a policy change needs a reason: its approver reads it", field="--reason")
    if len(reason) > MAX_REASON:
        raise InputError(f"the reason is over {MAX_REASON} characters", field="--reason")
    with store.write() as conn:
        check_env(WorkflowRepo(conn).get(workflow), env)
        before, _ = _current(conn, workflow, env)
        _check_metrics(conn, workflow, env, floors, before)
        after = apply_floors(before, floors)
        changes = floor_changes(before, after)
        if not changes:
            raise RefusedError(
                f"the {env} policy of {workflow} already has these floors: nothing to propose",
                hint=f"`releasegate policy show {workflow} --env {env}`",
            )
        for waiting in ProposalRepo(conn).list(workflow, env):
            if waiting.state == PROPOSED and waiting.policy_id == after.policy_id:
                raise RefusedError(
                    f"proposal {waiting.proposal_id} (by {waiting.proposer}) already proposes "
                    f"this change to the {env} policy of {workflow}: nothing new to propose",
                    hint=f"`releasegate policy approve {waiting.proposal_id} --as APPROVER`",
                )
        proposal = PolicyProposal(
            proposal_id=uuid.uuid4().hex[:16],
            workflow=workflow,
            env=env,
            base_policy_id=before.policy_id,
            policy_id=after.policy_id,
            content=after.content(),
            changes=tuple(changes),
            proposer=who,
            reason=reason,
            state=PROPOSED,
            approver=None,
            note=None,
            created_at=datetime.now(UTC),
            decided_at=None,
        )
        ProposalRepo(conn).add(proposal)
        AuditRepo(conn).append(
            kind="policy.proposed",
            actor=who,
            workflow=workflow,
            subject=proposal.proposal_id,
            payload={
                "env": env,
                "base_policy_id": before.policy_id,
                "policy_id": after.policy_id,
                "changes": changes,
                "reason": reason,
            },
        )
    return proposal


def approve(store: Store, proposal_ref: str, *, who: str, note: str = "") -> PolicyProposal:
    """Approve a proposal: its policy becomes current, audited (module doc)."""
    if not who.strip():
        raise InputError("name the approver", field="--as")
    with store.write() as conn:
        proposal = _find(conn, proposal_ref)
        owners = Owners.of(WorkflowRepo(conn).get(proposal.workflow).owners)
        current = PolicyRepo(conn).current(proposal.workflow, proposal.env)
        current_id = (
            current.policy_id
            if current is not None
            else default_policy(proposal.workflow, proposal.env).policy_id
        )
        refused = approval_refusal(proposal, who, owners.approvers, current_id)
        if refused is not None:
            raise refused
        if not ProposalRepo(conn).decide(
            proposal.proposal_id, state=APPROVED, approver=who, note=note
        ):
            raise RefusedError(
                f"proposal {proposal.proposal_id} was decided by someone else just now",
                hint=f"`releasegate policy show {proposal.workflow} --env {proposal.env}`",
            )
        AuditRepo(conn).append(
            kind="policy.approved",
            actor=who,
            workflow=proposal.workflow,
            subject=proposal.proposal_id,
            payload={
                "env": proposal.env,
                "policy_id": proposal.policy_id,
                "proposer": proposal.proposer,
                "note": note,
            },
        )
        made = change_policy(
            conn,
            proposal.workflow,
            proposal.env,
            proposal.content,
            previous=current_id,
            who=who,
            proposal_id=proposal.proposal_id,
            proposed_by=proposal.proposer,
            approved_by=who,
        )
        assert made == proposal.policy_id, "a proposal's content hashes to its policy id"
        done = ProposalRepo(conn).get(proposal.proposal_id)
    assert done is not None
    return done


def change_policy(
    conn: Conn,
    workflow: str,
    env: str,
    content: Mapping[str, Any],
    *,
    previous: str | None,
    who: str,
    **extra: str,
) -> str:
    """Make ``content`` the current policy of ``workflow@env``, audited as ``policy.changed``
    (``register`` for a workflow file's policy, ``approve`` for a proposal: ``extra`` says
    which proposal and who approved it); its id."""
    policy_id = content_hash(content)
    PolicyRepo(conn).add(policy_id=policy_id, workflow=workflow, env=env, content=content)
    AuditRepo(conn).append(
        kind="policy.changed",
        actor=who,
        workflow=workflow,
        subject=policy_id,
        payload={
            "env": env,
            "policy_id": policy_id,
            "previous": previous,
            "policy": dict(content),
            **extra,
        },
    )
    return policy_id


def approved_over_file(conn: Conn, workflow: str, policies: Mapping[str, Policy]) -> dict[str, str]:
    """The environments whose workflow-file policy is one that approved proposals have
    since replaced (the file was not updated), each with what to tell the person who
    registers it: ``register`` keeps the approved policy there instead of undoing it."""
    out = {}
    for env, policy in sorted(policies.items()):
        current = PolicyRepo(conn).current(workflow, env)
        if current is None or current.policy_id == policy.policy_id:
            continue
        seen = {current.policy_id}
        p = ProposalRepo(conn).approved_into(workflow, env, current.policy_id)
        while p is not None and p.base_policy_id != policy.policy_id:
            if p.base_policy_id in seen:
                p = None
                break
            seen.add(p.base_policy_id)
            p = ProposalRepo(conn).approved_into(workflow, env, p.base_policy_id)
        if p is not None:
            out[env] = (
                f"the file's {env} policy is the one policy proposal {p.proposal_id} "
                f"replaced (approved by {p.approver}): the approved policy "
                f"{current.policy_id[:12]} stays; write its floors into the file "
                f"(`releasegate policy show {workflow} --env {env}`)"
            )
    return out


def show(store: Store, workflow: str, env: str | None = None) -> list[PolicyState]:
    """Each environment's current policy (or one's), its history and its proposals."""
    with store.read() as conn:
        wf = WorkflowRepo(conn).get(workflow)
        if env is not None:
            check_env(wf, env)
        envs = (env,) if env is not None else wf.environments
        histories = PolicyRepo(conn).history(workflow, env)
        proposals = ProposalRepo(conn).list(workflow, env)
        out = []
        for e in envs:
            rows = histories.get((workflow, e), [])
            policy = policy_from_content(rows[-1].content) if rows else default_policy(workflow, e)
            out.append(
                PolicyState(
                    workflow,
                    e,
                    policy.policy_id,
                    policy.content(),
                    not rows,
                    tuple(
                        {
                            "seq": r.seq,
                            "policy_id": r.policy_id,
                            "floors": dict(r.content.get("floors") or {}),
                            "created_at": r.created_at.isoformat(),
                        }
                        for r in rows
                    ),
                    tuple(p for p in proposals if p.env == e),
                )
            )
    return out


def _find(conn: Conn, ref: str) -> PolicyProposal:
    ref = ref.strip()
    found = ProposalRepo(conn).get(ref)
    if found is not None:
        return found
    if len(ref) >= MIN_PREFIX:
        ids = ProposalRepo(conn).by_prefix(ref)
        if len(ids) == 1:
            got = ProposalRepo(conn).get(ids[0])
            assert got is not None
            return got
        if len(ids) > 1:
            raise InputError(
                f"'{ref}' names {len(ids)} proposals: give more of its id",
                field="PROPOSAL",
            )
    short = f" (give at least {MIN_PREFIX} characters of its id)" if len(ref) < MIN_PREFIX else ""
    raise NotFoundError(
        f"no policy proposal '{ref}'{short}",
        field="PROPOSAL",
        hint="`releasegate policy show WORKFLOW` lists them",
    )
