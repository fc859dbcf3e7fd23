"""The promotion rules as a pure function over a table of facts: no store, no I/O."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from releasegate.domain.audit import Vouched
from releasegate.domain.decision import Approval
from releasegate.domain.policy import Policy, Regression
from releasegate.domain.promotion import (
    DecidedFacts,
    Owners,
    PromotionFacts,
    RefusalKind,
    approval_refusal,
    counted_approvals,
    refusal,
)
from releasegate.errors import (
    PromotionRefusedError,
    RefusedError,
    SelfApprovalError,
    StaleAliasError,
)

V, BASE, OTHER = "v" * 64, "b" * 64, "o" * 64
POLICY = Policy(workflow="router", env="production", regressions=(Regression("accuracy", 0.02),))
OWNERS = Owners(approvers=("bob", "carol"), business=("dana",))


def facts(**changes: Any) -> PromotionFacts:
    """A high-stakes wording change, gated against BASE, approved by bob: promotable."""
    decision = DecidedFacts(
        decision_id="d1",
        verdict="pass",
        checks_passed=True,
        suite_id="suite-1",
        policy_id=POLICY.policy_id,
        baseline_id=BASE,
        change_class="wording",
        reasons=("every check passed",),
    )
    decision_changes = changes.pop("decision", {})
    base = PromotionFacts(
        version_id=V,
        owner="alice",
        workflow="router",
        env="production",
        stakes="high",
        owners=OWNERS,
        decision=None
        if decision_changes is None
        else dataclasses.replace(decision, **decision_changes),
        suite_id="suite-1",
        policy=POLICY,
        running=BASE,
        approvals=(Approval("bob", "approver"),),
    )
    return dataclasses.replace(base, **changes)


S = V[:12]
CASES = [
    ("promotable", facts(), None, None, None),
    (
        "no decision",
        facts(decision=None),
        RefusalKind.NO_DECISION,
        f"{S} has no gate decision for production",
        f"run `releasegate gate {S} --env production` first",
    ),
    (
        "decision row forged by SQL",
        facts(decision={"vouched": Vouched.MISSING}),
        RefusalKind.NOT_RECORDED,
        f"gate decision d1 (pass for {S} in production) is not in the audit log: "
        "it was written outside releasegate",
        f"run `releasegate gate {S} --env production`; "
        "`releasegate audit verify` shows what else changed",
    ),
    (
        "decision row edited by SQL",
        facts(decision={"vouched": Vouched.DIFFERS}),
        RefusalKind.NOT_RECORDED,
        f"gate decision d1 (pass for {S} in production) differs from its audit event: "
        "it was changed outside releasegate",
        None,
    ),
    (
        "decision event not signed",
        facts(decision={"vouched": Vouched.UNSIGNED}),
        RefusalKind.NOT_RECORDED,
        f"gate decision d1 (pass for {S} in production) has no audit event signed with a key "
        "here: it was written before the audit log was signed, or outside releasegate",
        None,
    ),
    (
        "gate failed",
        facts(decision={"verdict": "fail", "checks_passed": False, "reasons": ("a", "b", "c")}),
        RefusalKind.NOT_PASSED,
        f"the gate did not pass {S} for production (verdict: fail)",
        "see the gate report: a; b",
    ),
    (
        "gate held",
        facts(decision={"verdict": "hold", "checks_passed": False, "reasons": ("no suite",)}),
        RefusalKind.NOT_PASSED,
        f"the gate did not pass {S} for production (verdict: hold)",
        "see the gate report: no suite",
    ),
    (
        "stale suite",
        facts(suite_id="suite-2"),
        RefusalKind.SUITE_CHANGED,
        f"the suite changed since {S} was gated for production",
        f"evaluate on the current suite, then `releasegate gate {S} --env production`",
    ),
    (
        "stale policy",
        facts(decision={"policy_id": "older-policy"}),
        RefusalKind.POLICY_CHANGED,
        f"the production policy changed since {S} was gated",
        f"run `releasegate gate {S} --env production` again",
    ),
    (
        "moved baseline",
        facts(running=OTHER),
        RefusalKind.BASELINE_MOVED,
        f"router@production moved since the gate compared against {BASE[:12]} (now {OTHER[:12]})",
        f"run `releasegate gate {S} --env production` against what runs now",
    ),
    (
        "something runs now where nothing did",
        facts(decision={"baseline_id": None}),
        RefusalKind.BASELINE_MOVED,
        f"router@production moved since the gate compared against nothing (now {BASE[:12]})",
        None,
    ),
    (
        "no approvals",
        facts(approvals=()),
        RefusalKind.APPROVALS_MISSING,
        f"{S} needs approval for production: missing 1 more named approver(s)",
        f"`releasegate approve {S} --env production --as NAME` "
        "(approvers: bob, carol; business: dana)",
    ),
    (
        "a model change needs the business approver too",
        facts(decision={"change_class": "model"}),
        RefusalKind.APPROVALS_MISSING,
        f"{S} needs approval for production: missing the business approver",
        None,
    ),
    (
        "a model change with both approvers",
        facts(
            decision={"change_class": "model"},
            approvals=(Approval("bob", "approver"), Approval("dana", "business")),
        ),
        None,
        None,
        None,
    ),
    (
        "the owner's own approval does not count",
        facts(owner="bob"),
        RefusalKind.APPROVALS_MISSING,
        f"{S} needs approval for production: missing 1 more named approver(s)",
        None,
    ),
    (
        "an approver who lost the role does not count",
        facts(owners=Owners(approvers=("carol",), business=("dana",))),
        RefusalKind.APPROVALS_MISSING,
        f"{S} needs approval for production: missing 1 more named approver(s)",
        None,
    ),
    (
        "low stakes need no approval",
        facts(stakes="low", approvals=()),
        None,
        None,
        None,
    ),
    (
        "the first release: nothing ran, nothing runs",
        facts(running=None, decision={"baseline_id": None}),
        None,
        None,
        None,
    ),
]


@pytest.mark.parametrize(
    ("facts_", "kind", "message", "hint"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_the_first_failing_rule_is_the_answer(
    facts_: PromotionFacts, kind: RefusalKind | None, message: str | None, hint: str | None
) -> None:
    refused = refusal(facts_)
    if kind is None:
        assert refused is None
        return
    assert refused is not None and refused.kind is kind
    assert refused.message == message
    if hint is not None:
        assert refused.hint == hint


def test_rules_are_checked_in_the_order_users_know() -> None:
    """Everything wrong at once: the missing decision trail wins, then the verdict, ..."""
    everything = facts(
        decision={"vouched": Vouched.MISSING, "checks_passed": False, "policy_id": "x"},
        suite_id="suite-2",
        running=OTHER,
        approvals=(),
    )
    order = []
    while (refused := refusal(everything)) is not None:
        order.append(refused.kind)
        fixed: dict[str, Any] = {
            RefusalKind.NOT_RECORDED: {"decision": {"vouched": Vouched.YES}},
            RefusalKind.NOT_PASSED: {"decision": {"checks_passed": True}},
            RefusalKind.SUITE_CHANGED: {"suite_id": "suite-1"},
            RefusalKind.POLICY_CHANGED: {"decision": {"policy_id": POLICY.policy_id}},
            RefusalKind.BASELINE_MOVED: {"running": BASE},
            RefusalKind.APPROVALS_MISSING: {"approvals": (Approval("bob", "approver"),)},
        }[refused.kind]
        assert everything.decision is not None
        if "decision" in fixed:
            fixed = {"decision": dataclasses.replace(everything.decision, **fixed["decision"])}
        everything = dataclasses.replace(everything, **fixed)
    assert order == [
        RefusalKind.NOT_RECORDED,
        RefusalKind.NOT_PASSED,
        RefusalKind.SUITE_CHANGED,
        RefusalKind.POLICY_CHANGED,
        RefusalKind.BASELINE_MOVED,
        RefusalKind.APPROVALS_MISSING,
    ]


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        (RefusalKind.BASELINE_MOVED, StaleAliasError),
        (RefusalKind.SELF_APPROVAL, SelfApprovalError),
        (RefusalKind.APPROVALS_MISSING, PromotionRefusedError),
        (RefusalKind.NO_DECISION, PromotionRefusedError),
    ],
)
def test_each_refusal_is_the_error_users_already_get(
    kind: RefusalKind, error: type[RefusedError]
) -> None:
    from releasegate.domain.promotion import Refusal

    raised = Refusal(kind, "no", "because").error()
    assert type(raised) is error and raised.hint == "because"


def test_a_role_kept_counts_and_a_role_lost_does_not() -> None:
    both = facts(
        approvals=(Approval("bob", "approver,business"),),
        owners=Owners(approvers=(), business=("bob",)),
    )
    assert counted_approvals(both) == (Approval("bob", "business"),)


@pytest.mark.parametrize(
    ("approver", "kind", "message", "hint"),
    [
        (
            "alice",
            RefusalKind.SELF_APPROVAL,
            f"alice owns {S}: nobody approves their own change",
            "ask one of: bob, carol, dana",
        ),
        (
            "mallory",
            RefusalKind.NOT_AN_APPROVER,
            "mallory is not an approver of workflow 'router'",
            "approvers: bob, carol; business: dana",
        ),
        ("bob", None, None, None),
        ("dana", None, None, None),
    ],
)
def test_who_may_approve(
    approver: str, kind: RefusalKind | None, message: str | None, hint: str | None
) -> None:
    refused = approval_refusal(
        approver, version_id=V, owner="alice", workflow="router", owners=OWNERS
    )
    if kind is None:
        assert refused is None and OWNERS.roles_of(approver)
        return
    assert refused is not None
    assert (refused.kind, refused.message, refused.hint) == (kind, message, hint)


def test_owners_read_from_a_workflow_file_and_the_gate_counts_alike() -> None:
    owners = Owners.of({"change": "alice", "approvers": ["bob"], "business": None})
    assert owners == Owners(approvers=("bob",), business=())
    given = (Approval("alice", "approver"), Approval("bob", "approver,business"))
    assert owners.counted(given, "alice") == (Approval("bob", "approver"),)


def test_nobody_listed_says_none() -> None:
    refused = approval_refusal("eve", version_id=V, owner=None, workflow="w", owners=Owners())
    assert refused is not None and refused.hint == "approvers: none; business: none"
