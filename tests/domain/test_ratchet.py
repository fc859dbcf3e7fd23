"""Threshold ratchets and policy-change approval as pure functions over tables of cases."""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from releasegate.domain.policy import Policy
from releasegate.domain.ratchet import (
    STABLE_FOR,
    FloorFacts,
    PolicyProposal,
    apply_floors,
    approval_refusal,
    floor_changes,
    parse_floors,
    proposed_floor,
    ratchets,
)
from releasegate.errors import InputError, RefusedError, SelfApprovalError

AT = datetime(2026, 6, 1, tzinfo=UTC)
PERIOD = timedelta(days=90)
V = "c" * 64


def floor(**changes: Any) -> FloorFacts:
    """accuracy >= 0.70 for 120 days; the running version shows 0.90 (low 0.85), 30 days in."""
    base = FloorFacts(
        workflow="router",
        env="production",
        metric="accuracy",
        floor=0.70,
        since=AT - timedelta(days=120),
        version_id=V,
        serving_since=AT - timedelta(days=30),
        estimate=0.90,
        low=0.85,
        se=0.02,
        n=400,
    )
    return base._replace(**changes)


@pytest.mark.parametrize(
    ("changes", "new"),
    [
        ({}, 0.84),  # min(0.85, 0.90 - 1.96*sqrt(2)*0.02 = 0.8446) -> 0.84
        ({"se": 0.001}, 0.85),  # the interval's own low end binds
        ({"since": AT - timedelta(days=60)}, None),  # the floor is younger than the period
        ({"serving_since": AT - timedelta(days=2)}, None),  # not serving long enough
        ({"serving_since": None}, None),  # never moved there through the loop
        ({"low": 0.69}, None),  # does not beat the floor with its lower bound
        ({"estimate": 0.73, "low": 0.705, "se": 0.005}, None),  # a step under 0.01
        ({"estimate": None, "low": None, "se": None}, None),  # no evidence for the metric
        ({"floor": 0.0, "low": 0.2, "estimate": 0.3, "se": 0.05}, 0.16),
    ],
)
def test_ratchets(changes: dict[str, Any], new: float | None) -> None:
    found = ratchets([floor(**changes)], period=PERIOD, at=AT)
    if new is None:
        assert found == []
        return
    (f,) = found
    assert (f.check, f.subject, f.env) == ("ratchet", "accuracy", "production")
    assert f"--floor accuracy={new:.2f}" in f.fix
    assert f.fix.startswith("releasegate policy propose router --env production ")
    assert f.needs_action and any("lower bound" in e for e in f.evidence)


def test_stable_for_is_a_week() -> None:
    assert timedelta(days=7) == STABLE_FOR
    assert ratchets([floor(serving_since=AT - STABLE_FOR)], period=PERIOD, at=AT)


@pytest.mark.parametrize(
    ("estimate", "low", "se"),
    [(0.9, 0.85, 0.02), (0.5, 0.4, 0.05), (0.999, 0.99, 0.001), (0.3, 0.29, 0.0)],
)
def test_the_proposed_floor_is_never_above_the_lower_bound(
    estimate: float, low: float, se: float
) -> None:
    new = proposed_floor(estimate, low, se)
    assert new <= low and new <= estimate - 1.96 * math.sqrt(2) * se + 1e-12
    assert round(new, 2) == new


def test_the_stated_error_rate_of_a_proposed_floor() -> None:
    """Re-evaluating the running version on a fresh suite of the same size falls below the
    proposed floor at most ~2.5% of the time (simulated binomial accuracy, 400 cases)."""
    rng = np.random.default_rng(7)
    p, n, trials = 0.88, 400, 4000
    below = 0
    for _ in range(trials // 40):
        est = rng.binomial(n, p) / n
        se = math.sqrt(est * (1 - est) / n)
        new = proposed_floor(est, est - 1.96 * se, se)
        again = rng.binomial(n, p, size=40) / n
        below += int((again < new).sum())
    assert below / trials <= 0.035  # 2.5% and the binomial noise of 4,000 draws


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (["accuracy=0.85"], {"accuracy": 0.85}),
        (["accuracy=0.8", "macro_f1=0.7"], {"accuracy": 0.8, "macro_f1": 0.7}),
        ([" accuracy = 1 "], {"accuracy": 1.0}),
    ],
)
def test_parse_floors(items: list[str], expected: dict[str, float]) -> None:
    assert parse_floors(items) == expected


@pytest.mark.parametrize(
    "items", [[], ["accuracy"], ["=0.5"], ["accuracy=high"], ["a=1.5"], ["a=nan"]]
)
def test_bad_floors_are_bad_input(items: list[str]) -> None:
    with pytest.raises(InputError, match="--floor"):
        parse_floors(items)


def test_apply_floors_makes_a_new_policy_and_says_what_changed() -> None:
    before = Policy(workflow="router", env="production", floors={"accuracy": 0.7})
    after = apply_floors(before, {"accuracy": 0.84, "macro_f1": 0.6})
    assert after.policy_id != before.policy_id
    assert after.floors == {"accuracy": 0.84, "macro_f1": 0.6}
    assert floor_changes(before, after) == [
        {"metric": "accuracy", "from": 0.7, "to": 0.84},
        {"metric": "macro_f1", "from": None, "to": 0.6},
    ]
    assert floor_changes(before, apply_floors(before, {"accuracy": 0.7})) == []


PROPOSAL = PolicyProposal(
    "p1", "router", "production", "pol-1", "pol-2", {}, (), "alice", "why", "proposed", None,
    None, AT, None,
)  # fmt: skip


@pytest.mark.parametrize(
    ("who", "facts", "current", "error", "match"),
    [
        ("bob", PROPOSAL, "pol-1", None, None),
        ("alice", PROPOSAL, "pol-1", SelfApprovalError, "nobody approves their own"),
        ("zed", PROPOSAL, "pol-1", RefusedError, "not an approver"),
        ("bob", PROPOSAL, "pol-2", RefusedError, "changed since"),
        (
            "bob",
            dataclasses.replace(PROPOSAL, state="approved"),
            "pol-1",
            RefusedError,
            "already",
        ),
    ],
)
def test_approval_refusal(
    who: str,
    facts: PolicyProposal,
    current: str,
    error: type[Exception] | None,
    match: str | None,
) -> None:
    refused = approval_refusal(facts, who, ("alice", "bob", "carol"), current)
    if error is None:
        assert refused is None
        return
    assert type(refused) is error and match is not None and match in refused.message
