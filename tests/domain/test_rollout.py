"""Progressive rollout, without I/O: the policy's ramp, sticky assignment, states, the check."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from releasegate.domain.document import Fields
from releasegate.domain.policy import Policy, parse_policy, policy_from_content
from releasegate.domain.rollout import (
    ArmRuns,
    Evidence,
    Rollout,
    RolloutPolicy,
    Splitter,
    aborted,
    advanced,
    arm_for,
    assess,
    begin,
    key_share,
    observe_runs,
    parse_steps_flag,
    ramp,
    reference,
)
from releasegate.errors import InputError, PolicyError, RolloutRefusedError
from releasegate.release.loaders import parse_yaml

SOURCE = "support-triage.yaml"
HEAD = "workflow: support-triage\nstakes: high\npolicy:\n  production:\n    rollout:\n"
T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
STABLE, CANARY = "a" * 64, "b" * 64


def parse(body: str) -> Policy:
    doc = parse_yaml(HEAD + body, SOURCE, PolicyError)
    fields = Fields(doc, PolicyError, ("policy", "production"))
    return parse_policy(fields, workflow="support-triage", env="production")


def error_of(body: str) -> str:
    with pytest.raises(PolicyError) as err:
        parse(body)
    return str(err.value)


def test_the_rollout_section_is_read_and_identifies_the_policy() -> None:
    policy = parse(
        "      steps: [10, 50, 100]\n      min_runs_per_step: 500\n      max_step_hours: 6\n"
        "      auto_advance: true\n      signals: {error_rate: 0.01, latency_p95: 0.05}\n"
    )
    assert policy.rollout == RolloutPolicy(
        steps=(10.0, 50.0, 100.0),
        min_runs_per_step=500,
        max_step_hours=6.0,
        auto_advance=True,
        signals={"error_rate": 0.01, "latency_p95": 0.05},
    )
    assert policy_from_content(policy.content()) == policy
    without = Policy(workflow="support-triage", env="production")
    assert "rollout" not in without.content()  # older policy ids hold
    assert without.policy_id != policy.policy_id


def test_a_list_of_signals_takes_their_default_margins() -> None:
    rollout = parse("      signals: [error_rate, edit_rate]\n").rollout
    assert rollout is not None
    assert rollout.signals == {"error_rate": 0.02, "edit_rate": 0.02}
    assert rollout.steps == (5.0, 25.0, 50.0, 100.0)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            "      steps: [5, 50, 25, 100]\n",
            "support-triage.yaml:6: field 'policy.production.rollout.steps[2]': "
            "steps must increase strictly: 25 comes after 50",
            id="not increasing",
        ),
        pytest.param(
            "      steps: [5, 50, 150]\n",
            "support-triage.yaml:6: field 'policy.production.rollout.steps[2]': "
            "must be within (0, 100], got 150",
            id="over 100",
        ),
        pytest.param(
            "      steps: [5, 50]\n",
            "support-triage.yaml:6: field 'policy.production.rollout.steps[1]': "
            "the last step must be 100 (the whole traffic), got 50",
            id="last below 100",
        ),
        pytest.param(
            "      steps: [0, 100]\n",
            "support-triage.yaml:6: field 'policy.production.rollout.steps[0]': "
            "must be within (0, 100], got 0",
            id="zero",
        ),
        pytest.param(
            "      signals: [error_rate, eror_rate]\n",
            "support-triage.yaml:6: field 'policy.production.rollout.signals[1]': "
            "unknown signal 'eror_rate'",
            id="unknown signal",
        ),
        pytest.param(
            "      signals: [input_drift]\n",
            "support-triage.yaml:6: field 'policy.production.rollout.signals[0]': "
            "'input_drift' is a monitor signal, but not one a canary is compared on",
            id="signal not compared",
        ),
        pytest.param(
            "      min_runs_per_step: 0\n",
            "support-triage.yaml:6: field 'policy.production.rollout.min_runs_per_step': "
            "must be at least 1, got 0",
            id="no runs per step",
        ),
        pytest.param(
            "      max_step_hours: -1\n",
            "support-triage.yaml:6: field 'policy.production.rollout.max_step_hours': "
            "must be a positive number of hours, got -1.0",
            id="negative hours",
        ),
        pytest.param(
            "      ramp: [5, 100]\n",
            "support-triage.yaml:6: field 'policy.production.rollout.ramp': unknown field 'ramp'",
            id="unknown field",
        ),
    ],
)
def test_bad_rollout_sections_name_file_line_and_field(body: str, expected: str) -> None:
    assert error_of(body).startswith(expected)


def test_steps_from_the_command_line() -> None:
    assert parse_steps_flag("5,25,50,100") == (5.0, 25.0, 50.0, 100.0)
    with pytest.raises(InputError, match=r"--steps: steps must increase strictly: 10 comes"):
        parse_steps_flag("5,50,10,100")
    with pytest.raises(InputError, match="expected percentages separated by commas"):
        parse_steps_flag("5;25")
    assert ramp((5, 25, 50, 100), 10) == (10.0, 25.0, 50.0, 100.0)
    assert ramp((5, 25, 50, 100), None) == (5.0, 25.0, 50.0, 100.0)
    with pytest.raises(InputError, match="--canary: expected a percentage above 0 and below 100"):
        ramp((5, 100), 100)


# -- assignment ------------------------------------------------------------------------------


def test_assignment_is_sticky_and_the_same_through_the_fast_path() -> None:
    rid = "r" * 32
    keys = [f"user-{i}" for i in range(2000)]
    fast = Splitter(rid, 25.0)
    for key in keys:
        assert arm_for(key, rid, 25.0) == arm_for(key, rid, 25.0)
        assert fast.is_canary(key) == (arm_for(key, rid, 25.0) == "canary")
        assert 0.0 <= key_share(key, rid) < 1.0
    # a key on the canary at 5% stays on it as the ramp grows
    early = {k for k in keys if arm_for(k, rid, 5.0) == "canary"}
    later = {k for k in keys if arm_for(k, rid, 25.0) == "canary"}
    assert early and early <= later
    # another rollout draws other keys
    other = {k for k in keys if arm_for(k, "s" * 32, 25.0) == "canary"}
    assert other != later


@pytest.mark.parametrize("weight", [5.0, 25.0, 50.0])
def test_the_canary_share_over_100k_keys_is_the_weight(weight: float) -> None:
    n, p = 100_000, weight / 100
    split = Splitter("0123456789abcdef0123456789abcdef", weight)
    hits = sum(split.is_canary(f"customer:{i}") for i in range(n))
    tolerance = 4.5 * math.sqrt(n * p * (1 - p))  # binomial, ~1e-5 two-sided
    assert abs(hits - n * p) <= tolerance, (hits, n * p, tolerance)
    assert Splitter("x", 100.0).is_canary("anyone")
    assert not Splitter("x", 0.0).is_canary("anyone")


def test_requests_without_a_key_draw_at_the_weight() -> None:
    split = Splitter("r", 25.0)
    hits = sum(split.is_canary(None) for _ in range(40_000))
    assert abs(hits - 10_000) <= 4.5 * math.sqrt(40_000 * 0.25 * 0.75)


# -- the state machine -----------------------------------------------------------------------


def started(policy: RolloutPolicy | None = None, at: datetime = T0) -> Rollout:
    return begin(
        rollout_id="r1",
        workflow="support-triage",
        env="production",
        stable_id=STABLE,
        canary_id=CANARY,
        policy=policy or RolloutPolicy(steps=(5, 25, 100)),
        at=at,
        actor="alice",
        evidence=Evidence(),
    )


def test_a_rollout_ramps_step_by_step_and_completes_into_100() -> None:
    r = started()
    assert (r.state, r.weight, r.next_weight) == ("running", 5.0, 25.0)
    r = advanced(r, T0 + timedelta(hours=1))
    assert (r.state, r.weight, r.step_started_at) == ("running", 25.0, T0 + timedelta(hours=1))
    r = advanced(r, T0 + timedelta(hours=2))
    assert (r.state, r.weight) == ("completed", 100.0)
    with pytest.raises(RolloutRefusedError, match="was completed: it cannot advance"):
        advanced(r, T0)


def test_advance_after_an_abort_is_refused() -> None:
    r = aborted(started(), "error_rate worse", T0)
    assert (r.state, r.weight) == ("aborted", 0.0)
    with pytest.raises(RolloutRefusedError, match=r"was aborted \(error_rate worse\): it cannot"):
        advanced(r, T0)
    with pytest.raises(RolloutRefusedError, match="cannot be aborted"):
        aborted(r, "again", T0)


def test_a_rollout_of_what_already_runs_is_refused() -> None:
    with pytest.raises(RolloutRefusedError, match="nothing to roll out"):
        begin(
            rollout_id="r",
            workflow="w",
            env="e",
            stable_id=STABLE,
            canary_id=STABLE,
            policy=RolloutPolicy(),
            at=T0,
            actor="a",
            evidence=Evidence(),
        )


# -- the check -------------------------------------------------------------------------------


def batch(
    rng: np.random.Generator, n: int, weight: float, p_stable: float, p_canary: float, cursor: int
) -> ArmRuns:
    is_canary = rng.random(n) < weight / 100
    error = np.where(is_canary, rng.random(n) < p_canary, rng.random(n) < p_stable)
    latency = rng.gamma(4.0, 100.0, n)
    return ArmRuns(
        arms=["canary" if c else "stable" for c in is_canary],
        error=error.astype(np.float64),
        escalated=np.zeros(n),
        edited=np.zeros(n),
        feedback=np.full(n, np.nan),
        latency_ms=latency,
        cost_usd=np.full(n, 0.002) + rng.random(n) * 0.001,
        cursor=cursor + n,
    )


def drive(
    seed: int, p_stable: float, p_canary: float, *, every: int = 100, max_runs: int = 60_000
) -> tuple[str, int, int]:
    """Check every ``every`` runs, advancing when eligible: (how it ended, step, runs)."""
    rng = np.random.default_rng(seed)
    policy = RolloutPolicy(
        steps=(5, 25, 50, 100),
        min_runs_per_step=200,
        max_step_hours=None,
        signals={"error_rate": 0.02, "latency_p95": 0.05, "cost_per_task": 0.10},
    )
    before = batch(rng, 2000, 0.0, p_stable, p_stable, 0)
    r = started(policy)
    r = Rollout(**{**r.__dict__, "evidence": reference(before.latency_ms, before.cost_usd)})
    seen = 0
    while seen < max_runs:
        runs = batch(rng, every, r.weight, p_stable, p_canary, seen)
        seen += every
        r = Rollout(**{**r.__dict__, "evidence": observe_runs(r.evidence, policy, runs)})
        outcome = assess(r, now=T0)
        if outcome.action == "abort":
            return "aborted", r.step, seen
        if outcome.action == "advance":
            r = advanced(r, T0)
            if r.state == "completed":
                return "completed", r.step, seen
    return "running", r.step, seen


def test_a_canary_with_three_times_the_errors_is_aborted_in_the_first_step() -> None:
    for seed in range(5):
        ended, step, runs = drive(seed, 0.05, 0.15)
        assert (ended, step) == ("aborted", 0), (seed, runs)


def test_a_healthy_canary_ramps_to_completion_without_a_false_abort() -> None:
    # the many-repetition false-abort rate is in benchmarks/bench_rollout.py
    ends = [drive(100 + seed, 0.05, 0.05, every=250, max_runs=150_000)[0] for seed in range(10)]
    assert ends.count("aborted") <= 1, ends
    assert ends.count("completed") >= 8, ends


def test_a_step_held_too_long_aborts_and_evidence_round_trips() -> None:
    rng = np.random.default_rng(7)
    policy = RolloutPolicy(steps=(5, 100), min_runs_per_step=10_000, max_step_hours=2)
    r = started(policy)
    ev = observe_runs(r.evidence, policy, batch(rng, 3000, 50.0, 0.05, 0.05, 0))
    assert Evidence.from_dict(ev.to_dict()) == ev
    r = Rollout(**{**r.__dict__, "evidence": ev})
    held = assess(r, now=T0 + timedelta(hours=1))
    assert held.action == "hold"
    assert held.reasons[0].endswith("canary runs in this step of 10000 needed")
    late = assess(r, now=T0 + timedelta(hours=3))
    assert late.action == "abort"
    assert "held for more than 2 h" in late.reasons[0]
