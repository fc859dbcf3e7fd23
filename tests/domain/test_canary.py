"""The canary comparison: known answers, resumable state, error rates under repeated looks."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

from releasegate.domain.canary import (
    BLOCK_RUNS,
    MAX_PENDING,
    CanaryState,
    blocks_of,
    bounded_state,
    judge,
    log_wealth,
    observe,
    observe_blocks,
    rate_state,
)
from releasegate.errors import InputError

LOOK_EVERY = 10
PAIRS = 2_000
REPS = 300


def _alternating(stable: list[float], canary: list[float]) -> tuple[list[str], list[float]]:
    arms: list[str] = []
    values: list[float] = []
    for s, c in zip(stable, canary, strict=True):
        arms += ["stable", "canary"]
        values += [s, c]
    return arms, values


def test_known_answer_wealth_of_three_pairs() -> None:
    # pairs D = canary - stable = 1, 1, -1 at margin 0: stakes 0, 1/2, min(2/3, 1/2) = 1/2
    arms, values = _alternating([0, 0, 1], [1, 1, 0])
    state = observe(rate_state("error rate", 0.0), arms, values)
    assert state.pairs == 3
    assert state.worse.log_e == pytest.approx(math.log(1.5 * 0.5))
    assert state.not_worse.log_e == 0.0  # never bets on a canary that looks worse
    assert state.canary.mean == pytest.approx(2 / 3)
    assert state.stable.mean == pytest.approx(1 / 3)


def test_the_stake_never_sees_its_own_pair() -> None:
    path, s1, s2 = log_wealth(np.array([[5.0, -1.0]]), 0.0)
    assert path[0, 0] == 0.0  # first stake is 0 whatever the first pair
    assert path[0, 1] == pytest.approx(math.log(1 - 5 / 26))  # stake S1 / (S2 + 1) after it
    assert (s1[0], s2[0]) == (4.0, 26.0)


def test_a_run_pairs_with_the_newest_waiting_run_of_the_other_arm() -> None:
    state = rate_state("error rate", 0.0)
    state = observe(state, ["stable"] * (MAX_PENDING + 5), [1.0] * (MAX_PENDING + 5))
    assert state.pending_arm == "stable" and len(state.pending) == MAX_PENDING
    state = observe(state, ["stable", "canary"], [0.0, 1.0])
    assert state.pairs == 1
    assert state.stable.runs == MAX_PENDING + 6
    assert state.worse.total == 1.0  # the canary's 1 met the newest stable 0


def test_state_resumes_from_json_and_batches_do_not_matter() -> None:
    rng = np.random.default_rng(7)
    arms = [str(a) for a in rng.choice(["stable", "stable", "stable", "canary"], size=3_000)]
    values = (rng.random(3_000) < 0.08).astype(float)
    start = rate_state("escalation rate", 0.01)
    whole = observe(start, arms, values)
    part = observe(start, arms[:1_234], values[:1_234])
    part = CanaryState.from_dict(json.loads(json.dumps(part.to_dict())))
    resumed = observe(part, arms[1_234:], values[1_234:])
    assert resumed.pairs == whole.pairs == whole.canary.runs  # the canary is the rarer arm
    assert resumed.pending == whole.pending
    assert resumed.worse.log_e == pytest.approx(whole.worse.log_e, abs=1e-9)
    assert resumed.not_worse.log_e == pytest.approx(whole.not_worse.log_e, abs=1e-9)
    assert judge(resumed).reason == judge(whole).reason


def test_a_canary_with_double_the_errors_is_aborted_with_its_evidence() -> None:
    rng = np.random.default_rng(3)
    stable = (rng.random(2_000) < 0.05).astype(float).tolist()
    canary = (rng.random(2_000) < 0.20).astype(float).tolist()
    arms, values = _alternating(stable, canary)
    verdict = judge(observe(rate_state("error rate", 0.01), arms, values))
    assert verdict.outcome == "abort"
    assert verdict.e_worse >= 20
    assert verdict.canary_mean > verdict.stable_mean
    assert verdict.reason.startswith("error rate: canary ")
    assert "worse by more than 1.0 pt shown" in verdict.reason
    assert "false-abort rate <= 5% however often checked" in verdict.reason


def test_equal_arms_pass_only_after_min_runs() -> None:
    arms, values = _alternating([0.0] * 150, [0.0] * 150)
    state = observe(rate_state("error rate", 0.05), arms, values)
    early = judge(state, min_runs=200)
    assert early.outcome == "hold"
    assert "too few runs: 150 paired of 200 needed" in early.reason
    state = observe(state, *_alternating([0.0] * 100, [0.0] * 100))
    verdict = judge(state, min_runs=200)
    assert verdict.outcome == "pass"
    assert "not worse by more than 5.0 pt shown" in verdict.reason


def test_latency_is_compared_on_clipped_values() -> None:
    rng = np.random.default_rng(5)
    stable = rng.gamma(4.0, 100.0, 1_500)  # mean 400 ms
    canary = rng.gamma(4.0, 150.0, 1_500)  # mean 600 ms
    canary[0] = 1e9  # one outlier counts as the ceiling, not as a billion
    arms, values = _alternating(stable.tolist(), canary.tolist())
    state = bounded_state("latency ms", margin=50.0, lower=0.0, upper=2_000.0)
    verdict = judge(observe(state, arms, values))
    assert verdict.outcome == "abort"
    assert "latency ms: canary " in verdict.reason
    assert verdict.canary_mean > 1e5  # the reported means are of raw values


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: rate_state("e", 1.0), "canary margin must be in [0, 1), got 1.0"),
        (lambda: bounded_state("l", 1.0, 5.0, 5.0), "need finite lower < upper"),
        (lambda: observe(rate_state("e", 0.0), ["stable"], [0.5]), "a rate takes 0/1"),
        (lambda: observe(rate_state("e", 0.0), ["blue"], [1.0]), "arm must be 'stable'"),
        (lambda: observe(rate_state("e", 0.0), ["stable"], [1.0, 0.0]), "one value per arm"),
        (lambda: judge(rate_state("e", 0.0), alpha=0.0), "alpha must be in (0, 1)"),
    ],
)
def test_bad_input_is_refused(call: object, message: str) -> None:
    with pytest.raises(InputError) as caught:
        call()  # type: ignore[operator]
    assert message in str(caught.value)


def _aborted_at_looks(p_stable: float, p_canary: float, margin: float, seed: int) -> float:
    rng = np.random.default_rng(seed)
    d = (rng.random((REPS, PAIRS)) < p_canary).astype(float) - (
        rng.random((REPS, PAIRS)) < p_stable
    ).astype(float)
    path, _, _ = log_wealth(d - margin, margin)
    looks = path[:, LOOK_EVERY - 1 :: LOOK_EVERY]
    return float((looks >= math.log(20)).any(axis=1).mean())


@pytest.mark.parametrize("rate", [0.05, 0.5])
def test_equal_arms_are_falsely_aborted_at_most_alpha_looking_every_10_runs(rate: float) -> None:
    # margin 0 is the hardest case: equal arms sit on the null's boundary
    assert _aborted_at_looks(rate, rate, 0.0, seed=11) <= 0.05


def test_a_canary_worse_by_exactly_the_margin_passes_at_most_alpha() -> None:
    rng = np.random.default_rng(13)
    d = (rng.random((REPS, PAIRS)) < 0.07).astype(float) - (
        rng.random((REPS, PAIRS)) < 0.05
    ).astype(float)
    path, _, _ = log_wealth(0.02 - d, 0.02)
    assert float((path[:, 199::LOOK_EVERY] >= math.log(20)).any(axis=1).mean()) <= 0.05


def test_doubling_the_error_rate_is_detected_within_2000_runs() -> None:
    assert _aborted_at_looks(0.05, 0.10, 0.01, seed=17) >= 0.9


def test_equal_latencies_are_falsely_aborted_at_most_alpha() -> None:
    rng = np.random.default_rng(19)
    upper = 2_000.0
    stable = np.clip(rng.gamma(2.0, 200.0, (REPS, PAIRS)), 0.0, upper) / upper
    canary = np.clip(rng.gamma(2.0, 200.0, (REPS, PAIRS)), 0.0, upper) / upper
    path, _, _ = log_wealth(canary - stable, 0.0)
    looks = path[:, LOOK_EVERY - 1 :: LOOK_EVERY]
    assert float((looks >= math.log(20)).any(axis=1).mean()) <= 0.05


# -- the blocked test (what `rollout check` runs on the database's sums) ------------------------


def _blocked_run(
    rng: np.random.Generator,
    state: CanaryState,
    draw_stable: Callable[[int], npt.NDArray[np.float64]],
    draw_canary: Callable[[int], npt.NDArray[np.float64]],
    weight: float,
    looks: int,
    every: int,
) -> tuple[bool, bool, CanaryState]:
    """Check every ``every`` runs, ``looks`` times: (ever aborted, ever passed, state)."""
    aborted = passed = False
    for _ in range(looks):
        is_canary = rng.random(every) < weight
        values = np.where(is_canary, draw_canary(every), draw_stable(every))
        scaled = (np.clip(values, state.lower, state.upper) - state.lower) / (
            state.upper - state.lower
        )
        state = observe_blocks(state, blocks_of(is_canary, scaled, BLOCK_RUNS))
        verdict = judge(state, 0.05, min_runs=0)
        aborted |= verdict.outcome == "abort"
        passed |= verdict.outcome == "pass"
    return aborted, passed, state


@pytest.mark.parametrize("weight", [0.05, 0.5])
def test_blocked_a_canary_worse_by_exactly_the_margin_is_aborted_at_most_alpha(
    weight: float,
) -> None:
    """Seeded: 300 rollouts looked at every 100 runs, 150 times (15,000 runs each), a canary
    at 7% errors against 5% with a 2-point margin (the null's edge): aborted <= 5%; and at
    the same margin a canary as good as the stable is passed, one worse by 10 points aborted."""
    rng = np.random.default_rng(11)

    def rate(p: float) -> Callable[[int], npt.NDArray[np.float64]]:
        return lambda n: (rng.random(n) < p).astype(np.float64)

    edge = [
        _blocked_run(rng, rate_state("error", 0.02), rate(0.05), rate(0.07), weight, 150, 100)
        for _ in range(REPS)
    ]
    assert sum(a for a, _, _ in edge) / REPS <= 0.05
    assert sum(p for _, p, _ in edge) / REPS <= 0.05  # worse by the margin: passed rarely
    good = _blocked_run(rng, rate_state("error", 0.05), rate(0.05), rate(0.05), weight, 150, 100)
    assert good[1] and not good[0]
    bad = _blocked_run(rng, rate_state("error", 0.02), rate(0.05), rate(0.15), weight, 150, 100)
    assert bad[0] and bad[2].canary.runs > 0


def test_blocked_bounded_values_at_the_margin_are_aborted_at_most_alpha() -> None:
    """Latency-like values clipped to [0, 1000]: the canary's mean 20 ms above the stable's
    with a 20 ms margin, skewed (gamma) values, a look every 50 runs."""
    rng = np.random.default_rng(12)
    stable = lambda n: rng.gamma(4.0, 50.0, n)  # noqa: E731  mean 200
    canary = lambda n: rng.gamma(4.0, 55.0, n)  # noqa: E731  mean 220
    runs = [
        _blocked_run(
            rng, bounded_state("latency", 20.0, 0.0, 1000.0), stable, canary, 0.25, 200, 50
        )
        for _ in range(REPS)
    ]
    assert sum(a for a, _, _ in runs) / REPS <= 0.05
    assert runs[0][2].pairs > 0 and runs[0][2].canary.runs + runs[0][2].stable.runs == 10_000


def test_blocked_state_round_trips_and_counts_every_run() -> None:
    rng = np.random.default_rng(13)
    is_canary = rng.random(1000) < 0.3
    values = (rng.random(1000) < 0.1).astype(np.float64)
    state = observe_blocks(rate_state("error", 0.02), blocks_of(is_canary, values, 64))
    assert (
        state.canary.runs == int(is_canary.sum()) and state.stable.runs == 1000 - state.canary.runs
    )
    assert state.canary.total == pytest.approx(values[is_canary].sum())
    assert CanaryState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    one_arm = blocks_of(np.zeros(100, dtype=bool), np.ones(100), 64)  # no canary: no bet
    assert observe_blocks(rate_state("error", 0.02), one_arm).worse.log_e == 0.0
