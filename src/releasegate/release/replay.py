"""Shadow replay: the candidate run by releasegate itself on the inputs production already saw.

For a version whose provider releasegate can call (openai-compatible, embedding-router,
python, or a plugin's), ``shadow_replay`` reads the newest runs of the stable version in
the environment (the served ones; runs whose input text was not stored are skipped and
counted), runs the candidate once on each distinct input, and pairs every run with the
candidate's answer to the same input (``domain.shadow.compare``): errors, the share of
inputs labelled differently, and cost where both are priced. Latency is reported, not
judged: a replay runs in a batch on this machine, not under production's load. No
application change is needed. A candidate the project's data rules forbid to receive the
workflow's class of data is refused before any input is sent (exit 1). The result is
audited (``rollout.replayed``) and, when it is the candidate of the rollout running there,
kept as that rollout's evidence; it never changes who is served (``rollout abort`` does).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import numpy as np

from releasegate.domain.results import CaseOutput
from releasegate.domain.rollout import RolloutPolicy, Waiting, reference, shadow_signals
from releasegate.domain.shadow import KEY_CHARS, Comparison, compare
from releasegate.errors import InputError, NotFoundError, RefusedError, RolloutRefusedError
from releasegate.providers.base import Provider
from releasegate.release.data_rules import version_violations
from releasegate.release.evaluate import make_provider
from releasegate.release.gate import current_policy
from releasegate.release.pins import check_pins
from releasegate.release.refs import actor as default_actor
from releasegate.release.refs import check_env, find_version
from releasegate.runner.engine import Progress, call_once
from releasegate.store.audit import AuditRepo
from releasegate.store.engine import Store
from releasegate.store.environments import EnvironmentRepo
from releasegate.store.rollouts import RolloutRepo
from releasegate.store.runs import RecentRun, RunRepo
from releasegate.store.versions import VersionRecord
from releasegate.store.workflows import WorkflowRepo

DEFAULT_LIMIT = 200
MAX_LIMIT = 1_000_000
"""At most this many runs are replayed (a larger number overflowed the database's integer)."""


@dataclass(frozen=True)
class Replayed:
    """What a replay ran and found. ``skipped_no_text``: runs read whose input was not
    stored; ``recorded_on``: the rollout whose evidence now holds it (None: audit only)."""

    workflow: str
    env: str
    candidate_id: str
    stable_id: str
    runs_read: int
    skipped_no_text: int
    distinct_inputs: int
    candidate_errors: int
    latency_ms: tuple[float | None, float | None]
    """Median latency of the stable's recorded runs and of the candidate here."""
    comparison: Comparison
    recorded_on: str | None

    @property
    def is_worse(self) -> bool:
        return self.comparison.outcome == "worse"

    def to_dict(self) -> dict[str, Any]:
        c = self.comparison
        return {
            "workflow": self.workflow,
            "env": self.env,
            "candidate_id": self.candidate_id,
            "stable_id": self.stable_id,
            "runs_read": self.runs_read,
            "skipped_no_text": self.skipped_no_text,
            "pairs": c.pairs,
            "distinct_inputs": self.distinct_inputs,
            "candidate_errors": self.candidate_errors,
            "latency_ms": {"stable": self.latency_ms[0], "candidate": self.latency_ms[1]},
            "outcome": c.outcome,
            "alpha": c.alpha,
            "alpha_per_signal": c.alpha_per_signal,
            "signals": [v.to_dict() for v in c.verdicts],
            "recorded_on": self.recorded_on,
        }


class ReplayPlan(NamedTuple):
    """A replay checked and read from the store, nothing sent to the candidate yet."""

    workflow: str
    env: str
    version: VersionRecord
    stable_id: str
    policy: RolloutPolicy
    recent: list[RecentRun]
    provider: Provider
    concurrency: int


def shadow_replay(
    store: Store,
    workflow: str,
    env: str,
    *,
    candidate: str | None = None,
    limit: int = DEFAULT_LIMIT,
    concurrency: int = 8,
    who: str | None = None,
    require_runs: bool = True,
    progress: Progress | None = None,
) -> Replayed:
    """Replay the newest ``limit`` served runs of ``workflow@env`` on the candidate (the
    running rollout's, or ``candidate``) and compare them pair by pair (module docstring).
    No served runs is a refusal, unless ``require_runs`` is False (a rehearsal, which says
    there was nothing to replay)."""
    planned = plan_replay(
        store,
        workflow,
        env,
        candidate=candidate,
        limit=limit,
        concurrency=concurrency,
        require_runs=require_runs,
    )
    return run_replay(store, planned, who=who, progress=progress)


def plan_replay(
    store: Store,
    workflow: str,
    env: str,
    *,
    candidate: str | None = None,
    limit: int = DEFAULT_LIMIT,
    concurrency: int = 8,
    require_runs: bool = True,
) -> ReplayPlan:
    """Everything ``shadow_replay`` checks and reads before it calls the candidate (every
    refusal is here: a server answers them before it starts the replay)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InputError(f"--limit: expected 1 to {MAX_LIMIT:,}, got {limit}", field="--limit")
    if concurrency < 1:
        raise InputError("must be 1 or more", field="--concurrency")
    with store.read() as conn:
        wf = WorkflowRepo(conn).get(workflow)
        check_env(wf, env)
        running = RolloutRepo(conn).active(workflow, env)
        if candidate is not None:
            version = find_version(conn, candidate)
            if version.workflow != workflow:
                raise InputError(
                    f"--candidate: {version.version_id[:12]} is a version of "
                    f"'{version.workflow}', not of '{workflow}'",
                    field="--candidate",
                )
        elif running is not None:
            version = find_version(conn, running.canary_id)
        else:
            raise InputError(
                f"no rollout runs in {workflow}@{env}: name the version to replay",
                field="--candidate",
                hint=f"`releasegate rollout shadow-replay {workflow} --env {env} "
                "--candidate VERSION`, or start one with `promote VERSION --shadow`",
            )
        if running is not None:
            stable_id = running.stable_id
        else:
            current = EnvironmentRepo(conn).current(workflow, env)
            if current is None:
                raise NotFoundError(
                    f"nothing runs in {workflow}@{env} yet: no production runs to replay"
                )
            stable_id = current[0]
        if version.version_id == stable_id:
            raise InputError(
                f"{version.version_id[:12]} is what runs in {workflow}@{env}: nothing to compare",
                field="--candidate",
            )
        policy = (
            running.policy
            if running is not None
            else current_policy(conn, workflow, env).rollout_or_default
        )
        recent = RunRepo(conn).recent_served(workflow, env, stable_id, limit)
    if not recent and require_runs:
        raise RefusedError(
            f"no runs of {stable_id[:12]} served in {workflow}@{env} to replay: nothing to compare",
            hint="record runs through the SDK (`client.run`) or `releasegate runs import`",
        )
    forbidden = version_violations(version.manifest, wf.data_class)
    if forbidden:  # production's texts must not go where the workflow's class forbids
        raise RefusedError(
            f"replaying {version.version_id[:12]} would send {workflow}'s production inputs "
            "where its data rules forbid: " + "; ".join(v.message() for v in forbidden),
            hint="replay a version whose model and retrieval the rules allow (docs/data-rules.md)",
        )
    provider = make_provider(store, version.manifest)  # a bad manifest fails before any call
    check_pins(store, version)
    return ReplayPlan(workflow, env, version, stable_id, policy, recent, provider, concurrency)


def run_replay(
    store: Store,
    planned: ReplayPlan,
    *,
    who: str | None = None,
    progress: Progress | None = None,
) -> Replayed:
    """Call the candidate on the planned runs' inputs (``progress``: inputs answered of
    all), compare, record."""
    who = who or default_actor()
    workflow, env, version, stable_id, policy, recent, provider, concurrency = planned
    with_text = [r for r in reversed(recent) if r.input is not None]  # oldest first
    texts = list(dict.fromkeys(r.input for r in with_text if r.input is not None))
    outputs = asyncio.run(_complete_all(provider, texts, concurrency, progress)) if texts else {}
    pairs = [(_candidate_run(r, outputs[r.input]), _stable_run(r)) for r in with_text if r.input]
    signals = {k: m for k, m in shadow_signals(policy).items() if k != "latency_p95"}
    ref = reference([], [r.cost_usd for r in recent])
    comparison = compare(pairs, signals, latency_ref=None, cost_ref=ref.cost_ref)
    result = Replayed(
        workflow=workflow,
        env=env,
        candidate_id=version.version_id,
        stable_id=stable_id,
        runs_read=len(recent),
        skipped_no_text=len(recent) - len(with_text),
        distinct_inputs=len(texts),
        candidate_errors=sum(1 for o in outputs.values() if o.error),
        latency_ms=(
            _median([r.latency_ms for r in with_text]),
            _median([o.latency_ms for o in outputs.values()]),
        ),
        comparison=comparison,
        recorded_on=None,
    )
    return _record(store, result, who)


async def _complete_all(
    provider: Provider, texts: Sequence[str], concurrency: int, progress: Progress | None
) -> dict[str, CaseOutput]:
    """The candidate's answer to each text; a failure is that input's answer (an error)."""
    provider.warm(texts)
    limit = asyncio.Semaphore(concurrency)
    done = 0

    async def one(text: str) -> CaseOutput:
        nonlocal done
        async with limit:  # the candidate failing is what a replay looks for: an answer
            answer = await call_once(provider, text)
        done += 1
        if progress is not None:
            progress(done, len(texts))
        return answer

    answers = await asyncio.gather(*(one(t) for t in texts))
    return dict(zip(texts, answers, strict=True))


def _label_of(out: CaseOutput) -> str | None:
    data = out.data if isinstance(out.data, Mapping) else {}
    label = data.get("label")
    if isinstance(label, str):
        return label
    return out.text.strip() or None


def _candidate_run(r: RecentRun, out: CaseOutput) -> Waiting:
    failed = out.error is not None
    return Waiting(
        "shadow",
        (r.input_hash[:KEY_CHARS],),
        float(failed),
        out.latency_ms,
        None if failed else out.cost_usd,
        None if failed or r.label is None else _label_of(out),
    )


def _stable_run(r: RecentRun) -> Waiting:
    cost = None if math.isnan(r.cost_usd) else r.cost_usd
    return Waiting(
        "stable", (r.input_hash[:KEY_CHARS],), float(r.is_error), r.latency_ms, cost, r.label
    )


def _median(values: Sequence[float]) -> float | None:
    return float(np.median(values)) if values else None


def _record(store: Store, result: Replayed, who: str) -> Replayed:
    """Audit the replay and, if it replayed the running rollout's candidate, keep it as
    that rollout's evidence (by compare-and-swap on its revision, retried)."""
    summary = result.to_dict()
    kept = {
        k: summary[k]
        for k in ("candidate_id", "runs_read", "skipped_no_text", "pairs", "outcome", "alpha")
    }
    kept["signals"] = [s["reason"] for s in summary["signals"]]
    for _ in range(5):
        with store.write() as conn:
            repo = RolloutRepo(conn)
            running = repo.active(result.workflow, result.env)
            is_its = running is not None and running.canary_id == result.candidate_id
            on = running if is_its else None
            if on is not None:
                ev = replace(on.evidence, replay=kept)
                saved = replace(on, evidence=ev, revision=on.revision + 1)
                if not repo.save(saved, expected_revision=on.revision):
                    continue  # a check wrote it meanwhile: read it again
            AuditRepo(conn).append(
                kind="rollout.replayed",
                actor=who,
                workflow=result.workflow,
                subject=result.candidate_id,
                payload={
                    "env": result.env,
                    "rollout_id": on.rollout_id if on is not None else None,
                    "stable_id": result.stable_id,
                    **kept,
                },
            )
            return replace(result, recorded_on=on.rollout_id if on is not None else None)
    raise RolloutRefusedError(  # pragma: no cover - five checks in a row in between
        f"the rollout in {result.workflow}@{result.env} kept changing while the replay was "
        "recorded",
        hint="run the replay again",
    )
