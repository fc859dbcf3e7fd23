"""Shadow rollouts without I/O: pairing by input, the paired check, the move to canary."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from releasegate.domain import shadow
from releasegate.domain.rollout import (
    Evidence,
    Rollout,
    RolloutPolicy,
    Waiting,
    advanced,
    assess,
    begin,
    rollout_policy_from_content,
    shadow_signals,
)
from releasegate.domain.shadow import ShadowRuns, compare, observe_shadow, pair_by_input
from releasegate.errors import InputError

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
STABLE, CANDIDATE = "a" * 64, "b" * 64
POLICY = RolloutPolicy(steps=(10.0, 50.0, 100.0), min_runs_per_step=100)


def runs(
    rows: list[tuple[str, str | None, float, str | None]],
    cursor: int = 0,
    links: list[str | None] | None = None,
) -> ShadowRuns:
    """(arm, input key, error, label) per run; latency 10 ms, no cost."""
    return ShadowRuns(
        links=links,
        arms=[r[0] for r in rows],
        keys=[r[1] for r in rows],
        error=np.array([r[2] for r in rows], dtype=np.float64),
        latency_ms=np.full(len(rows), 10.0),
        cost_usd=np.full(len(rows), np.nan),
        labels=[r[3] for r in rows],
        cursor=cursor,
    )


def in_shadow(policy: RolloutPolicy = POLICY) -> Rollout:
    return begin(
        rollout_id="r1",
        workflow="triage",
        env="production",
        stable_id=STABLE,
        canary_id=CANDIDATE,
        policy=policy,
        at=T0,
        actor="alice",
        evidence=Evidence(latency_ref=50.0),
        mode="shadow",
    )


def test_runs_pair_by_input_first_come_first_paired_whatever_the_order() -> None:
    got = pair_by_input(
        [],
        runs(
            [
                ("stable", "k1", 0.0, "a"),
                ("stable", "k1", 1.0, "b"),  # the same input asked twice
                ("shadow", "k2", 0.0, "x"),  # its stable twin comes later
                ("shadow", "k1", 0.0, "c"),
                ("stable", "k2", 0.0, "y"),
                ("shadow", None, 1.0, None),  # no input recorded: cannot pair
                ("stable", "k3", 0.0, "z"),  # no shadow yet: waits
            ]
        ),
    )
    assert [(s.keys, s.label, t.label) for s, t in got.pairs] == [
        (("i:k1",), "c", "a"),
        (("i:k2",), "x", "y"),
    ]
    assert [(w.arm, w.keys, w.label) for w in got.waiting] == [
        ("stable", ("i:k1",), "b"),
        ("stable", ("i:k3",), "z"),
    ]
    assert got.unpaired == 1
    later = pair_by_input(
        got.waiting, runs([("shadow", "k3", 1.0, "z"), ("shadow", "k9", 0, None)])
    )
    assert [(s.keys, s.error, t.error) for s, t in later.pairs] == [(("i:k3",), 1.0, 0.0)]
    assert [w.keys for w in later.waiting] == [("i:k1",), ("i:k9",)]


def test_a_shadow_run_pairs_with_the_served_run_it_names_even_without_an_input() -> None:
    got = pair_by_input(
        [],
        runs(
            [
                ("stable", None, 0.0, "a"),  # restricted: no input hash stored
                ("stable", None, 1.0, "b"),
                ("shadow", None, 0.0, "c"),  # names the second served run
                ("shadow", "k1", 0.0, "d"),  # names nothing, has an input: waits for one
            ],
            links=["run-1", "run-2", "run-2", None],
        ),
    )
    assert [(s.label, t.label) for s, t in got.pairs] == [("c", "b")]
    assert [(w.arm, w.keys) for w in got.waiting] == [
        ("stable", ("r:run-1",)),
        ("shadow", ("i:k1",)),
    ]
    late = pair_by_input(
        got.waiting,
        runs([("shadow", "k7", 1.0, None), ("stable", "k1", 0.0, "e")], links=["run-1", "run-9"]),
    )
    assert [(s.error, t.label) for s, t in late.pairs] == [(1.0, "a"), (0.0, "e")]
    assert late.waiting == () and late.unpaired == 0


def test_waiting_runs_are_bounded_and_a_dropped_shadow_run_is_counted_unpaired() -> None:
    n = shadow.MAX_WAITING + 5
    got = pair_by_input([], runs([("shadow", f"s{i}", 0.0, None) for i in range(n)]))
    assert len(got.waiting) == shadow.MAX_WAITING and got.unpaired == 5
    assert got.waiting[0].keys == ("i:s5",)  # the oldest went first


def test_a_shadow_finds_its_twin_among_many_served_runs_and_only_the_newest_wait() -> None:
    n = shadow.MAX_WAITING + 1000
    rows: list[tuple[str, str | None, float, str | None]] = [
        ("stable", f"k{i}", 0.0, "a") for i in range(n)
    ]
    got = pair_by_input([], runs([*rows, ("shadow", "k0", 1.0, "b")]))
    assert [(s.label, t.keys) for s, t in got.pairs] == [("b", ("i:k0",))]  # the oldest served
    assert len(got.waiting) == shadow.MAX_WAITING and got.unpaired == 0
    assert got.waiting[0].keys == (f"i:k{n - shadow.MAX_WAITING}",)
    late = pair_by_input(
        got.waiting, runs([("shadow", "k5", 0.0, "a"), ("shadow", f"k{n - 1}", 0, "a")])
    )
    assert len(late.pairs) == 1 and late.unpaired == 0  # k5 waits: its twin may come later


def simulate(
    rng: random.Random, n: int, stable_err: float, shadow_err: float, every: int, flips: float = 0
) -> str:
    """A shadow rollout fed ``n`` requests (each stable run, then its shadow run), checked
    every ``every`` requests; what the last check said (abort stops it)."""
    r = in_shadow(replace(POLICY, signals={"error_rate": 0.02}))
    rows: list[tuple[str, str | None, float, str | None]] = []
    action = "hold"
    for i in range(n):
        key = f"in{i}"
        rows.append(("stable", key, float(rng.random() < stable_err), "fraud"))
        label = "card_lost" if rng.random() < flips else "fraud"
        rows.append(("shadow", key, float(rng.random() < shadow_err), label))
        if (i + 1) % every == 0:
            r = replace(r, evidence=observe_shadow(r.evidence, r.policy, runs(rows)))
            rows = []
            action = assess(r, now=T0).action
            if action == "abort":
                return action
    return action


def test_a_shadow_with_three_times_the_errors_is_aborted_within_a_few_hundred_pairs() -> None:
    rng = random.Random(7)
    assert all(simulate(rng, 600, 0.05, 0.15, every=25) == "abort" for _ in range(20))


def test_a_shadow_that_relabels_a_quarter_of_the_inputs_is_aborted() -> None:
    rng = random.Random(8)
    assert all(simulate(rng, 400, 0.05, 0.05, every=25, flips=0.25) == "abort" for _ in range(20))


def test_checking_a_healthy_shadow_every_few_pairs_rarely_aborts_it() -> None:
    rng = random.Random(9)
    outcomes = [simulate(rng, 1000, 0.05, 0.05, every=10) for _ in range(100)]
    assert outcomes.count("abort") <= 5, outcomes.count("abort")  # alpha 5%, looks every 10


def test_a_healthy_shadow_becomes_eligible_once_it_has_its_pairs() -> None:
    policy = replace(POLICY, signals={"error_rate": 0.05})
    r = in_shadow(policy)
    rows = [("stable", f"k{i}", 0.0, "a") for i in range(300)]
    rows += [("shadow", f"k{i}", 0.0, "a") for i in range(300)]
    r = replace(r, evidence=observe_shadow(r.evidence, r.policy, runs(rows, cursor=600)))
    outcome = assess(r, now=T0)
    assert outcome.action == "advance", outcome.reasons
    assert "300 shadow runs paired" in outcome.reasons[0]
    assert {v.signal for v in outcome.verdicts} == {"error_rate", "label_change"}
    assert all(v.reason.split(": ")[1].startswith("shadow ") for v in outcome.verdicts)
    assert (r.evidence.canary_runs, r.evidence.stable_runs, r.evidence.cursor) == (300, 300, 600)


def test_advancing_a_shadow_starts_the_first_step_with_fresh_evidence() -> None:
    r = in_shadow()
    r = replace(r, evidence=replace(r.evidence, canary_runs=50, unpaired=3, cursor=99))
    assert (r.weight, r.next_weight, r.is_running) == (0.0, 10.0, True)
    moved = advanced(r, T0 + timedelta(hours=1))
    assert (moved.mode, moved.step, moved.weight, moved.state) == ("canary", 0, 10.0, "running")
    assert moved.evidence == Evidence(cursor=99, latency_ref=50.0)
    assert advanced(moved, T0).weight == 50.0
    straight = advanced(in_shadow(replace(POLICY, steps=(100.0,))), T0)
    assert (straight.state, straight.weight, straight.mode) == ("completed", 100.0, "canary")


def test_only_a_shadow_may_go_straight_to_the_whole_traffic() -> None:
    assert in_shadow(replace(POLICY, steps=(100.0,))).steps == (100.0,)
    with pytest.raises(InputError, match="need a step below 100"):
        begin(
            rollout_id="r2",
            workflow="triage",
            env="production",
            stable_id=STABLE,
            canary_id=CANDIDATE,
            policy=replace(POLICY, steps=(100.0,)),
            at=T0,
            actor="alice",
            evidence=Evidence(),
        )


def test_a_shadow_compares_only_the_signals_that_apply_to_a_run_nobody_saw() -> None:
    signals = shadow_signals(RolloutPolicy())
    assert signals == {
        "error_rate": 0.02,
        "latency_p95": 0.05,
        "cost_per_task": 0.10,
        "label_change": 0.10,
    }
    held = assess(in_shadow(RolloutPolicy(max_step_hours=2)), now=T0 + timedelta(hours=3))
    assert held.action == "abort" and "the shadow held for more than 2 h" in held.reasons[0]
    assert held.alpha_per_signal == pytest.approx(0.05 / 4)


def test_evidence_and_policy_keep_the_shadow_state_through_json() -> None:
    ev = Evidence(
        waiting=(Waiting("stable", ("r:x", "i:k1"), 0.0, 12.5, None, "a"),),
        unpaired=2,
        replay={"outcome": "worse", "pairs": 40},
    )
    assert Evidence.from_dict(ev.to_dict()) == ev
    assert Evidence.from_dict({}) == Evidence()  # stored before shadows existed
    policy = replace(POLICY, label_change=0.2)
    assert rollout_policy_from_content(policy.content()) == policy
    old = {k: v for k, v in POLICY.content().items() if k != "label_change"}
    assert rollout_policy_from_content(old).label_change == 0.10


def test_compare_judges_fixed_pairs_at_a_stated_error_rate() -> None:
    same = [
        (
            Waiting("shadow", (f"k{i}",), 0.0, 1.0, None, "a"),
            Waiting("stable", (f"k{i}",), 0.0, 1, None, "a"),
        )
        for i in range(200)
    ]
    signals = {"error_rate": 0.05, "label_change": 0.1}
    ok = compare(same, signals, latency_ref=None, cost_ref=None)
    assert (ok.outcome, ok.pairs, ok.alpha_per_signal) == ("not_worse", 200, 0.025)
    relabelled = [(s._replace(label="b") if i % 3 == 0 else s, t) for i, (s, t) in enumerate(same)]
    bad = compare(relabelled, signals, latency_ref=None, cost_ref=None)
    assert bad.outcome == "worse"
    assert [v.outcome for v in bad.verdicts] == ["pass", "abort"]
    few = compare(same[:10], signals, latency_ref=None, cost_ref=None)
    assert few.outcome == "inconclusive"
