"""Shadow comparison: the candidate run on the same inputs as the stable, judged pair by pair.

Under a shadow rollout the stable version serves every request; the application also runs
the candidate on the request's input, off the request path, and records that run with arm
``shadow``. A check pairs each shadow run with the stable run it names (``pair=`` in the
SDK: the served run's id, which survives a data class that keeps texts and their hashes
out of the store), else with a stable run of the same input (its input hash), first come
first paired, reading only arms and keys, never outcomes; a run whose twin has not been
read yet waits for the next check (the newest ``MAX_WAITING`` of each arm; older ones are
dropped unseen, and a dropped shadow run is counted as unpaired). Each pair feeds the
same always-valid betting e-processes as a canary (``domain.canary.observe_matched``):
errors, slowness (slower than the stable's p95 before the rollout), cost, and
``label_change``, the share of inputs the candidate labels differently (against 0 for the
stable). Two runs of one input share its difficulty, so its noise cancels: a paired
difference needs far fewer runs than two arms served different requests.

``compare`` is the same comparison on a fixed set of pairs: ``rollout shadow-replay``,
which runs the candidate itself on the inputs of recorded stable runs.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np

from releasegate.domain import canary
from releasegate.domain.rollout import (
    MIN_SIGNAL_PAIRS,
    Evidence,
    Floats,
    RolloutPolicy,
    Waiting,
    fresh_state,
    references,
    shadow_signals,
)

MAX_WAITING = 2000
"""Runs of each arm carried to the next check while their twin has not arrived (the
newest kept)."""
KEY_CHARS = 16
"""Characters of the input hash a waiting run keeps (64 bits: collisions are negligible)."""


class ShadowRuns(NamedTuple):
    """Runs read since the last check, in arrival order: the arm (``stable`` or
    ``shadow``), the input hash (None: no input recorded), whether it failed, its latency,
    cost (NaN: not given) and label; ``links``: a stable run's own run id, or the run id a
    shadow run names as its twin (None: it names none)."""

    arms: Sequence[str]
    keys: Sequence[str | None]
    error: Floats
    latency_ms: Floats
    cost_usd: Floats
    labels: Sequence[str | None]
    cursor: int
    links: Sequence[str | None] | None = None
    stable_count: int | None = None
    """Stable runs stored in the range read, when only those pairing can use were sent
    back (``RolloutRepo.shadow_runs``); None: ``arms`` holds every one."""

    @property
    def read(self) -> int:
        """Runs the range held (stable and shadow)."""
        if self.stable_count is None:
            return len(self.arms)
        return self.stable_count + sum(1 for arm in self.arms if arm == "shadow")

    def waiting(self, i: int) -> Waiting:
        cost = float(self.cost_usd[i])
        return Waiting(
            self.arms[i],
            pair_keys(self.arms[i], self.keys[i], None if self.links is None else self.links[i]),
            float(self.error[i]),
            float(self.latency_ms[i]),
            None if cost != cost else cost,
            self.labels[i],
        )


class Paired(NamedTuple):
    """Pairs made by ``pair_by_input``: (shadow, stable) in the order they formed."""

    pairs: list[tuple[Waiting, Waiting]]
    waiting: tuple[Waiting, ...]
    unpaired: int


def pair_keys(arm: str, input_hash: str | None, link: str | None) -> tuple[str, ...]:
    """What a run pairs by: a shadow run by the served run it names, else by its input; a
    stable run by both its own id and its input."""
    by_input = (f"i:{input_hash[:KEY_CHARS]}",) if input_hash else ()
    if arm == "shadow":
        return (f"r:{link[:64]}",) if link else by_input
    return ((f"r:{link[:64]}",) if link else ()) + by_input


def _relevant(waiting: Sequence[Waiting], runs: ShadowRuns) -> list[int]:
    """The runs pairing can touch, in arrival order: every shadow run, the stable runs that
    share a key with one (waiting or new), and the newest ``MAX_WAITING`` stable runs (they
    may wait). The others would be dropped unseen: they are never made into values, so a
    check over a million served runs and a few shadow ones stays cheap."""
    arms = runs.arms
    links = runs.links
    inputs: set[str] = set()
    named: set[str] = set()
    for w in waiting:
        if w.arm == "shadow":
            for key in w.keys:
                (inputs if key.startswith("i:") else named).add(key[2:])
    stable: list[int] = []
    for i, arm in enumerate(arms):
        if arm != "shadow":
            stable.append(i)
            continue
        link = None if links is None else links[i]
        if link:
            named.add(link[:64])
        elif runs.keys[i]:
            inputs.add(str(runs.keys[i])[:KEY_CHARS])
    tail = set(stable[-MAX_WAITING:])
    out: list[int] = []
    for i, arm in enumerate(arms):
        if arm == "shadow" or i in tail:
            out.append(i)
            continue
        digest = runs.keys[i]
        own = None if links is None else links[i]
        if (digest and digest[:KEY_CHARS] in inputs) or (own and own[:64] in named):
            out.append(i)
    return out


def pair_by_input(waiting: Sequence[Waiting], runs: ShadowRuns) -> Paired:
    """Pair each run with the oldest waiting run of the other arm sharing a key (the run it
    names, or the same input). What finds no twin waits for the next check: the newest
    ``MAX_WAITING`` runs of each arm; an older shadow run is dropped and counted unpaired.
    Reads arms and keys only."""
    queues: dict[tuple[str, str], deque[int]] = {}
    entries: list[Waiting] = list(waiting)
    taken: set[int] = set()
    pairs: list[tuple[Waiting, Waiting]] = []
    unpaired = 0

    def wait(j: int) -> None:
        for key in entries[j].keys:
            queues.setdefault((entries[j].arm, key), deque()).append(j)

    def twin(run: Waiting) -> int | None:
        other = "stable" if run.arm == "shadow" else "shadow"
        for key in run.keys:
            queue = queues.get((other, key))
            while queue:
                j = queue.popleft()
                if j not in taken:
                    return j
        return None

    for k in range(len(entries)):
        wait(k)
    for i in _relevant(waiting, runs):
        run = runs.waiting(i)
        if not run.keys:
            unpaired += run.arm == "shadow"
            continue
        found = twin(run)
        if found is not None:
            taken.add(found)
            mate = entries[found]
            pairs.append((run, mate) if run.arm == "shadow" else (mate, run))
            continue
        entries.append(run)
        wait(len(entries) - 1)
    left = [w for k, w in enumerate(entries) if k not in taken]
    kept: list[Waiting] = []
    room = {"stable": MAX_WAITING, "shadow": MAX_WAITING}
    for w in reversed(left):  # the newest of each arm
        if room[w.arm] > 0:
            room[w.arm] -= 1
            kept.append(w)
        else:
            unpaired += w.arm == "shadow"
    return Paired(pairs, tuple(reversed(kept)), unpaired)


def _feed(
    states: dict[str, canary.CanaryState],
    signals: Mapping[str, float],
    pairs: Sequence[tuple[Waiting, Waiting]],
    latency_ref: float | None,
    cost_ref: tuple[float, float] | None,
) -> None:
    """Feed ``pairs`` (shadow, stable) to each signal's comparison, in place."""
    if not pairs:
        return
    shadow_err = np.array([p[0].error for p in pairs])
    stable_err = np.array([p[1].error for p in pairs])
    for name, margin in signals.items():
        if name == "error_rate":
            c, s = shadow_err, stable_err
        elif name == "latency_p95":
            if latency_ref is None:
                continue
            c = np.array([float(p[0].latency_ms > latency_ref) for p in pairs])
            s = np.array([float(p[1].latency_ms > latency_ref) for p in pairs])
        elif name == "cost_per_task":
            priced = [p for p in pairs if p[0].cost_usd is not None and p[1].cost_usd is not None]
            if cost_ref is None or not priced:
                continue
            c = np.array([p[0].cost_usd for p in priced], dtype=np.float64)
            s = np.array([p[1].cost_usd for p in priced], dtype=np.float64)
        else:  # label_change: the share of inputs labelled differently, against 0
            labelled = [p for p in pairs if p[0].label is not None and p[1].label is not None]
            if not labelled:
                continue
            c = np.array([float(p[0].label != p[1].label) for p in labelled])
            s = np.zeros(len(labelled))
        state = states.get(name) or fresh_state(name, margin, cost_ref)
        states[name] = canary.observe_matched(state, c, s)


def observe_shadow(ev: Evidence, policy: RolloutPolicy, runs: ShadowRuns) -> Evidence:
    """Pair the new runs by input and feed the pairs to every signal's comparison. A
    reference the rollout started without is taken from the first 30+ stable runs seen."""
    if len(runs.arms) == 0:
        return replace(ev, cursor=max(ev.cursor, runs.cursor))
    arms = np.asarray(runs.arms, dtype=object)
    is_stable = arms == "stable"
    latency_ref, cost_ref = references(ev, runs.latency_ms[is_stable], runs.cost_usd[is_stable])
    paired = pair_by_input(ev.waiting, runs)
    states = dict(ev.states)
    _feed(states, shadow_signals(policy), paired.pairs, latency_ref, cost_ref)
    return replace(
        ev,
        cursor=max(ev.cursor, runs.cursor),
        states=states,
        canary_runs=ev.canary_runs + len(paired.pairs),
        stable_runs=ev.stable_runs
        + (int(is_stable.sum()) if runs.stable_count is None else runs.stable_count),
        latency_ref=latency_ref,
        cost_ref=cost_ref,
        waiting=paired.waiting,
        unpaired=ev.unpaired + paired.unpaired,
    )


@dataclass(frozen=True)
class Comparison:
    """A paired comparison of a fixed set of pairs (``shadow-replay``): each signal's
    verdict at ``alpha_per_signal`` and the overall outcome. ``worse``: some signal shows
    the candidate worse by more than its margin (a candidate no worse is found worse with
    probability at most ``alpha``, all signals together); ``not_worse``: every signal with
    30+ pairs shows it not worse (a candidate worse by a margin passes at most ``alpha``);
    else ``inconclusive``."""

    outcome: str
    verdicts: tuple[canary.CanaryVerdict, ...]
    pairs: int
    alpha: float
    alpha_per_signal: float


def compare(
    pairs: Sequence[tuple[Waiting, Waiting]],
    signals: Mapping[str, float],
    *,
    latency_ref: float | None,
    cost_ref: tuple[float, float] | None,
    alpha: float = canary.ALPHA,
) -> Comparison:
    """Judge (candidate, stable) pairs on ``signals`` (name -> margin), Bonferroni over them."""
    states: dict[str, canary.CanaryState] = {}
    _feed(states, signals, pairs, latency_ref, cost_ref)
    per_signal = alpha / max(1, len(signals))
    verdicts = tuple(
        canary.judge(states[name], per_signal, min_runs=MIN_SIGNAL_PAIRS, arm="candidate")
        for name in signals
        if name in states
    )
    if any(v.outcome == "abort" for v in verdicts):
        outcome = "worse"
    elif verdicts and all(v.outcome == "pass" for v in verdicts if v.pairs >= MIN_SIGNAL_PAIRS):
        outcome = "not_worse" if any(v.outcome == "pass" for v in verdicts) else "inconclusive"
    else:
        outcome = "inconclusive"
    return Comparison(outcome, verdicts, len(pairs), alpha, per_signal)
