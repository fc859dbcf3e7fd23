"""Progressive rollout: the request path with a rollout active, and the check's error rates.

``python benchmarks/bench_rollout.py [--quick] [--runs N] [--repetitions N]`` prints:

1. ``client.resolve(wf, env=..., key=K)`` hot in-process (the cache warm, distinct keys),
   with no rollout, with a rollout at 25%, and with a shadow rollout (the stable served,
   ``version.shadow`` set), and the key split alone (``Splitter``): µs per call, the
   median of ``--runs`` repetitions of 200,000 calls each, every repetition in a fresh
   temp project and store. Target: <= 2 µs with a rollout (canary or shadow) active.
2. False aborts over a whole ramp: SYNTHETIC runs (no real data), a canary as good as the
   stable (error rate 5%, latency gamma(4, 100) ms, cost uniform), steps 5/25/50/100,
   ``min_runs_per_step`` 200, auto-advance, signals error_rate + latency_p95 +
   cost_per_task, a check every N runs (N = 50 / 500), each rollout followed until it
   completes or 100,000 runs: share aborted (target <= 5%), share completed.
3. Detection: the same with the canary's error rate 3x the stable's (15% vs 5%): share
   aborted in the first step, median runs to the abort.
5. Shadow (paired by input), SYNTHETIC: each request's stable run and its shadow run share
   the input's difficulty (an input is hard with probability 10%; 40% of hard inputs fail
   on either version, an easy one fails 0.6% of the time: 5% overall), a check every 10
   pairs, signal error_rate (margin 2 pt): false aborts of an equal shadow over 5,000
   pairs, pairs until an equal one is shown not worse, and pairs to the abort of a shadow
   with 3x the errors (its easy inputs failing 11.7%); each against a canary at 50% fed
   the same error rates (its pairs are two different requests).
6. ``--shadow-check``: the first ``rollout check`` of a shadow rollout over 1,000,000 stored
   runs (SQLite), 10% of them shadow runs of the served run before them.
4. ``rollout check`` over 1,000,000 stored runs (SQLite, and PostgreSQL with
   ``--postgres URL``; a rollout at 25%, every run served under it, synthetic values): the
   first check, which has the database sum them all, in-process and in a fresh process
   (the rollout rewound before each), and the next one (no new runs), median of
   ``--runs``, wall and CPU. Target: <= 1 s.
Speed lives here, never in test asserts; other work on the machine inflates the wall
figures alike.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from bench_loop import (
    ENV,
    WORKFLOW,
    project,
    ship,
    store_run_rows,
    suite_file,
    temp_pg_database,
    workflow_file,
)
from releasegate import Client
from releasegate.domain.rollout import (
    ArmRuns,
    Evidence,
    Mode,
    Rollout,
    RolloutPolicy,
    Splitter,
    advanced,
    assess,
    begin,
    observe_runs,
    reference,
)
from releasegate.domain.shadow import ShadowRuns, observe_shadow
from releasegate.domain.stats import wilson_interval
from releasegate.release import rollout
from releasegate.release.evaluate import evaluate
from releasegate.release.gate import gate
from releasegate.release.register import register
from releasegate.store.engine import Location, Store
from releasegate.store.runs import RUN_COLUMNS

CALLS = 200_000
T0 = datetime(2026, 12, 3, tzinfo=UTC)


def _time_resolve(client: Client, keys: list[str]) -> tuple[float, float]:
    """(wall, CPU) µs per call."""
    resolve = client.resolve
    c0, t0 = time.process_time(), time.perf_counter()
    for key in keys:
        resolve(WORKFLOW, env=ENV, key=key)
    n = len(keys)
    return (time.perf_counter() - t0) / n * 1e6, (time.process_time() - c0) / n * 1e6


def bench_resolve(runs: int) -> None:
    plain, active, repeat, split_only, shadow = [], [], [], [], []
    keys = [f"customer-{i}" for i in range(CALLS)]
    users = [f"user-{i % 10_000}" for i in range(CALLS)]  # 10,000 users, 20 requests each
    for _ in range(runs):
        with project() as (root, store):
            ship(root, store)
            with Client(store=store, ttl=3600) as client:
                client.resolve(WORKFLOW, env=ENV, key="warm")
                plain.append(_time_resolve(client, keys))
            path = workflow_file(root, 1)
            vid = register(store, path, who="alice").version_id
            evaluate(store, vid, suite_file(root, 20), who="alice")
            assert gate(store, vid, ENV, who="ci").verdict == "pass"
            rollout.start(store, vid, ENV, canary_pct=25, who="alice")
            with Client(store=store, ttl=3600) as client:
                assert client.resolve(WORKFLOW, env=ENV, key="warm").arm is not None
                active.append(_time_resolve(client, keys))
                repeat.append(_time_resolve(client, users))
                canary = sum(client.resolve(WORKFLOW, env=ENV, key=k).arm == "canary" for k in keys)
            rollout.abort(store, WORKFLOW, ENV, who="alice")
            rollout.start(store, vid, ENV, shadow=True, who="alice")
            with Client(store=store, ttl=3600) as client:
                assert client.resolve(WORKFLOW, env=ENV, key="warm").shadow is not None
                shadow.append(_time_resolve(client, keys))
            split = Splitter("0123456789abcdef", 25.0)
            t0 = time.perf_counter()
            for key in keys:
                split.is_canary(key)
            split_only.append((time.perf_counter() - t0) / len(keys) * 1e6)
    print(f"resolve hot, in-process, {CALLS:,} calls, median of {runs}: µs per call, wall / CPU")
    for name, got in (
        ("no rollout, distinct keys", plain),
        ("rollout at 25%, distinct keys (target <= 2)", active),
        ("rollout at 25%, 10,000 users x 20 requests", repeat),
        ("shadow rollout, distinct keys (target <= 2)", shadow),
    ):
        wall, cpu = (statistics.median(g[i] for g in got) for i in (0, 1))
        print(f"  {name:<46} {wall:6.3f} / {cpu:6.3f}  {_all([g[0] for g in got])}")
    print(
        f"  {'the key split alone (Splitter), distinct keys':<46} "
        f"{statistics.median(split_only):6.3f}"
    )
    print(f"  canary share of the keys: {canary / CALLS:.2%} (weight 25%)\n")


def _all(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.3f}" for v in values) + "]"


def _batch(
    rng: np.random.Generator, n: int, weight: float, p_canary: float, cursor: int
) -> ArmRuns:
    is_canary = rng.random(n) < weight / 100
    error = np.where(is_canary, rng.random(n) < p_canary, rng.random(n) < 0.05)
    return ArmRuns(
        arms=np.where(is_canary, "canary", "stable").tolist(),
        error=error.astype(np.float64),
        escalated=np.zeros(n),
        edited=np.zeros(n),
        feedback=np.full(n, np.nan),
        latency_ms=rng.gamma(4.0, 100.0, n),
        cost_usd=0.002 + rng.random(n) * 0.001,
        cursor=cursor + n,
    )


POLICY = RolloutPolicy(
    steps=(5, 25, 50, 100),
    min_runs_per_step=200,
    max_step_hours=None,
    auto_advance=True,
    signals={"error_rate": 0.02, "latency_p95": 0.05, "cost_per_task": 0.10},
)


def drive(seed: int, p_canary: float, every: int, max_runs: int) -> tuple[str, int, int]:
    """One rollout checked every ``every`` runs: (how it ended, at which step, runs seen)."""
    rng = np.random.default_rng(seed)
    before = _batch(rng, 2000, 0.0, 0.05, 0)
    r: Rollout = begin(
        rollout_id=f"r{seed}",
        workflow="w",
        env="e",
        stable_id="a" * 64,
        canary_id="b" * 64,
        policy=POLICY,
        at=T0,
        actor="bench",
        evidence=reference(before.latency_ms, before.cost_usd),
    )
    seen = 0
    while seen < max_runs:
        runs = _batch(rng, every, r.weight, p_canary, seen)
        seen += every
        r = replace(r, evidence=observe_runs(r.evidence, POLICY, runs))
        action = assess(r, now=T0).action
        if action == "abort":
            return "aborted", r.step, seen
        if action == "advance":
            r = advanced(r, T0)
            if r.state == "completed":
                return "completed", r.step, seen
    return "running", r.step, seen


def _share(k: int, n: int) -> str:
    lo, hi = wilson_interval(k, n)
    return f"{k / n:6.1%} [{lo:5.1%}, {hi:5.1%}]"


def bench_errors(reps: int, seed: int) -> None:
    print(f"Healthy canary over the whole ramp, {reps} rollouts (synthetic), to 100,000 runs")
    print(f"{'check every':>11}   {'aborted (<= 5%)':>24}   {'completed':>24}  median runs")
    for every in (50, 500):
        ends = [drive(seed + i, 0.05, every, 100_000) for i in range(reps)]
        aborted = sum(e[0] == "aborted" for e in ends)
        done = [e[2] for e in ends if e[0] == "completed"]
        med = f"{statistics.median(done):,.0f}" if done else "-"
        print(f"{every:>11}   {_share(aborted, reps):>24}   {_share(len(done), reps):>24}  {med}")
    print()
    print(f"Canary error rate 3x the stable's (15% vs 5%), {reps} rollouts, check every 50 runs")
    ends = [drive(seed + 10_000 + i, 0.15, 50, 100_000) for i in range(reps)]
    first = [e for e in ends if e[0] == "aborted" and e[1] == 0]
    med = statistics.median(e[2] for e in first) if first else float("nan")
    print(f"  aborted in the first step (5%): {_share(len(first), reps)}, median {med:,.0f} runs")
    print()


def _paired_errors(
    rng: np.random.Generator, n: int, p_easy_candidate: float
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(stable, candidate) errors of ``n`` requests sharing each input's difficulty."""
    hard = rng.random(n) < 0.10
    fails = rng.random(n) < 0.40  # a hard input that fails fails on either version
    stable = np.where(hard, fails, rng.random(n) < 0.006)
    candidate = np.where(hard, fails, rng.random(n) < p_easy_candidate)
    return stable.astype(np.float64), candidate.astype(np.float64)


SHADOW_POLICY = replace(POLICY, signals={"error_rate": 0.02}, min_runs_per_step=10**9)


def _begun(rollout_id: str, policy: RolloutPolicy, mode: Mode) -> Rollout:
    return begin(
        rollout_id=rollout_id,
        workflow="w",
        env="e",
        stable_id="a" * 64,
        canary_id="b" * 64,
        policy=policy,
        at=T0,
        actor="bench",
        evidence=Evidence(),
        mode=mode,
    )


def drive_shadow(seed: int, p_easy: float, every: int, max_pairs: int) -> tuple[str, int]:
    """A shadow checked every ``every`` pairs: (aborted | passed | running, pairs seen)."""
    rng = np.random.default_rng(seed)
    r = _begun(f"s{seed}", SHADOW_POLICY, "shadow")
    seen = 0
    while seen < max_pairs:
        stable, candidate = _paired_errors(rng, every, p_easy)
        keys = [f"{seen + i}" for i in range(every)]
        runs = ShadowRuns(
            arms=["stable", "shadow"] * every,
            keys=[k for k in keys for _ in "ab"],
            error=np.column_stack([stable, candidate]).ravel(),
            latency_ms=np.full(2 * every, 10.0),
            cost_usd=np.full(2 * every, np.nan),
            labels=["a"] * (2 * every),
            cursor=0,
        )
        seen += every
        r = replace(r, evidence=observe_shadow(r.evidence, SHADOW_POLICY, runs))
        ended = _ended(r)
        if ended:
            return ended, seen
    return "running", seen


def _ended(r: Rollout) -> str | None:
    """aborted, passed (error_rate shown not worse), or None."""
    outcome = assess(r, now=T0)
    if outcome.action == "abort":
        return "aborted"
    if any(v.signal == "error_rate" and v.outcome == "pass" for v in outcome.verdicts):
        return "passed"
    return None


def drive_unpaired(seed: int, p_easy: float, every: int, max_runs: int) -> tuple[str, int]:
    """The same error rates as two arms of a canary at 50% (pairs of different requests)."""
    rng = np.random.default_rng(seed)
    policy = replace(SHADOW_POLICY, steps=(50.0, 100.0))
    r = _begun(f"u{seed}", policy, "canary")
    seen = 0
    while seen < max_runs:
        stable, _ = _paired_errors(rng, every, p_easy)
        _, candidate = _paired_errors(rng, every, p_easy)
        n = 2 * every
        runs = ArmRuns(
            arms=["stable", "canary"] * every,
            error=np.column_stack([stable, candidate]).ravel(),
            escalated=np.zeros(n),
            edited=np.zeros(n),
            feedback=np.full(n, np.nan),
            latency_ms=np.full(n, 10.0),
            cost_usd=np.full(n, np.nan),
            cursor=0,
        )
        seen += every
        r = replace(r, evidence=observe_runs(r.evidence, policy, runs))
        ended = _ended(r)
        if ended:
            return ended, seen
    return "running", seen


def bench_shadow(reps: int, seed: int) -> None:
    print(f"Shadow, paired by input (synthetic), {reps} rollouts, a check every 10 pairs")
    arms = (("shadow (paired)", drive_shadow), ("canary (unpaired)", drive_unpaired))
    for name, drive_one in arms:
        equal = [drive_one(seed + i, 0.006, 10, 5000) for i in range(reps)]
        aborted = sum(e[0] == "aborted" for e in equal)
        passed = [e[1] for e in equal if e[0] == "passed"]
        med = f"{statistics.median(passed):,.0f}" if passed else "-"
        print(
            f"  equal, {name:<18} aborted (<= 5%) {_share(aborted, reps)}; shown not worse "
            f"within 5,000 pairs {_share(len(passed), reps)}, median {med} pairs"
        )
    for name, drive_one in arms:
        ends = [drive_one(seed + 20_000 + i, 0.117, 10, 5000) for i in range(reps)]
        hit = [e[1] for e in ends if e[0] == "aborted"]
        med = f"{statistics.median(hit):,.0f}" if hit else "-"
        print(
            f"  3x errors, {name:<18} aborted within 5,000 pairs "
            f"{_share(len(hit), reps)}, median {med} pairs"
        )
    print()


def _million_runs(
    store: Any, stable: str, canary: str, start: float, n: int, shadow: bool = False
) -> None:
    """``n`` runs under a canary at 25%; with ``shadow``, 10% are shadow runs, each of the
    input of the served run before it (an input hash per run)."""
    rng = np.random.default_rng(3)
    is_canary = rng.random(n) < (0.10 if shadow else 0.25)
    other = "shadow" if shadow else "canary"
    failed = rng.random(n) < 0.05
    latency = rng.gamma(4.0, 100.0, n)
    blank = dict.fromkeys(RUN_COLUMNS, "")
    blank.update(
        tokens_in=10, tokens_out=2, cost_usd=float("nan"), retries=0, escalated=0, edited=0,
        feedback=float("nan"), output_chars=-1, input=None, output=None, source="sdk",
        received_at=start, workflow=WORKFLOW, env=ENV,
    )  # fmt: skip
    rows = []
    for i in range(n):
        row = dict(blank)
        row.update(
            run_id=f"bench-{i:08d}",
            version_id=canary if is_canary[i] else stable,
            arm=other if is_canary[i] else "stable",
            input_hash=f"{i - 1 if is_canary[i] else i:016x}{'0' * 48}" if shadow else "",
            started_at=start + i * 1e-3,
            ended_at=start + i * 1e-3 + latency[i] / 1000,
            latency_ms=float(latency[i]),
            status="error" if failed[i] else "ok",
            failure_reason="boom" if failed[i] else "",
        )
        rows.append(tuple(row[c] for c in RUN_COLUMNS))
    store_run_rows(store, rows)


FRESH = """
import json, sys, time
t0, c0 = time.perf_counter(), time.process_time()
from releasegate.release import rollout
from releasegate.store.engine import Store
store = Store.open(create=False)
t1, c1 = time.perf_counter(), time.process_time()
checked = rollout.check(store, sys.argv[1], sys.argv[2], who="bench")
t2, c2 = time.perf_counter(), time.process_time()
print(json.dumps([t2 - t0, c2 - c0, t2 - t1, c2 - c1, checked.runs_read]))
"""
"""One check in a new process: (wall, CPU) with the imports and the store's opening, and
of the check alone."""


@contextlib.contextmanager
def _dialect_project(dialect: str, pg_admin: str) -> Iterator[tuple[Path, Store, dict[str, str]]]:
    """``bench_loop.project()`` on SQLite; on PostgreSQL a fresh database of the same shape
    (created at ``pg_admin``, dropped after). Yields the project dir, the store, and the
    environment a ``releasegate`` subprocess needs to open it."""
    if dialect == "sqlite":
        with project() as (root, store):
            yield root, store, {"RELEASEGATE_DIR": str(root)}
        return
    with temp_pg_database(pg_admin) as url, project() as (root, sqlite_store):
        sqlite_store.close()
        home = root / ".releasegate"
        store = Store.open(location=Location(url, home / "blobs", False, home))
        try:
            yield root, store, {"RELEASEGATE_DIR": str(root), "RELEASEGATE_DATABASE_URL": url}
        finally:
            store.close()


def _rewind(store: Store, evidence_json: str) -> None:
    """The rollout as it was before its first check: the same million runs to read."""
    with store.write() as conn:
        conn.execute(
            sa.text(
                "UPDATE rollouts SET evidence_json = :e, state = 'running', active = :a,"
                " step = 0, weight = 25, revision = 1, reason = ''"
            ),
            {"e": evidence_json, "a": f"{WORKFLOW}@{ENV}"},
        )


def bench_check(runs: int, n: int, pg_admin: str | None) -> None:
    dialects = ["sqlite", *(["postgresql"] if pg_admin else [])]
    for dialect in dialects:
        inproc: list[tuple[float, float]] = []
        fresh: list[list[float]] = []
        again: list[float] = []
        with _dialect_project(dialect, pg_admin or "") as (root, store, env):
            stable = ship(root, store)
            vid = register(store, workflow_file(root, 1), who="alice").version_id
            evaluate(store, vid, suite_file(root, 20), who="alice")
            assert gate(store, vid, ENV, who="ci").verdict == "pass"
            r = rollout.start(store, vid, ENV, canary_pct=25, who="alice")
            _million_runs(store, stable, vid, r.started_at.timestamp(), n)
            if dialect == "postgresql":
                with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                    c.execute(sa.text("VACUUM ANALYZE runs"))
            with store.read() as conn:
                saved = conn.execute(sa.text("SELECT evidence_json FROM rollouts")).scalar_one()
            for _ in range(runs):
                _rewind(store, saved)
                t0, c0 = time.perf_counter(), time.process_time()
                checked = rollout.check(store, WORKFLOW, ENV, who="bench")
                inproc.append((time.perf_counter() - t0, time.process_time() - c0))
                assert checked.runs_read == n, checked.runs_read
                t0 = time.perf_counter()
                rollout.check(store, WORKFLOW, ENV, who="bench")
                again.append(time.perf_counter() - t0)
            for _ in range(runs):
                _rewind(store, saved)
                out = subprocess.run(
                    [sys.executable, "-c", FRESH, WORKFLOW, ENV],
                    env={**os.environ, **env},
                    cwd=root,
                    capture_output=True,
                    text=True,
                    check=True,
                )
                got = json.loads(out.stdout.strip().splitlines()[-1])
                assert got[4] == n, got
                fresh.append(got[:4])
        med = statistics.median
        print(f"rollout check over {n:,} stored runs ({dialect}), median of {runs} (s)")
        rows = (
            ("in-process, first check, wall (target <= 1)", [w for w, _ in inproc]),
            ("in-process, first check, CPU of this process", [c for _, c in inproc]),
            ("fresh process, the check alone, wall", [f[2] for f in fresh]),
            ("fresh process, the check alone, CPU", [f[3] for f in fresh]),
            ("fresh process, with imports and opening, wall", [f[0] for f in fresh]),
            ("fresh process, with imports and opening, CPU", [f[1] for f in fresh]),
            ("the next check, no new runs, wall", again),
        )
        for label, values in rows:
            print(f"  {label:<50} {med(values):6.3f}  {_all(values)}")
        print()


def bench_shadow_check(runs: int, n: int) -> None:
    """The first ``rollout check`` of a shadow rollout over ``n`` stored runs (SQLite)."""
    first, cpu = [], []
    for _ in range(runs):
        with project() as (root, store):
            stable = ship(root, store)
            vid = register(store, workflow_file(root, 1), who="alice").version_id
            evaluate(store, vid, suite_file(root, 20), who="alice")
            assert gate(store, vid, ENV, who="ci").verdict == "pass"
            r = rollout.start(store, vid, ENV, shadow=True, who="alice")
            _million_runs(store, stable, vid, r.started_at.timestamp(), n, shadow=True)
            t0, c0 = time.perf_counter(), time.process_time()
            checked = rollout.check(store, WORKFLOW, ENV, who="bench")
            first.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            assert checked.runs_read == n, checked.runs_read
            pairs = checked.rollout.evidence.canary_runs
    print(f"shadow rollout check over {n:,} stored runs, 10% shadow (SQLite), median of {runs}")
    print(f"  first check, wall (s)  {statistics.median(first):6.3f}  {_all(first)}")
    print(f"  first check, CPU (s)   {statistics.median(cpu):6.3f}  {_all(cpu)}; {pairs:,} pairs\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--repetitions", type=int, default=400)
    parser.add_argument("--seed", type=int, default=20261203)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--check-runs", type=int, default=1_000_000)
    parser.add_argument("--only-check", action="store_true")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help="also on PostgreSQL: an admin URL such as postgresql+psycopg://postgres@127.0.0.1:5432",
    )
    parser.add_argument("--only-shadow", action="store_true")
    parser.add_argument("--shadow-check", action="store_true", help="only the shadow check")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.repetitions = 3, 50
    started = time.perf_counter()
    if args.only_check:
        bench_check(args.runs, args.check_runs, args.postgres)
        return
    if args.shadow_check:
        bench_shadow_check(args.runs, args.check_runs)
        return
    if args.only_shadow:
        bench_resolve(args.runs)
        bench_shadow(args.repetitions, args.seed)
        return
    bench_resolve(args.runs)
    bench_check(args.runs, args.check_runs, args.postgres)
    bench_errors(args.repetitions, args.seed)
    bench_shadow(args.repetitions, args.seed)
    print(f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
