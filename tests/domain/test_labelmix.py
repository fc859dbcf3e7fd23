"""The label-mix martingale without I/O: its expectation is exactly 1 under the null (by
enumeration), false aborts over whole seeded ramps checked every N runs stay <= 5%, a real
shift in mix is caught, and a rollout that compares label_mix aborts on it and only on it."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from releasegate.domain.labelmix import (
    LabelBlocks,
    MixState,
    judge_mix,
    label_blocks,
    observe_mix,
)
from releasegate.domain.rollout import (
    ArmRuns,
    Evidence,
    RolloutPolicy,
    assess,
    begin,
    observe_runs,
)

LABELS = [f"intent-{i}" for i in range(8)]
SHARES = np.array([0.3, 0.2, 0.15, 0.1, 0.1, 0.07, 0.05, 0.03])
T0 = datetime(2026, 12, 3, tzinfo=UTC)


def test_a_blocks_factor_has_expectation_one_under_the_null_exactly() -> None:
    """Every way the block's canary runs could have been drawn, equally likely under the
    null: the factors 1 + lam * x average to 1 (a martingale, not a supermartingale)."""
    past = observe_mix(
        MixState(),
        label_blocks([True, False, False, True, False, False], list("abcaab"), 6),
    )
    past = MixState(past.log_e, past.counts, total=0.4, total_sq=0.5, blocks=past.blocks)
    block = list("aabcca")
    for n_canary in (1, 2, 3):
        factors = []
        for chosen in itertools.combinations(range(len(block)), n_canary):
            arms = [i in chosen for i in range(len(block))]
            after = observe_mix(past, label_blocks(arms, block, len(block)))
            factors.append(math.exp(after.log_e - past.log_e))
        assert np.mean(factors) == pytest.approx(1.0, abs=1e-12)
        assert min(factors) > 0.0


def draw_labels(rng: np.random.Generator, n: int, shares: np.ndarray) -> list[str]:
    return [LABELS[i] for i in rng.choice(len(LABELS), size=n, p=shares)]


def ramp(
    seed: int, *, every: int, canary_shares: np.ndarray, steps: tuple[float, ...] = (5, 25, 50)
) -> tuple[bool, int]:
    """A whole ramp, 4,000 runs per step, checked every ``every`` runs with margin 0 (the
    e-value alone decides, the least favourable case): (aborted, runs at the end)."""
    rng = np.random.default_rng(seed)
    state = MixState()
    runs = 0
    for weight in steps:
        for _ in range(4000 // every):
            is_canary = rng.random(every) < weight / 100
            codes = np.where(
                is_canary,
                rng.choice(len(LABELS), size=every, p=canary_shares),
                rng.choice(len(LABELS), size=every, p=SHARES),
            )
            labels = [LABELS[i] for i in codes.tolist()]
            state = observe_mix(state, label_blocks(is_canary, labels, 64))
            runs += every
            if judge_mix(state, 0.05, 0.0).is_shown:
                return True, runs
    return False, runs


@pytest.mark.parametrize("every", [100, 1000])
def test_false_aborts_over_a_whole_ramp_stay_under_five_percent(every: int) -> None:
    reps = 200
    aborted = sum(ramp(seed, every=every, canary_shares=SHARES)[0] for seed in range(reps))
    assert aborted / reps <= 0.05, aborted


def test_a_shift_of_a_fifth_of_the_runs_onto_one_label_is_caught() -> None:
    shifted = 0.8 * SHARES
    shifted[-1] += 0.2  # a fifth of the canary's runs now go to the rarest label
    ends = [ramp(100 + seed, every=200, canary_shares=shifted) for seed in range(10)]
    assert sum(a for a, _ in ends) >= 9, ends
    state = MixState(counts={"a": (80, 900), "b": (20, 100)})
    assert state.distance() == pytest.approx(0.5 * (abs(0.8 - 0.9) + abs(0.2 - 0.1)))


def test_the_state_round_trips_and_empty_blocks_change_nothing() -> None:
    rng = np.random.default_rng(4)
    is_canary = rng.random(500) < 0.3
    state = observe_mix(MixState(), label_blocks(is_canary, draw_labels(rng, 500, SHARES), 64))
    assert MixState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    assert state.canary_runs == int(is_canary.sum())
    empty = LabelBlocks(
        np.zeros(0, dtype=np.int64), [], np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    )
    assert observe_mix(state, empty) == state
    assert label_blocks([True, False], [None, None], 64).label == []


def test_a_rollout_that_compares_label_mix_aborts_on_a_shifted_mix_only() -> None:
    policy = RolloutPolicy(
        steps=(25, 100), min_runs_per_step=100, max_step_hours=None,
        signals={"error_rate": 0.05, "label_mix": 0.05},
    )  # fmt: skip
    shifted = 0.6 * SHARES
    shifted[0] += 0.4
    for shares, expect in ((SHARES, "advance"), (shifted, "abort")):
        rng = np.random.default_rng(9)
        r = begin(
            rollout_id="r", workflow="w", env="e", stable_id="a" * 64, canary_id="b" * 64,
            policy=policy, at=T0, actor="t", evidence=Evidence(),
        )  # fmt: skip
        for _ in range(10):
            n = 1000
            is_canary = rng.random(n) < 0.25
            runs = ArmRuns(
                arms=["canary" if c else "stable" for c in is_canary],
                error=np.zeros(n), escalated=np.zeros(n), edited=np.zeros(n),
                feedback=np.full(n, np.nan), latency_ms=np.full(n, 100.0),
                cost_usd=np.full(n, np.nan), cursor=0,
                labels=[draw_labels(rng, 1, shares if c else SHARES)[0] for c in is_canary],
            )  # fmt: skip
            r = replace(r, evidence=observe_runs(r.evidence, policy, runs))
        outcome = assess(r, now=T0)
        assert outcome.action == expect, outcome.reasons
        mix = next(v for v in outcome.verdicts if v.signal == "label_mix")
        assert mix.alpha == pytest.approx(0.025)  # Bonferroni over the two signals
        if expect == "abort":
            assert (
                "label_mix:" in outcome.reasons[0] and "most moved: intent-0" in outcome.reasons[0]
            )
        else:
            assert any(x.startswith("label_mix:") for x in outcome.reasons)  # said, not blocking
