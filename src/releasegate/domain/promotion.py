"""Whether a version may move into an environment: one pure rule over gathered facts.

A service (``release.promote``, and a rollout's start, which must run the same checks)
reads ``PromotionFacts`` inside its write transaction and calls ``refusal``; None
means go. The checks run in this order, and the first that fails is the answer:
a gate decision exists for this version and environment; its own audit event, signed
with the audit key, says the same (a decision row written by SQL is not one); it cleared
every check; it was taken on the workflow's current suite and current policy; the
alias still points where the gate compared; and the approvals that decision requires
are on record. An approval counts only from someone who is not the version's owner
and who still holds the role it was given in. Approving has its own two rules
(``approval_refusal``): nobody approves their own change, and only the workflow's
approvers and business approvers sign.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from releasegate.domain.audit import Vouched
from releasegate.domain.decision import Approval, approvals_missing
from releasegate.domain.policy import Policy, required_approvals
from releasegate.errors import (
    PromotionRefusedError,
    RefusedError,
    SelfApprovalError,
    StaleAliasError,
)

ROLES = (("approver", "approvers"), ("business", "business"))
"""An approval's role, and the workflow owners' list that grants it."""


class RefusalKind(StrEnum):
    NO_DECISION = "no-decision"
    NOT_RECORDED = "not-recorded"
    NOT_PASSED = "not-passed"
    SUITE_CHANGED = "suite-changed"
    POLICY_CHANGED = "policy-changed"
    BASELINE_MOVED = "baseline-moved"
    APPROVALS_MISSING = "approvals-missing"
    SELF_APPROVAL = "self-approval"
    NOT_AN_APPROVER = "not-an-approver"
    DATA_RULES = "data-rules"


@dataclass(frozen=True)
class Refusal:
    """Why not, and what to do about it; ``error()`` is the exception a front maps."""

    kind: RefusalKind
    message: str
    hint: str

    def error(self) -> RefusedError:
        if self.kind is RefusalKind.BASELINE_MOVED:
            return StaleAliasError(self.message, hint=self.hint)
        if self.kind is RefusalKind.SELF_APPROVAL:
            return SelfApprovalError(self.message, hint=self.hint)
        if self.kind is RefusalKind.NOT_AN_APPROVER:
            return RefusedError(self.message, hint=self.hint)
        return PromotionRefusedError(self.message, hint=self.hint)


@dataclass(frozen=True)
class Owners:
    """Who may sign for a workflow."""

    approvers: tuple[str, ...] = ()
    business: tuple[str, ...] = ()

    @classmethod
    def of(cls, owners: Mapping[str, Any]) -> Owners:
        """From a workflow file's ``owners`` section."""
        return cls(tuple(owners.get("approvers") or ()), tuple(owners.get("business") or ()))

    def roles_of(self, who: str) -> tuple[str, ...]:
        """The roles ``who`` holds, in the order an approval records them."""
        held = {"approvers": self.approvers, "business": self.business}
        return tuple(role for role, key in ROLES if who in held[key])

    def counted(self, approvals: Sequence[Approval], owner: str | None) -> tuple[Approval, ...]:
        """The approvals that count: not the owner's, in roles the approver still holds."""
        counted = []
        for a in approvals:
            if a.approver == owner:
                continue
            held = self.roles_of(a.approver)
            roles = [r for r in a.role.split(",") if r in held]
            if roles:
                counted.append(Approval(a.approver, ",".join(roles)))
        return tuple(counted)


@dataclass(frozen=True)
class DecidedFacts:
    """The version's latest gate decision for the environment, as promote relies on it.

    ``vouched`` is whether its own ``gate.decided`` event, signed with the audit key,
    records the same verdict, suite, policy and baseline (``domain.audit.vouch``).
    """

    decision_id: str
    verdict: str
    checks_passed: bool
    suite_id: str
    policy_id: str
    baseline_id: str | None
    change_class: str | None
    reasons: tuple[str, ...] = ()
    vouched: Vouched = Vouched.YES


@dataclass(frozen=True)
class PromotionFacts:
    """Everything the rule reads, gathered in the same transaction as the move."""

    version_id: str
    owner: str | None
    workflow: str
    env: str
    stakes: str
    owners: Owners
    decision: DecidedFacts | None
    suite_id: str | None  # the workflow's current suite
    policy: Policy  # the environment's current policy
    running: str | None  # what the alias points at now
    approvals: tuple[Approval, ...] = ()
    data_violations: tuple[str, ...] = ()  # under the data rules in force now, worded


_UNVOUCHED = {
    Vouched.MISSING: "is not in the audit log: it was written outside releasegate",
    Vouched.DIFFERS: "differs from its audit event: it was changed outside releasegate",
    Vouched.UNSIGNED: "has no audit event signed with a key here: it was written before "
    "the audit log was signed, or outside releasegate",
}


def counted_approvals(f: PromotionFacts) -> tuple[Approval, ...]:
    """The approvals on record that count (``Owners.counted``)."""
    return f.owners.counted(f.approvals, f.owner)


def refusal(f: PromotionFacts) -> Refusal | None:
    """The first reason ``f.version_id`` may not move into ``f.env``, or None (module doc)."""
    short, env, d = f.version_id[:12], f.env, f.decision
    gate_again = f"run `releasegate gate {short} --env {env}`"
    if d is None:
        return Refusal(
            RefusalKind.NO_DECISION,
            f"{short} has no gate decision for {env}",
            f"{gate_again} first",
        )
    if d.vouched is not Vouched.YES:
        return Refusal(
            RefusalKind.NOT_RECORDED,
            f"gate decision {d.decision_id} ({d.verdict} for {short} in {env}) "
            + _UNVOUCHED[d.vouched],
            f"{gate_again}; `releasegate audit verify` shows what else changed",
        )
    if not d.checks_passed:
        return Refusal(
            RefusalKind.NOT_PASSED,
            f"the gate did not pass {short} for {env} (verdict: {d.verdict})",
            "see the gate report: " + "; ".join(d.reasons[:2]),
        )
    if f.data_violations:  # the rules tightened since the gate passed it
        return Refusal(
            RefusalKind.DATA_RULES,
            f"{short} breaks the data rules in force now: " + "; ".join(f.data_violations),
            "move the model to a runtime the rule allows and register the change "
            "(see docs/data-rules.md)",
        )
    if d.suite_id != f.suite_id:
        return Refusal(
            RefusalKind.SUITE_CHANGED,
            f"the suite changed since {short} was gated for {env}",
            f"evaluate on the current suite, then `releasegate gate {short} --env {env}`",
        )
    if d.policy_id != f.policy.policy_id:
        return Refusal(
            RefusalKind.POLICY_CHANGED,
            f"the {env} policy changed since {short} was gated",
            f"{gate_again} again",
        )
    if d.baseline_id != f.running:
        return Refusal(
            RefusalKind.BASELINE_MOVED,
            f"{f.workflow}@{env} moved since the gate compared against "
            f"{(d.baseline_id or 'nothing')[:12]} (now {(f.running or 'nothing')[:12]})",
            f"{gate_again} against what runs now",
        )
    need = required_approvals(f.policy, f.stakes, d.change_class)
    missing = approvals_missing(need, counted_approvals(f))
    if missing:
        return Refusal(
            RefusalKind.APPROVALS_MISSING,
            f"{short} needs approval for {env}: missing " + " and ".join(missing),
            f"`releasegate approve {short} --env {env} --as NAME` "
            f"(approvers: {', '.join(f.owners.approvers)}; "
            f"business: {', '.join(f.owners.business)})",
        )
    return None


def approval_refusal(
    approver: str, *, version_id: str, owner: str | None, workflow: str, owners: Owners
) -> Refusal | None:
    """Why ``approver`` may not sign ``version_id``, or None: they sign in ``owners.roles_of``."""
    if approver == owner:
        others = [a for a in (*owners.approvers, *owners.business) if a != approver]
        return Refusal(
            RefusalKind.SELF_APPROVAL,
            f"{approver} owns {version_id[:12]}: nobody approves their own change",
            "ask one of: " + ", ".join(others),
        )
    if not owners.roles_of(approver):
        return Refusal(
            RefusalKind.NOT_AN_APPROVER,
            f"{approver} is not an approver of workflow '{workflow}'",
            "approvers: "
            + ", ".join(owners.approvers or ["none"])
            + "; business: "
            + ", ".join(owners.business or ["none"]),
        )
    return None


def step_back(promoted: Sequence[str], current: str) -> str | None:
    """The version ``rollback`` moves an environment to when none is named: the one
    promoted there before ``current``, each version counted at its latest promotion
    (``promoted`` in promotion order); None when nothing earlier ran there."""
    order: list[str] = []
    for vid in promoted:
        if vid in order:
            order.remove(vid)
        order.append(vid)
    earlier = order[: order.index(current)] if current in order else order
    return earlier[-1] if earlier else None
