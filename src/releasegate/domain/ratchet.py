"""Threshold ratchets and policy changes: floors follow what the running version shows.

A floor set long ago and never raised lets a workflow slide back to it unnoticed. When
a floor has stood unchanged for longer than the review period and the version running
in the environment stably beats it, ``ratchets`` proposes a new floor no higher than
the lower confidence bound of that version's score:

    new floor = round down to 0.01 of  min(low, estimate - z * sqrt(2) * se)

where ``low`` is the gate's 95% interval's lower end and z = 1.96. Error rate: the
current version itself, evaluated again on a fresh suite of the same size, scores below
the new floor at most ~2.5% of the time (its two estimates differ by sqrt(2) * se; the
normal approximation); on the same suite, whose outputs are cached, never. "Stably"
means the decision that admitted it showed the floor beaten with its lower bound
(``low > floor``), and it has served the environment for at least ``STABLE_FOR``
without being moved. A step below ``MIN_STEP`` is not proposed.

A proposal is a policy change like any other: ``apply_floors`` writes the new floors
into the current policy (a new, content-hashed policy id), ``approval_refusal`` says
who may approve it (a workflow approver who is not the proposer), and the service
records the proposal, the approval and the change in the audit log.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from releasegate.domain.policy import Policy
from releasegate.domain.review import Finding
from releasegate.errors import InputError, RefusedError, SelfApprovalError

Z = 1.96
STABLE_FOR = timedelta(days=7)
MIN_STEP = 0.01


class FloorFacts(NamedTuple):
    """One floor of an environment's current policy, how long it has stood, and what the
    version running there showed in the decision that admitted it."""

    workflow: str
    env: str
    metric: str
    floor: float
    since: datetime
    """When the policy first had this floor (unchanged in every policy since)."""
    version_id: str
    serving_since: datetime | None
    estimate: float | None
    low: float | None
    se: float | None
    n: int | None


def proposed_floor(estimate: float, low: float, se: float) -> float:
    """The highest floor the rule proposes (module doc): never above ``low``."""
    bound = min(low, estimate - Z * math.sqrt(2.0) * se)
    return math.floor(round(bound * 100, 6)) / 100


def ratchets(floors: Iterable[FloorFacts], *, period: timedelta, at: datetime) -> list[Finding]:
    out = []
    for f in floors:
        if f.estimate is None or f.low is None or f.se is None or f.serving_since is None:
            continue
        if at - f.since <= period or at - f.serving_since < STABLE_FOR or f.low <= f.floor:
            continue
        new = proposed_floor(f.estimate, f.low, f.se)
        if new < f.floor + MIN_STEP - 1e-9:
            continue
        days = (at - f.since).days
        out.append(
            Finding(
                "ratchet",
                f.workflow,
                f.env,
                f.metric,
                f"the {f.metric} floor of {f.workflow}@{f.env} ({f.floor:g}) has stood "
                f"{days} days while {f.version_id[:12]} stably beats it: raise it to {new:.2f}",
                f"releasegate policy propose {f.workflow} --env {f.env} "
                f"--floor {f.metric}={new:.2f} --reason 'ratchet: {f.version_id[:12]} shows "
                f"{f.estimate:.3f} (95% lower bound {f.low:.3f}, n={f.n})'",
                (
                    f"floor {f.metric} >= {f.floor:g} unchanged since {f.since:%Y-%m-%d}",
                    f"{f.version_id[:12]} serves since {f.serving_since:%Y-%m-%d}: "
                    f"{f.metric} {f.estimate:.3f}, 95% interval lower end {f.low:.3f} "
                    f"(se {f.se:.3f}, n={f.n})",
                    f"proposed {new:.2f} <= lower bound; a fresh suite of the same size "
                    "would put this version under it at most ~2.5% of the time",
                ),
            )
        )
    return out


# -- policy changes ------------------------------------------------------------------------


def parse_floors(items: Iterable[str]) -> dict[str, float]:
    """``--floor accuracy=0.85`` (repeatable) into {metric: floor}; each in [0, 1]."""
    out: dict[str, float] = {}
    for item in items:
        metric, sep, raw = item.partition("=")
        metric = metric.strip()
        if not sep or not metric:
            raise InputError(f"'{item}' is not METRIC=VALUE", field="--floor")
        try:
            value = float(raw)
        except ValueError:
            raise InputError(f"'{raw}' is not a number in '{item}'", field="--floor") from None
        if not 0.0 <= value <= 1.0 or math.isnan(value):
            raise InputError(f"{metric}: a floor is between 0 and 1, got {raw}", field="--floor")
        out[metric] = value
    if not out:
        raise InputError("name at least one floor: --floor METRIC=VALUE", field="--floor")
    return out


def apply_floors(policy: Policy, floors: Mapping[str, float]) -> Policy:
    """``policy`` with these floors set (others kept): a new policy, with a new id."""
    return replace(policy, floors={**policy.floors, **floors})


def floor_changes(before: Policy, after: Policy) -> list[dict[str, Any]]:
    """What a change does to the floors, metric by metric (old None: a new floor)."""
    return [
        {"metric": m, "from": before.floors.get(m), "to": after.floors[m]}
        for m in sorted(after.floors)
        if before.floors.get(m) != after.floors[m]
    ]


PROPOSED = "proposed"
APPROVED = "approved"


@dataclass(frozen=True)
class PolicyProposal:
    """A policy change waiting for (or given) its approval: the policy it changes
    (``base_policy_id``), the policy it makes (``content``, ``policy_id``), who proposed
    it and why, and who approved it."""

    proposal_id: str
    workflow: str
    env: str
    base_policy_id: str
    policy_id: str
    content: Mapping[str, Any]
    changes: Sequence[Mapping[str, Any]]
    proposer: str
    reason: str
    state: str
    approver: str | None
    note: str | None
    created_at: datetime
    decided_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        """What ``policy propose|approve|show --json`` print of a proposal."""
        return {
            "proposal_id": self.proposal_id,
            "workflow": self.workflow,
            "env": self.env,
            "base_policy_id": self.base_policy_id,
            "policy_id": self.policy_id,
            "changes": [dict(c) for c in self.changes],
            "proposer": self.proposer,
            "reason": self.reason,
            "state": self.state,
            "approver": self.approver,
            "note": self.note,
            "created_at": self.created_at.isoformat(),
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
        }


def approval_refusal(
    p: PolicyProposal, approver: str, approvers: Iterable[str], current_policy_id: str
) -> RefusedError | None:
    """Why ``approver`` may not approve proposal ``p`` now, or None: a proposal is
    approved once, by one of the workflow's approvers who is not its proposer, while
    the policy it changes is still the current one."""
    if p.state != PROPOSED:
        return RefusedError(
            f"proposal {p.proposal_id} is already {p.state}",
            hint=f"`releasegate policy show {p.workflow} --env {p.env}` shows it",
        )
    names = tuple(approvers)
    if approver == p.proposer:
        others = [a for a in names if a != approver]
        return SelfApprovalError(
            f"{approver} proposed {p.proposal_id}: nobody approves their own policy change",
            hint="ask one of: " + (", ".join(others) or "(no other approvers: add one)"),
        )
    if approver not in names:
        return RefusedError(
            f"{approver} is not an approver of workflow '{p.workflow}'",
            hint="approvers: " + (", ".join(names) or "none"),
        )
    if p.base_policy_id != current_policy_id:
        return RefusedError(
            f"the {p.env} policy of {p.workflow} changed since {p.proposal_id} was proposed "
            f"(from {p.base_policy_id[:12]}, now {current_policy_id[:12]})",
            hint=f"propose again on the current policy: `releasegate policy propose "
            f"{p.workflow} --env {p.env} --floor METRIC=VALUE`",
        )
    return None
