"""Rollback rehearsal: degrade the current version on purpose, see the gate and the
rollback do their jobs, and record how long each took.

``rehearse`` derives the mutants of what the environment serves (``domain.mutations``),
registers each as an experiment, evaluates it on the current suite and gates it with the
environment's policy (the same ``evaluate_suite`` and ``gate`` as any change). Then it
deploys the worst variant: the lowest-scoring one the gate let through, through
``promote`` when its verdict is ``pass``; if the gate stopped them all, the lowest-scoring
one, caught by the gate, deployed as an audited ``env.rehearsed`` move. It rolls back with
``rollback --to ORIGINAL`` (the operator's command) and asks ``resolve`` whether the
original serves again. Times: *to detect* is from registering the deployed variant to the
gate decision that stopped it (None when nothing stopped it); *to revert* is from the
rollback's start to ``resolve`` answering the original.

The record (``store.rehearsals``) is written before each step it guards: ``deployed`` is
saved before the alias moves, so a crash at any point leaves a row that says what to
undo. The next ``rehearse`` of that environment finds it, sees its process is gone
(``release.interrupted.is_dead``), and puts the original back if the variant still serves.
An exception in this process (Ctrl-C included) undoes at once and re-raises.
"""

from __future__ import annotations

import asyncio
import math
import os
import shlex
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from releasegate.domain.manifest import Owners, WorkflowSpec
from releasegate.domain.mutations import MUTATIONS, Mutant, mutants
from releasegate.domain.rehearsal import MutationOutcome, Rehearsal, result_of
from releasegate.errors import NotFoundError, RefusedError, RehearsalRefusedError
from releasegate.release.evaluate import evaluate_suite, make_provider, stored_suite
from releasegate.release.gate import GateOutcome, current_policy, gate
from releasegate.release.interrupted import is_dead, running_marker
from releasegate.release.promote import promote, rollback
from releasegate.release.refs import actor as default_actor
from releasegate.release.refs import check_env, find_version
from releasegate.release.register import register_spec
from releasegate.release.replay import Replayed, shadow_replay
from releasegate.release.resolve import resolve
from releasegate.runner.engine import Progress
from releasegate.store.audit import AuditRepo
from releasegate.store.engine import Conn, Store
from releasegate.store.environments import EnvironmentRepo
from releasegate.store.evals import EvalRepo
from releasegate.store.rehearsals import RehearsalRepo
from releasegate.store.rollouts import RolloutRepo
from releasegate.store.rows import now
from releasegate.store.suites import SuiteRepo
from releasegate.store.versions import VersionRecord
from releasegate.store.workflows import WorkflowRecord, WorkflowRepo

PRODUCTION = "production"
MAX_PROPOSALS = 3
"""Proposed cases per mutation the gate let through."""
PROPOSAL_INPUTS = 50
"""Stored run inputs the original and each escaped mutant are run on to find cases."""


@dataclass(frozen=True)
class RehearsalOutcome:
    """A finished rehearsal, what it undid first, and the commands it stands for."""

    rehearsal: Rehearsal
    undone: tuple[Rehearsal, ...]
    deployed_mutation: str | None
    detected_by: str | None  # "gate" (it failed the deployed variant) or "runs" (a replay)
    rollback_command: str
    rollback_error: str | None = None

    @property
    def is_ok(self) -> bool:
        """Exit 0: the original serves again and the gate stopped every mutation."""
        return self.rehearsal.is_passed

    def to_dict(self) -> dict[str, Any]:
        r = self.rehearsal
        return {
            "rehearsal_id": r.rehearsal_id,
            "workflow": r.workflow,
            "env": r.env,
            "result": r.result,
            "ok": self.is_ok,
            "original_id": r.original_id,
            "deployed_id": r.deployed_id,
            "deployed_mutation": self.deployed_mutation,
            "detected_by": self.detected_by,
            "restored": r.is_restored,
            "time_to_detect_s": r.time_to_detect_s,
            "time_to_revert_s": r.time_to_revert_s,
            "mutation_score": r.mutation_score,
            "suite_too_weak": bool(r.escaped or r.inconclusive),
            "escaped": [m.name for m in r.escaped],
            "inconclusive": [m.name for m in r.inconclusive],
            "mutations": [m.to_dict() for m in r.mutations],
            "rollback_command": self.rollback_command,
            "rollback_error": self.rollback_error,
            "undone": [u.rehearsal_id for u in self.undone],
            "started_at": r.started_at.isoformat(),
            "finished_at": r.finished_at.isoformat() if r.finished_at else None,
        }


def last_rehearsal(store: Store, workflow: str, env: str | None = None) -> Rehearsal | None:
    """The newest rehearsal of ``workflow`` (in ``env``, or any environment), or None."""
    with store.read() as conn:
        return RehearsalRepo(conn).latest(workflow, env)


def is_production(environments: Sequence[str], env: str) -> bool:
    """An environment named ``production``, or the most downstream of several."""
    return env == PRODUCTION or (len(environments) > 1 and env == environments[-1])


def rehearse(
    store: Store,
    workflow: str,
    env: str,
    *,
    allow_production: bool = False,
    suite_file: str = "SUITE_FILE",
    who: str | None = None,
    progress: Progress | None = None,
    names: tuple[str, ...] = MUTATIONS,
    crash_at: str | None = None,
) -> RehearsalOutcome:
    """Rehearse a rollback of ``workflow@env`` (see the module docstring).

    ``crash_at`` (``"deployed"``) ends the process right after the variant is deployed,
    as a power cut would: the tests' way to leave a rehearsal for the next run to undo.
    """
    who = who or default_actor()
    wf = _allowed(store, workflow, env, allow_production)
    undone = recover(store, workflow, env, who=who)
    original, suite_id = _serving(store, wf, env)
    planned = mutants(original.manifest, names)
    if not any(m.is_applied for m in planned):
        raise RefusedError(
            f"no mutation applies to {original.version_id[:12]}: nothing to rehearse with",
            hint="; ".join(f"{m.name}: {m.skipped}" for m in planned),
        )
    at = now()
    r = Rehearsal(
        rehearsal_id=uuid.uuid4().hex,
        workflow=workflow,
        env=env,
        original_id=original.version_id,
        state="running",
        actor=who,
        started_at=at,
        updated_at=at,
        suite_id=suite_id,
        runner=running_marker(),
    )
    with store.write() as conn:
        RehearsalRepo(conn).add(r)
        _audit(conn, r, "rehearsal.started", who, mutations=list(names))
    try:
        return _run(store, wf, r, original, planned, suite_file, who, progress, undone, crash_at)
    except BaseException:
        _undo(store, _reload(store, r), who, "the rehearsal stopped with an error")
        raise


def check_rehearsal(store: Store, workflow: str, env: str, *, allow_production: bool) -> None:
    """Refuse, before anything is written, a rehearsal ``rehearse`` would refuse at its
    start (an unknown workflow or environment, production without ``allow_production``,
    nothing served, a rollout running, no suite): a server answers these at once."""
    wf = _allowed(store, workflow, env, allow_production)
    with store.read() as conn:
        crashed = RehearsalRepo(conn).active(workflow, env)
    if crashed is None:  # else what serves may be a crashed rehearsal's variant, undone first
        _serving(store, wf, env)


def _allowed(store: Store, workflow: str, env: str, allow_production: bool) -> WorkflowRecord:
    with store.read() as conn:
        wf = WorkflowRepo(conn).get(workflow)
        check_env(wf, env)
    if is_production(wf.environments, env) and not allow_production:
        raise RehearsalRefusedError(
            f"'{env}' is the production environment of {workflow}: a rehearsal would serve "
            "a degraded version there",
            hint="rehearse on staging, or pass --allow-production to mean it",
        )
    return wf


def _reload(store: Store, r: Rehearsal) -> Rehearsal:
    with store.read() as conn:
        return RehearsalRepo(conn).get(r.rehearsal_id) or r


def _serving(store: Store, wf: WorkflowRecord, env: str) -> tuple[VersionRecord, str]:
    """What the environment serves (the original) and the current suite; refusals first."""
    with store.read() as conn:
        current = EnvironmentRepo(conn).current(wf.name, env)
        if current is None:
            raise RefusedError(
                f"nothing runs in {wf.name}@{env}: there is nothing to rehearse a rollback of",
                hint="promote a version there first",
            )
        if RolloutRepo(conn).active(wf.name, env) is not None:
            raise RehearsalRefusedError(
                f"a rollout runs in {wf.name}@{env}: a rehearsal would pull the ground from "
                "under it",
                hint=f"`releasegate rollout advance|abort {wf.name} --env {env}` first",
            )
        suite_id = SuiteRepo(conn).current_id(wf.name)
        if suite_id is None:
            raise RefusedError(
                f"workflow '{wf.name}' has no suite yet: the gate has nothing to catch a "
                "mutation with",
                hint="run `releasegate eval VERSION --suite FILE` first",
            )
        return find_version(conn, current[0]), suite_id


def _run(
    store: Store,
    wf: WorkflowRecord,
    r: Rehearsal,
    original: VersionRecord,
    planned: Sequence[Mutant],
    suite_file: str,
    who: str,
    progress: Progress | None,
    undone: tuple[Rehearsal, ...],
    crash_at: str | None,
) -> RehearsalOutcome:
    suite = stored_suite(store, r.suite_id or "")
    with store.read() as conn:
        base_eval = EvalRepo(conn).latest(original.version_id, suite.suite_id)
    epochs = base_eval.epochs if base_eval is not None else 1
    outcomes: list[MutationOutcome] = []
    detect_s: dict[str, float] = {}
    for m in planned:
        if m.manifest is None:
            outcomes.append(MutationOutcome(m.name, m.description, skipped=m.skipped))
            continue
        started = time.perf_counter()
        variant = _register_variant(store, wf, original, m, r, who)
        evaluate_suite(store, variant, suite, epochs=epochs, who=who, make_current=False)
        decided = gate(store, variant.version_id, r.env, who=who, progress=progress)
        detect_s[m.name] = time.perf_counter() - started
        outcomes.append(
            MutationOutcome(
                m.name,
                m.description,
                version_id=variant.version_id,
                verdict=decided.verdict,
                score=_score(decided, wf, r.env, store),
                reasons=tuple(decided.decision.reasons),
            )
        )
        r = _save(store, r, "running", mutations=tuple(outcomes))
    worst = _worst(outcomes)
    detected_by = "gate" if worst.is_caught else None
    detection = f"the gate failed it: {'; '.join(worst.reasons)}" if worst.is_caught else ""
    if not worst.is_caught:  # the gate missed it: would the runs it is about to serve tell?
        started = time.perf_counter()
        replayed = shadow_replay(
            store,
            r.workflow,
            r.env,
            candidate=worst.version_id or "",
            who=who,
            require_runs=False,  # none recorded: the rehearsal says so and goes on
        )
        detection = _replay_words(replayed)
        if replayed.is_worse:
            detected_by = "runs"
            detect_s[worst.name] = time.perf_counter() - started
    outcomes = [replace(m, detection=detection) if m is worst else m for m in outcomes]
    worst = replace(worst, detection=detection)
    r = _save(
        store,
        r,
        "running",
        state="deployed",
        deployed_id=worst.version_id,
        mutations=tuple(outcomes),
    )
    _deploy(store, r, worst, who)
    if crash_at == "deployed":
        os._exit(137)  # a crash, on purpose: nothing after this runs, nothing is cleaned
    served = resolve(store, r.workflow, r.env).version_id
    is_deployed = served == worst.version_id
    started = time.perf_counter()
    rollback_error = None
    try:
        rollback(
            store,
            r.workflow,
            r.env,
            to=r.original_id,
            who=who,
            reason=f"rehearsal {r.rehearsal_id[:12]}: roll back {worst.name}",
        )
    except RefusedError as exc:  # the finding itself: the rollback path does not work here
        rollback_error = str(exc)
    is_restored = resolve(store, r.workflow, r.env).version_id == r.original_id
    revert_s = time.perf_counter() - started
    if not is_restored:  # never leave the environment on a degraded version
        _restore(store, r, who, "the rollback did not restore the original")
    escaped = [m for m in outcomes if m.is_escaped]
    held = [m for m in outcomes if m.is_inconclusive]
    weak = escaped or held
    with_cases = _propose(store, original, outcomes, suite_file) if weak else outcomes
    finished = replace(
        r,
        state="finished",
        result=result_of(
            is_restored=is_restored and is_deployed, escaped=len(escaped), inconclusive=len(held)
        ),
        mutations=tuple(with_cases),
        time_to_detect_s=detect_s.get(worst.name) if detected_by else None,
        time_to_revert_s=revert_s,
        is_restored=is_restored,
        finished_at=now(),
        updated_at=now(),
    )
    with store.write() as conn:
        if not RehearsalRepo(conn).save(finished, expected_state="deployed"):
            raise RehearsalRefusedError(
                f"rehearsal {r.rehearsal_id[:12]} was undone by another process meanwhile"
            )
        _audit(
            conn,
            finished,
            "rehearsal.finished",
            who,
            result=finished.result,
            mutation_score=finished.mutation_score,
            escaped=[m.name for m in finished.escaped],
            inconclusive=[m.name for m in finished.inconclusive],
            deployed_id=worst.version_id,
            restored=is_restored,
        )
    return RehearsalOutcome(
        finished,
        undone,
        worst.name,
        detected_by,
        f"releasegate rollback {r.workflow} --env {r.env} --to {r.original_id[:12]}",
        rollback_error,
    )


def _replay_words(replayed: Replayed) -> str:
    """What replaying the original's recorded runs on the variant found, in one line."""
    c = replayed.comparison
    if not c.pairs:
        return "no recorded runs with their input to replay it on"
    worse = [v.signal for v in c.verdicts if v.outcome == "abort"]
    found = f"worse on {', '.join(worse)}" if worse else c.outcome.replace("_", " ")
    return f"replayed on {c.pairs} recorded runs of the original: {found}"


def _register_variant(
    store: Store,
    wf: WorkflowRecord,
    original: VersionRecord,
    m: Mutant,
    r: Rehearsal,
    who: str,
) -> VersionRecord:
    """The mutant as an experiment whose parent is the original; the workflow's metadata
    is written back as it is (a spec without policies changes no policy)."""
    o = wf.owners
    spec = WorkflowSpec(
        name=wf.name,
        description=wf.description,
        stakes=wf.stakes,
        owners=Owners(
            o.get("change"),
            o.get("care"),
            tuple(o.get("approvers") or ()),
            tuple(o.get("business") or ()),
            tuple(o.get("responders") or ()),
        ),
        environments=wf.environments,
        manifest=m.manifest or {},
        monitor=wf.monitor,
    )
    registered = register_spec(
        store,
        spec,
        reason=f"rehearsal {r.rehearsal_id[:12]}: {m.name}: {m.description}",
        parent=original.version_id,
        experiment=True,
        who=who,
    )
    with store.read() as conn:
        return find_version(conn, registered.version_id)


def _score(decided: GateOutcome, wf: WorkflowRecord, env: str, store: Store) -> float | None:
    """The variant's primary metric: the policy's regression metric, else its first floor,
    else the suite's first metric."""
    rows = {m.name: m for m in decided.report.metrics}
    with store.read() as conn:
        policy = current_policy(conn, wf.name, env)
    order = [g.metric for g in policy.regressions] + list(policy.floors) + list(rows)
    for name in order:
        row = rows.get(name)
        if row is not None and row.candidate is not None:
            return float(row.candidate.estimate)
    return None


def _worst(outcomes: Sequence[MutationOutcome]) -> MutationOutcome:
    """The lowest-scoring variant the gate let through; if it stopped them all, the
    lowest-scoring one (an unscored variant counts as the worst)."""
    gated = [m for m in outcomes if m.is_applied]
    pool = [m for m in gated if m.is_escaped] or gated

    def key(m: MutationOutcome) -> float:
        return -math.inf if m.score is None else m.score

    return min(pool, key=key)


def _save(store: Store, r: Rehearsal, expected: str, **changes: Any) -> Rehearsal:
    moved = replace(r, updated_at=now(), **changes)
    with store.write() as conn:
        if not RehearsalRepo(conn).save(moved, expected_state=expected):
            raise RehearsalRefusedError(
                f"rehearsal {r.rehearsal_id[:12]} was undone by another process meanwhile"
            )
    return moved


def _deploy(store: Store, r: Rehearsal, worst: MutationOutcome, who: str) -> None:
    """A variant the gate passed goes out through ``promote``; one it stopped (or that
    waits for approvals) as a rehearsal move, audited as such."""
    vid = worst.version_id or ""
    if worst.verdict == "pass":
        try:
            promote(store, vid, r.env, who=who)
            return
        except RefusedError:  # e.g. the environment moved since the gate: go out as a drill
            pass
    _move(store, r, vid, who, kind="env.rehearsed", action="rehearsal", why=worst.name)


def _move(
    store: Store, r: Rehearsal, to: str, who: str, *, kind: str, action: str, why: str
) -> str:
    """Move ``r``'s environment to ``to`` in one transaction, history and audit included;
    what served before."""
    with store.write() as conn:
        current = EnvironmentRepo(conn).current(r.workflow, r.env, lock=True)
        if current is None:
            raise NotFoundError(f"nothing runs in {r.workflow}@{r.env}")
        if current[0] == to:
            return to
        EnvironmentRepo(conn).move(workflow=r.workflow, env=r.env, version_id=to, expected=current)
        reason = f"rehearsal {r.rehearsal_id[:12]}: {why}"
        EnvironmentRepo(conn).record(
            workflow=r.workflow,
            env=r.env,
            version_id=to,
            previous_id=current[0],
            action=action,
            actor=who,
            decision_id=None,
            reason=reason,
        )
        AuditRepo(conn).append(
            kind=kind,
            actor=who,
            workflow=r.workflow,
            subject=to,
            payload={"env": r.env, "from": current[0], "reason": reason},
        )
        return str(current[0])


def _restore(store: Store, r: Rehearsal, who: str, why: str) -> None:
    """Put the original back when the rollback did not (a rollback move, audited)."""
    _move(store, r, r.original_id, who, kind="env.rolled_back", action="rollback", why=why)


def _undo(store: Store, r: Rehearsal, who: str, why: str) -> Rehearsal | None:
    """Undo what ``r`` left: the original back if its variant still serves; the record
    ``undone`` (result ``interrupted``). None when another process got there first."""
    if not r.is_running:
        return None
    with store.read() as conn:
        current = EnvironmentRepo(conn).current(r.workflow, r.env)
    if r.state == "deployed" and current is not None and current[0] == r.deployed_id:
        _restore(store, r, who, f"undo: {why}")
    done = replace(r, state="undone", result="interrupted", updated_at=now(), finished_at=now())
    with store.write() as conn:
        if not RehearsalRepo(conn).save(done, expected_state=r.state):
            return None
        _audit(conn, done, "rehearsal.undone", who, reason=why, restored=r.original_id)
    return done


def recover(
    store: Store, workflow: str, env: str, *, who: str | None = None
) -> tuple[Rehearsal, ...]:
    """Undo a rehearsal of ``workflow@env`` whose process died; refuse while one is alive."""
    with store.read() as conn:
        running = RehearsalRepo(conn).active(workflow, env)
    if running is None:
        return ()
    if not is_dead(running.runner):
        pid, host = running.runner.get("pid"), running.runner.get("host")
        raise RehearsalRefusedError(
            f"a rehearsal already runs in {workflow}@{env} (pid {pid} on {host}, "
            f"since {running.started_at:%Y-%m-%d %H:%M} UTC)",
            hint="wait for it to finish; one whose process died is undone by the next run",
        )
    done = _undo(store, running, who or default_actor(), "its process ended mid-rehearsal")
    return () if done is None else (done,)


def _audit(conn: Conn, r: Rehearsal, kind: str, who: str, **payload: Any) -> None:
    AuditRepo(conn).append(
        kind=kind,
        actor=who,
        workflow=r.workflow,
        subject=r.rehearsal_id,
        payload={"env": r.env, "original_id": r.original_id, **payload},
    )


# -- cases that would have caught a mutation ------------------------------------------------


def _propose(
    store: Store,
    original: VersionRecord,
    outcomes: Sequence[MutationOutcome],
    suite_file: str,
) -> list[MutationOutcome]:
    """For each mutation the gate let through or could not tell from the original: stored
    run inputs on which the mutant
    answers differently from the original, as ``suite add-case`` lines (the original's
    answer expected: review it before pasting)."""
    with store.read() as conn:
        inputs = RehearsalRepo(conn).run_inputs(original.workflow, PROPOSAL_INPUTS)
    if not inputs:
        return [
            replace(
                m,
                proposed=(
                    "# no stored run inputs to propose cases from: record runs "
                    "with their input (client.run(..., input=...))",
                ),
            )
            if _weak(m)
            else m
            for m in outcomes
        ]
    texts = [text for _, text in inputs]
    base = _answers(store, original.manifest, texts)
    with store.read() as conn:
        manifests = {
            m.name: find_version(conn, m.version_id or "").manifest for m in outcomes if _weak(m)
        }
    out = []
    for m in outcomes:
        if not _weak(m):
            out.append(m)
            continue
        got = _answers(store, manifests[m.name], texts)
        lines = [
            _add_case_line(suite_file, run_id, expected, m.name)
            for (run_id, _), expected, answer in zip(inputs, base, got, strict=True)
            if expected is not None and answer != expected
        ][:MAX_PROPOSALS]
        if not lines:
            lines = [f"# no stored run input tells it from the original ({len(texts)} tried)"]
        out.append(replace(m, proposed=tuple(lines)))
    return out


def _weak(m: MutationOutcome) -> bool:
    return m.is_escaped or m.is_inconclusive


def _answers(store: Store, manifest: Mapping[str, Any], texts: Sequence[str]) -> list[str | None]:
    """What the version answers to each input (None where it errored)."""
    provider = make_provider(store, manifest)
    provider.warm(list(texts))

    async def ask() -> list[str | None]:
        outs = await asyncio.gather(*(provider.complete(t) for t in texts))
        return [None if o.error else o.text for o in outs]

    return asyncio.run(ask())


def _add_case_line(suite_file: str, run_id: str, expected: str, mutation: str) -> str:
    return " ".join(
        [
            "releasegate suite add-case",
            shlex.quote(suite_file),
            "--from-run",
            shlex.quote(run_id),
            "--expected",
            shlex.quote(expected),
            "--reason",
            shlex.quote(f"rehearsal: the suite did not catch {mutation}"),
            "--tag rehearsal",
        ]
    )
