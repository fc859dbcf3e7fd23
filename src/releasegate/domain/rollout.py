"""Progressive rollout: the ramp a policy allows, who is served the canary, and when to stop.

A rollout moves an environment from its stable version to a canary by steps of traffic
weight (``5 -> 25 -> 50 -> 100``). A key (a user or session id) lands on the canary when
the hash of the key and the rollout id, read as a number in [0, 1), is below the weight:
sticky per key, the same in every process, and a key on the canary at 5% stays on it at
25%. Without a key each request draws. The state machine is ``running`` at step i, then
``aborted`` (stable serves everything) or ``completed`` (advancing into 100%: the canary
becomes the environment's version). ``assess`` turns the evidence (the always-valid two-arm
comparisons of ``domain.canary``, one per signal, and the label mix's martingale of
``domain.labelmix`` when the policy names it, Bonferroni over the signals) into the
outcome: abort when any signal shows the canary worse, hold when anything is inconclusive
or short of runs, and eligible to advance when every signal with data shows it not worse
and the step has ``min_runs_per_step`` canary runs (the label mix aborts, never holds).
Looking every minute does not inflate false aborts: each e-process is valid under any
number of looks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal, NamedTuple, NoReturn

import numpy as np
import numpy.typing as npt

from releasegate.domain import canary, labelmix
from releasegate.domain.document import Fields
from releasegate.domain.monitoring import SIGNALS
from releasegate.domain.routing import ARMS, Arm, Splitter, arm_for, draw_arm, key_share
from releasegate.errors import InputError, RolloutRefusedError

State = Literal["running", "aborted", "completed"]
Action = Literal["abort", "hold", "advance"]
Mode = Literal["canary", "shadow"]
__all__ = ["ARMS", "Arm", "Splitter", "arm_for", "draw_arm", "key_share"]  # see domain.routing

DEFAULT_STEPS = (5.0, 25.0, 50.0, 100.0)
DEFAULT_MIN_RUNS = 200
DEFAULT_MAX_STEP_HOURS = 24.0
DEFAULT_LABEL_CHANGE = 0.10
"""In shadow: the share of inputs the candidate may label differently from the stable
before it is 'worse' (``rollout: {label_change: ...}``)."""
MIN_SIGNAL_PAIRS = 30
"""A signal with fewer pairs than this (feedback is sparse) is reported, but does not
block a pass; it can still abort."""


class SignalKind(NamedTuple):
    kind: Literal["rate", "slow", "cost", "mix"]
    margin: float
    what: str


COMPARABLE: Mapping[str, SignalKind] = {
    "error_rate": SignalKind("rate", 0.02, "share of runs that failed, in points"),
    "escalation_rate": SignalKind("rate", 0.02, "share escalated to a human, in points"),
    "edit_rate": SignalKind("rate", 0.02, "share of outputs edited, in points"),
    "negative_feedback_rate": SignalKind("rate", 0.05, "share of feedback that is negative"),
    "latency_p95": SignalKind("slow", 0.05, "share of runs slower than the stable's p95"),
    "cost_per_task": SignalKind("cost", 0.10, "mean cost, as a fraction of the stable's"),
    "label_mix": SignalKind("mix", 0.05, "share of runs whose label would have to change"),
    "quality": SignalKind("rate", 0.05, "share of sampled runs failing the suite's checks"),
}
"""The monitor's signals a canary is compared on, with the default margin of each."""
OPT_IN = ("label_mix", "quality")
"""Compared only when the policy names them (quality scores a sample of runs)."""
ABORT_ONLY = ("label_mix",)
"""Signals that can abort a step but never hold one: no "not worse" is shown for them."""
DEFAULT_SIGNALS: Mapping[str, float] = {
    name: s.margin for name, s in COMPARABLE.items() if name not in OPT_IN
}

SHADOW_COMPARED = ("error_rate", "latency_p95", "cost_per_task")
"""The policy's signals that apply to a shadow run (nobody sees its output, so nobody
escalates, edits or rates it); ``label_change`` is compared besides."""


def shadow_signals(policy: RolloutPolicy) -> dict[str, float]:
    """Signal -> margin compared in shadow: the policy's that apply, and ``label_change``."""
    out = {name: m for name, m in policy.signals.items() if name in SHADOW_COMPARED}
    out["label_change"] = policy.label_change
    return out


# -- the policy's `rollout:` section -------------------------------------------------------


@dataclass(frozen=True)
class RolloutPolicy:
    steps: tuple[float, ...] = DEFAULT_STEPS
    min_runs_per_step: int = DEFAULT_MIN_RUNS
    max_step_hours: float | None = DEFAULT_MAX_STEP_HOURS
    auto_advance: bool = False
    signals: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_SIGNALS))
    """Signal name -> margin: how much worse the canary may be before it is 'worse'."""
    label_change: float = DEFAULT_LABEL_CHANGE
    """In shadow: the margin of ``label_change`` (see ``DEFAULT_LABEL_CHANGE``)."""

    def content(self) -> dict[str, Any]:
        return {
            "steps": list(self.steps),
            "min_runs_per_step": self.min_runs_per_step,
            "max_step_hours": self.max_step_hours,
            "auto_advance": self.auto_advance,
            "signals": dict(self.signals),
            "label_change": self.label_change,
        }

    def with_steps(self, steps: Sequence[float]) -> RolloutPolicy:
        return replace(self, steps=tuple(float(s) for s in steps))


def rollout_policy_from_content(content: Mapping[str, Any]) -> RolloutPolicy:
    return RolloutPolicy(
        steps=tuple(float(s) for s in content["steps"]),
        min_runs_per_step=int(content["min_runs_per_step"]),
        max_step_hours=(
            None if content.get("max_step_hours") is None else float(content["max_step_hours"])
        ),
        auto_advance=bool(content.get("auto_advance", False)),
        signals={str(k): float(v) for k, v in content["signals"].items()},
        label_change=float(content.get("label_change", DEFAULT_LABEL_CHANGE)),
    )


def steps_problem(steps: Sequence[Any]) -> tuple[int | None, str] | None:
    """What is wrong with a ramp (index of the bad step, or None for the whole), or None."""
    if not steps:
        return None, "needs at least one step, ending at 100"
    previous = 0.0
    for i, s in enumerate(steps):
        if isinstance(s, bool) or not isinstance(s, int | float) or not math.isfinite(s):
            return i, f"expected a number of percent, got {s!r}"
        if not 0.0 < s <= 100.0:
            return i, f"must be within (0, 100], got {s:g}"
        if s <= previous:
            return i, f"steps must increase strictly: {s:g} comes after {previous:g}"
        previous = float(s)
    if previous != 100.0:
        return len(steps) - 1, f"the last step must be 100 (the whole traffic), got {previous:g}"
    return None


def parse_steps_flag(text: str, option: str = "--steps") -> tuple[float, ...]:
    """``5,25,50,100`` from the command line; InputError naming the option otherwise."""
    try:
        steps = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise InputError(
            f"{option}: expected percentages separated by commas, got '{text}'",
            field=option,
            hint="e.g. --steps 5,25,50,100",
        ) from None
    problem = steps_problem(steps)
    if problem is not None:
        raise InputError(f"{option}: {problem[1]}", field=option, hint="e.g. --steps 5,25,50,100")
    return tuple(steps)


def parse_rollout(f: Fields) -> RolloutPolicy:
    """The ``rollout:`` section of an environment's policy; errors name file, line and field."""
    f.only(
        "steps", "min_runs_per_step", "max_step_hours", "auto_advance", "signals", "label_change"
    )
    steps: tuple[float, ...] = DEFAULT_STEPS
    if f.has("steps"):
        raw = f.get("steps", list)
        problem = steps_problem(raw)
        if problem is not None:
            index, message = problem
            f.doc.fail(
                f.error,
                message,
                (*f.path, "steps") if index is None else (*f.path, "steps", index),
                hint="e.g. steps: [5, 25, 50, 100]",
            )
        steps = tuple(float(s) for s in raw)
    min_runs = f.get("min_runs_per_step", int, DEFAULT_MIN_RUNS)
    if min_runs < 1:
        f.fail("min_runs_per_step", f"must be at least 1, got {min_runs}")
    hours = f.get("max_step_hours", float, DEFAULT_MAX_STEP_HOURS)
    if hours is not None and not (math.isfinite(hours) and hours > 0):
        f.fail("max_step_hours", f"must be a positive number of hours, got {hours}")
    label_change = f.get("label_change", float, DEFAULT_LABEL_CHANGE)
    if not (math.isfinite(label_change) and 0.0 <= label_change < 1.0):
        f.fail("label_change", f"must be a share in [0, 1), got {label_change}")
    signals: dict[str, float] = {}
    if f.has("signals"):
        raw_signals = f.value["signals"]
        if isinstance(raw_signals, list):
            named = {i: (s, None) for i, s in enumerate(raw_signals)}
        elif isinstance(raw_signals, Mapping):
            named = {k: (k, v) for k, v in raw_signals.items()}
        else:
            f.fail("signals", "expected a list of signal names or a mapping name: margin")
        for where, (name, margin) in named.items():
            path = (*f.path, "signals", where)
            if not isinstance(name, str) or name not in SIGNALS:
                f.doc.fail(
                    f.error,
                    f"unknown signal '{name}'",
                    path,
                    hint="signals: " + ", ".join(COMPARABLE),
                )
            if name not in COMPARABLE:
                f.doc.fail(
                    f.error,
                    f"'{name}' is a monitor signal, but not one a canary is compared on",
                    path,
                    hint="compared: " + ", ".join(COMPARABLE),
                )
            value = COMPARABLE[name].margin if margin is None else margin
            if isinstance(value, bool) or not isinstance(value, int | float):
                f.doc.fail(f.error, f"expected a margin (a number), got {value!r}", path)
            if not 0.0 <= float(value) < 1.0:
                f.doc.fail(
                    f.error,
                    f"margin must be in [0, 1), got {value}",
                    path,
                    hint=f"{name}: {COMPARABLE[name].what}",
                )
            signals[name] = float(value)
        if not signals:
            f.fail("signals", "name at least one signal, e.g. [error_rate, latency_p95]")
    else:
        signals = dict(DEFAULT_SIGNALS)
    return RolloutPolicy(
        steps=steps,
        min_runs_per_step=min_runs,
        max_step_hours=hours,
        auto_advance=f.get("auto_advance", bool, False),
        signals=signals,
        label_change=label_change,
    )


def ramp(policy_steps: Sequence[float], canary_pct: float | None) -> tuple[float, ...]:
    """The steps of a rollout that starts at ``canary_pct`` (the policy's first step if
    None): that weight, then the policy's steps above it. InputError if it cannot start."""
    if canary_pct is None:
        steps = tuple(policy_steps)
    else:
        if not (math.isfinite(canary_pct) and 0.0 < canary_pct < 100.0):
            raise InputError(
                f"--canary: expected a percentage above 0 and below 100, got {canary_pct:g}",
                field="--canary",
                hint="e.g. --canary 5; to move everything at once, promote without --canary",
            )
        steps = (float(canary_pct), *(s for s in policy_steps if s > canary_pct))
    if len(steps) < 2:
        raise InputError(
            "a rollout needs a step below 100 before the whole traffic",
            field="--steps",
            hint="e.g. --steps 5,25,50,100, or promote without --canary",
        )
    return steps


# -- the state machine ---------------------------------------------------------------------


@dataclass(frozen=True)
class Rollout:
    """One rollout of ``canary_id`` over ``stable_id`` in ``workflow@env``."""

    rollout_id: str
    workflow: str
    env: str
    stable_id: str
    canary_id: str
    policy: RolloutPolicy
    step: int
    state: State
    started_at: datetime
    updated_at: datetime
    step_started_at: datetime
    evidence: Evidence
    actor: str = ""
    reason: str = ""
    """Why it ended (aborted or completed)."""
    revision: int = 1
    mode: Mode = "canary"
    """``shadow``: the candidate serves nobody (weight 0); the application runs it beside
    the stable version on the same inputs and records those runs with arm ``shadow``.
    Advancing a shadow goes to the ramp's first step (``canary``)."""

    @property
    def steps(self) -> tuple[float, ...]:
        return self.policy.steps

    @property
    def weight(self) -> float:
        """The canary's share of traffic now, in percent (0 in shadow)."""
        if self.state == "aborted":
            return 0.0
        if self.state == "completed":
            return 100.0
        return 0.0 if self.mode == "shadow" else self.steps[self.step]

    @property
    def is_running(self) -> bool:
        return self.state == "running"

    @property
    def is_shadow(self) -> bool:
        return self.mode == "shadow"

    @property
    def serving(self) -> str:
        """Who it serves, in words: ``25% canary`` or ``in shadow, served to nobody``."""
        return "in shadow, served to nobody" if self.is_shadow else f"{self.weight:g}% canary"

    @property
    def next_weight(self) -> float | None:
        if not self.is_running:
            return None
        return self.steps[self.step] if self.is_shadow else self.steps[self.step + 1]


def begin(
    *,
    rollout_id: str,
    workflow: str,
    env: str,
    stable_id: str,
    canary_id: str,
    policy: RolloutPolicy,
    at: datetime,
    actor: str,
    evidence: Evidence,
    mode: Mode = "canary",
) -> Rollout:
    """A new rollout at its first step (or in shadow before it: the steps are the ramp
    it takes once advanced, and may be just ``[100]``)."""
    problem = steps_problem(policy.steps)
    if problem is not None or (len(policy.steps) < 2 and mode == "canary"):
        raise InputError(
            f"rollout steps: {problem[1] if problem else 'need a step below 100'}",
            field="steps",
        )
    if stable_id == canary_id:
        raise RolloutRefusedError(
            f"{canary_id[:12]} already runs in {workflow}@{env}: nothing to roll out"
        )
    return Rollout(
        rollout_id=rollout_id,
        workflow=workflow,
        env=env,
        stable_id=stable_id,
        canary_id=canary_id,
        policy=policy,
        step=0,
        state="running",
        started_at=at,
        updated_at=at,
        step_started_at=at,
        evidence=evidence,
        actor=actor,
        mode=mode,
    )


def _refuse_ended(r: Rollout, verb: str) -> NoReturn:
    how = f"aborted ({r.reason})" if r.state == "aborted" else "completed"
    raise RolloutRefusedError(
        f"the rollout of {r.canary_id[:12]} in {r.workflow}@{r.env} was {how}: it cannot {verb}",
        hint="a new rollout may start, of this version too: `releasegate promote VERSION "
        f"--env {r.env} --canary PCT`; this abort's evidence stays in the audit log"
        if r.state == "aborted"
        else None,
    )


def advanced(r: Rollout, at: datetime) -> Rollout:
    """The next step; advancing into 100% completes the rollout (the caller moves the alias)."""
    if not r.is_running:
        _refuse_ended(r, "advance")
    if r.is_shadow:  # to the first step, compared afresh (the shadow's verdicts are audited)
        step = r.step
        ev = Evidence(
            cursor=r.evidence.cursor,
            latency_ref=r.evidence.latency_ref,
            cost_ref=r.evidence.cost_ref,
        )
    else:
        step = r.step + 1
        ev = r.evidence.at_step_start()
    if r.steps[step] >= 100.0:
        return replace(
            r,
            step=step,
            state="completed",
            updated_at=at,
            step_started_at=at,
            evidence=ev,
            reason="advanced to 100%",
            revision=r.revision + 1,
            mode="canary",
        )
    return replace(
        r,
        step=step,
        updated_at=at,
        step_started_at=at,
        evidence=ev,
        revision=r.revision + 1,
        mode="canary",
    )


def aborted(r: Rollout, reason: str, at: datetime) -> Rollout:
    """Weight 0: the stable version serves everything again."""
    if not r.is_running:
        _refuse_ended(r, "be aborted")
    return replace(r, state="aborted", updated_at=at, reason=reason, revision=r.revision + 1)


# -- the evidence and the check ------------------------------------------------------------


class Waiting(NamedTuple):
    """In shadow: a run read by a check whose twin (the other arm, the same input) has not
    been read yet. ``keys`` are what it pairs by (``domain.shadow``: its input's hash, and
    for a stable run its run id); NaN cost travels as None."""

    arm: str
    keys: tuple[str, ...]
    error: float
    latency_ms: float
    cost_usd: float | None
    label: str | None


@dataclass(frozen=True)
class Evidence:
    """What the checks have read so far: the comparison of each signal, resumable.

    ``cursor`` is the last run (store sequence) read; ``latency_ref`` the stable's p95
    latency and ``cost_ref`` its mean and p99 cost before the canary, which turn latency
    into "slower than the stable's p95" and bound the cost comparison. In shadow,
    ``canary_runs`` counts the shadow runs paired, ``waiting`` the runs read whose twin
    is still to come, ``unpaired`` the shadow runs that found none (no input recorded, or
    their twin was dropped from ``waiting``), and ``replay`` the last ``shadow-replay``."""

    cursor: int = 0
    states: Mapping[str, canary.CanaryState] = field(default_factory=dict)
    canary_runs: int = 0
    stable_runs: int = 0
    step_start_runs: int = 0
    latency_ref: float | None = None
    cost_ref: tuple[float, float] | None = None
    waiting: tuple[Waiting, ...] = ()
    unpaired: int = 0
    replay: Mapping[str, Any] | None = None
    mix: labelmix.MixState | None = None
    """The label-mix martingale, when the policy compares ``label_mix``."""

    @property
    def step_runs(self) -> int:
        """Canary runs in the current step."""
        return self.canary_runs - self.step_start_runs

    def at_step_start(self) -> Evidence:
        return replace(self, step_start_runs=self.canary_runs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "cursor": self.cursor,
            "states": {k: s.to_dict() for k, s in self.states.items()},
            "canary_runs": self.canary_runs,
            "stable_runs": self.stable_runs,
            "step_start_runs": self.step_start_runs,
            "latency_ref": self.latency_ref,
            "cost_ref": list(self.cost_ref) if self.cost_ref is not None else None,
            "waiting": [[w[0], list(w[1]), *w[2:]] for w in self.waiting],
            "unpaired": self.unpaired,
            "replay": dict(self.replay) if self.replay is not None else None,
            "mix": self.mix.to_dict() if self.mix is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evidence:
        cost = data.get("cost_ref")
        return cls(
            cursor=int(data.get("cursor", 0)),
            states={
                str(k): canary.CanaryState.from_dict(v)
                for k, v in (data.get("states") or {}).items()
            },
            canary_runs=int(data.get("canary_runs", 0)),
            stable_runs=int(data.get("stable_runs", 0)),
            step_start_runs=int(data.get("step_start_runs", 0)),
            latency_ref=data.get("latency_ref"),
            cost_ref=(float(cost[0]), float(cost[1])) if cost else None,
            waiting=tuple(Waiting(w[0], tuple(w[1]), *w[2:]) for w in data.get("waiting") or ()),
            unpaired=int(data.get("unpaired", 0)),
            replay=data.get("replay"),
            mix=labelmix.MixState.from_dict(data["mix"]) if data.get("mix") else None,
        )


def reference(latency_ms: npt.ArrayLike, cost_usd: npt.ArrayLike) -> Evidence:
    """Evidence that starts from the stable's runs before the canary (may be empty)."""
    lat = np.asarray(latency_ms, dtype=np.float64)
    cost = np.asarray(cost_usd, dtype=np.float64)
    cost = cost[np.isfinite(cost)]
    lat = lat[np.isfinite(lat)]
    return Evidence(
        latency_ref=float(np.quantile(lat, 0.95)) if len(lat) >= MIN_SIGNAL_PAIRS else None,
        cost_ref=(
            (float(cost.mean()), float(np.quantile(cost, 0.99)))
            if len(cost) >= MIN_SIGNAL_PAIRS and float(np.quantile(cost, 0.99)) > 0
            else None
        ),
    )


def fresh_state(
    name: str, margin: float, cost_ref: tuple[float, float] | None
) -> canary.CanaryState:
    """A signal's comparison before any run: cost is bounded by the stable's p99 and its
    margin is a share of the stable's mean; the others are 0/1 rates."""
    if name == "cost_per_task":
        assert cost_ref is not None
        upper = cost_ref[1]
        return canary.bounded_state(name, min(margin * cost_ref[0], upper * 0.99), 0, upper)
    return canary.rate_state(name, margin)


Floats = npt.NDArray[np.float64]


def references(
    ev: Evidence, latency_ms: Floats, cost_usd: Floats
) -> tuple[float | None, tuple[float, float] | None]:
    """The evidence's latency and cost references, each taken from these stable runs
    (30+ needed) when the rollout started without one (a new environment)."""
    latency_ref, cost_ref = ev.latency_ref, ev.cost_ref
    if latency_ref is None or cost_ref is None:
        seen = reference(latency_ms, cost_usd)
        latency_ref = latency_ref if latency_ref is not None else seen.latency_ref
        cost_ref = cost_ref if cost_ref is not None else seen.cost_ref
    return latency_ref, cost_ref


class ArmRuns(NamedTuple):
    """Runs held in memory, in arrival order: which arm served each, whether it
    failed, was escalated, was edited, its feedback, latency and cost (NaN: not given)."""

    arms: Sequence[str]
    error: Floats
    escalated: Floats
    edited: Floats
    feedback: Floats
    latency_ms: Floats
    cost_usd: Floats
    cursor: int
    labels: Sequence[str | None] | None = None


class RolloutSums(NamedTuple):
    """Runs read since the last check, summed per block and arm by signal (``Blocks``;
    values scaled as the comparison scales them: latency as "slower than the reference
    p95", cost clipped to its reference p99 over that p99), and the cursor reached."""

    blocks: Mapping[str, canary.Blocks]
    canary_runs: int
    stable_runs: int
    cursor: int
    labels: labelmix.LabelBlocks | None = None
    """Runs per block, label and arm, when ``label_mix`` is compared."""


def with_references(ev: Evidence, latency_ms: Floats, cost_usd: Floats) -> Evidence:
    """``ev`` with a reference the rollout started without taken from these stable runs."""
    latency_ref, cost_ref = references(ev, latency_ms, cost_usd)
    return replace(ev, latency_ref=latency_ref, cost_ref=cost_ref)


def observe_sums(ev: Evidence, policy: RolloutPolicy, sums: RolloutSums) -> Evidence:
    """Feed each signal's block sums to its comparison (``canary.observe_blocks``); a
    signal whose reference is not known yet (latency, cost) waits."""
    states = dict(ev.states)
    for name, margin in policy.signals.items():
        got = sums.blocks.get(name)
        kind = COMPARABLE[name].kind
        if kind == "mix":
            if sums.labels is not None:
                mix = labelmix.observe_mix(ev.mix or labelmix.MixState(), sums.labels)
                ev = replace(ev, mix=mix)
            continue
        if got is None or (kind == "slow" and ev.latency_ref is None):
            continue
        if kind == "cost" and ev.cost_ref is None:
            continue
        state = states.get(name) or fresh_state(name, margin, ev.cost_ref)
        states[name] = canary.observe_blocks(state, got)
    return replace(
        ev,
        cursor=max(ev.cursor, sums.cursor),
        states=states,
        canary_runs=ev.canary_runs + sums.canary_runs,
        stable_runs=ev.stable_runs + sums.stable_runs,
    )


def observe_runs(
    ev: Evidence, policy: RolloutPolicy, runs: ArmRuns, block: int = canary.BLOCK_RUNS
) -> Evidence:
    """``observe_sums`` for runs held in memory (tests, simulations): each signal's runs in
    consecutive blocks of ``block``. A reference the rollout started without is taken
    from the stable runs seen (30 at least)."""
    arms = np.asarray(runs.arms, dtype=object)
    if len(arms) == 0:
        return replace(ev, cursor=max(ev.cursor, runs.cursor))
    is_canary = arms == "canary"
    ev = with_references(ev, runs.latency_ms[~is_canary], runs.cost_usd[~is_canary])
    found: dict[str, canary.Blocks] = {}
    for name in policy.signals:
        keep: npt.NDArray[np.bool_] | None = None
        values: Floats
        if name == "label_mix":
            continue
        if name == "error_rate":
            values = runs.error
        elif name == "escalation_rate":
            values = runs.escalated
        elif name == "edit_rate":
            values = runs.edited
        elif name == "negative_feedback_rate":
            keep = np.isfinite(runs.feedback)
            values = (runs.feedback < 0).astype(np.float64)
        elif COMPARABLE[name].kind == "slow":
            if ev.latency_ref is None:
                continue
            values = (runs.latency_ms > ev.latency_ref).astype(np.float64)
        else:  # cost, clipped to the reference's p99 and scaled to [0, 1]
            if ev.cost_ref is None:
                continue
            keep = np.isfinite(runs.cost_usd)
            values = np.clip(np.nan_to_num(runs.cost_usd, nan=0.0) / ev.cost_ref[1], 0.0, 1.0)
        if keep is None:
            found[name] = canary.blocks_of(is_canary, values, block)
        elif keep.any():
            found[name] = canary.blocks_of(is_canary[keep], values[keep], block)
    n_canary = int(is_canary.sum())
    labels = None
    if "label_mix" in policy.signals and runs.labels is not None:
        labels = labelmix.label_blocks(is_canary, runs.labels, block)
    sums = RolloutSums(found, n_canary, len(arms) - n_canary, runs.cursor, labels)
    return observe_sums(ev, policy, sums)


def _mix_verdict(ev: Evidence, alpha: float, margin: float) -> canary.CanaryVerdict:
    """The label-mix martingale as a verdict: abort when shown, else hold (abort-only)."""
    mix = ev.mix or labelmix.MixState()
    said = labelmix.judge_mix(mix, alpha, margin)
    return canary.CanaryVerdict(
        outcome="abort" if said.is_shown else "hold",
        signal="label_mix",
        stable_mean=0.0,
        canary_mean=said.distance if math.isfinite(said.distance) else 0.0,
        stable_runs=mix.stable_runs,
        canary_runs=mix.canary_runs,
        pairs=mix.blocks,
        margin=margin,
        alpha=alpha,
        e_worse=said.e_value,
        e_not_worse=1.0,
        reason=said.reason,
    )


@dataclass(frozen=True)
class CheckOutcome:
    """What a check decided, with each signal's verdict and the reasons in words."""

    action: Action
    verdicts: tuple[canary.CanaryVerdict, ...]
    reasons: tuple[str, ...]
    step_runs: int
    min_runs: int
    alpha_per_signal: float

    @property
    def is_eligible(self) -> bool:
        return self.action == "advance"


def assess(r: Rollout, *, now: datetime, alpha: float = canary.ALPHA) -> CheckOutcome:
    """abort / hold / advance for the evidence so far (see the module docstring).

    The false-abort rate over the whole rollout, however often it is checked, is at most
    ``alpha``: each of the k signals is judged at ``alpha / k``."""
    policy, ev = r.policy, r.evidence
    signals = shadow_signals(policy) if r.is_shadow else policy.signals
    per_signal = alpha / max(1, len(signals))
    arm = r.mode
    verdicts = tuple(
        canary.judge(state, per_signal, min_runs=0, arm=arm) for state in ev.states.values()
    )
    if "label_mix" in signals and not r.is_shadow:
        verdicts = (*verdicts, _mix_verdict(ev, per_signal, signals["label_mix"]))
    worse = [v for v in verdicts if v.outcome == "abort"]
    if worse:
        return CheckOutcome(
            "abort",
            verdicts,
            tuple(v.reason for v in worse),
            ev.step_runs,
            policy.min_runs_per_step,
            per_signal,
        )
    reasons: list[str] = []
    blocking = [
        v
        for v in verdicts
        if v.outcome != "pass" and v.pairs >= MIN_SIGNAL_PAIRS and v.signal not in ABORT_ONLY
    ]
    missing = [s for s in signals if s not in ev.states and s not in ABORT_ONLY]
    if "error_rate" in signals and ev.states.get("error_rate") is None:
        reasons.append("error_rate: no runs of both arms yet")
    reasons.extend(f"{v.reason}" for v in blocking)
    reasons.extend(v.reason for v in verdicts if v.signal in ABORT_ONLY)  # said, not blocking
    for v in verdicts:
        if v.pairs < MIN_SIGNAL_PAIRS and v.outcome != "pass" and v.signal not in ABORT_ONLY:
            reasons.append(f"{v.signal}: {v.pairs} pairs, too few to compare yet (not blocking)")
    for s in missing:
        if s == "label_change":
            reasons.append(f"{s}: no pair with both labels yet (not compared)")
        elif s == "quality":
            reasons.append(f"{s}: no sampled run scored yet, or no scorer can (not compared)")
        elif s != "error_rate":
            reasons.append(f"{s}: no reference from the stable yet (not compared)")
    passed_any = any(v.outcome == "pass" for v in verdicts)
    short = ev.step_runs < policy.min_runs_per_step
    runs_of = "shadow runs paired" if r.is_shadow else "canary runs in this step"
    if short:
        reasons.insert(0, f"{ev.step_runs} {runs_of} of {policy.min_runs_per_step} needed")
    held_for = now - r.step_started_at
    if (
        not blocking
        and passed_any
        and not short
        and not ("error_rate" in signals and "error_rate" not in ev.states)
    ):
        return CheckOutcome(
            "advance",
            verdicts,
            (
                f"not worse on every signal compared, {ev.step_runs} {runs_of}",
                *reasons,
            ),
            ev.step_runs,
            policy.min_runs_per_step,
            per_signal,
        )
    limit = policy.max_step_hours
    if limit is not None and held_for > timedelta(hours=limit):
        return CheckOutcome(
            "abort",
            verdicts,
            (
                (
                    f"the shadow held for more than {limit:g} h without showing the candidate"
                    if r.is_shadow
                    else f"step {r.step + 1} at {r.weight:g}% held for more than {limit:g} h "
                    "without showing the canary"
                )
                + " is not worse",
                *reasons,
            ),
            ev.step_runs,
            policy.min_runs_per_step,
            per_signal,
        )
    return CheckOutcome(
        "hold", verdicts, tuple(reasons), ev.step_runs, policy.min_runs_per_step, per_signal
    )
