"""The rollouts repository on both databases: one running rollout per environment, changes
by compare-and-swap, and the runs each arm served, summed by the database per block."""

from __future__ import annotations

import math
import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from releasegate.domain.rollout import (
    COMPARABLE,
    Evidence,
    Rollout,
    RolloutPolicy,
    RolloutSums,
    aborted,
    advanced,
    begin,
)
from releasegate.domain.runs import build_run
from releasegate.errors import RolloutRefusedError
from releasegate.store.engine import Store
from releasegate.store.rollouts import RolloutRepo
from releasegate.store.runs import RunRepo, encode

STABLE, CANARY = "a" * 64, "b" * 64
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)


def new(rollout_id: str = "r1", env: str = "production") -> Rollout:
    return begin(
        rollout_id=rollout_id,
        workflow="router",
        env=env,
        stable_id=STABLE,
        canary_id=CANARY,
        policy=RolloutPolicy(steps=(5, 50, 100), min_runs_per_step=50),
        at=T0,
        actor="alice",
        evidence=Evidence(cursor=3),
    )


def test_a_rollout_round_trips_and_one_runs_per_environment(store: Store) -> None:
    r = new()
    with store.write() as conn:
        RolloutRepo(conn).add(r)
    with store.read() as conn:
        repo = RolloutRepo(conn)
        assert repo.active("router", "production") == r
        assert repo.latest("router", "production") == r
        assert repo.active("router", "staging") is None
    refused = pytest.raises(RolloutRefusedError, match="a rollout already runs in router@produ")
    with refused, store.write() as conn:
        RolloutRepo(conn).add(new("r2"))
    with store.write() as conn:
        RolloutRepo(conn).add(new("r3", env="staging"))  # another environment may


def test_changes_are_compare_and_swap_and_an_ended_rollout_frees_the_environment(
    store: Store,
) -> None:
    r = new()
    with store.write() as conn:
        RolloutRepo(conn).add(r)
    moved = advanced(r, T0 + timedelta(minutes=1))
    stopped = aborted(r, "error_rate worse", T0 + timedelta(minutes=1))
    with store.write() as conn:
        repo = RolloutRepo(conn)
        assert repo.save(stopped, expected_revision=r.revision)
        assert not repo.save(moved, expected_revision=r.revision)  # the other writer lost
    with store.read() as conn:
        repo = RolloutRepo(conn)
        assert repo.active("router", "production") is None
        got = repo.get("r1")
        assert got is not None and (got.state, got.weight, got.reason) == (
            "aborted",
            0.0,
            "error_rate worse",
        )
    with store.write() as conn:  # an ended rollout is never written again
        assert not RolloutRepo(conn).save(replace(stopped, step=1), expected_revision=2)
        RolloutRepo(conn).add(new("r2"))


def run(
    i: int, version: str, arm: str | None, *, workflow: str = "router", **fields: Any
) -> tuple[object, ...]:
    record = {
        "run_id": f"run-{i:04d}",
        "workflow": workflow,
        "env": "production",
        "version_id": version,
        "started_at": (T0 + timedelta(seconds=i / 10)).timestamp(),
        "latency_ms": 100.0 + i,
        "status": "ok",
        **{k: v for k, v in fields.items() if v is not None},
        **({"arm": arm} if arm else {}),
    }
    if record["status"] == "error":
        record["failure_reason"] = "boom"
    return encode(build_run(record, datetime.now(UTC).timestamp(), 300.0, "sdk"), 1.0)


def test_the_runs_each_arm_served_are_summed_by_the_database_per_block(store: Store) -> None:
    """What ``arm_sums`` returns equals the sums over the matching runs, computed here one
    run at a time: arms that do not match their version, runs of another workflow or from
    before the cursor are left out, NULL feedback and cost counted apart."""
    r = new()
    rng = random.Random(3)
    rows, kept = [], []
    for i in range(1, 1201):
        arm = "canary" if rng.random() < 0.3 else "stable"
        version = CANARY if arm == "canary" else STABLE
        workflow = "router"
        if i % 97 == 0:
            version = STABLE if arm == "canary" else CANARY  # not the rollout's pairing
        if i % 31 == 0:
            workflow = "other"
        fields = {
            "status": "error" if rng.random() < 0.1 else "ok",
            "escalated": rng.random() < 0.2,
            "edited": rng.random() < 0.15,
            "feedback": rng.choice([None, -1.0, 1.0]),
            "cost_usd": rng.choice([None, rng.uniform(0.001, 0.004)]),
            "latency_ms": rng.uniform(50, 250),
            "label": rng.choice([None, "fraud", "billing", "lost-card"]),
        }
        rows.append(run(i, version, arm if i > 1 else None, workflow=workflow, **fields))
        if i > 1 and workflow == "router" and i % 97 != 0:
            kept.append((arm == "canary", fields))
    with store.write() as conn:
        assert RunRepo(conn).insert_many(rows) == 1200
    with store.read() as conn:
        repo = RolloutRepo(conn)
        assert repo.last_run_seq() == 1200
        sums = repo.arm_sums(r, 1, latency_ref=150.0, cost_upper=0.003, labels=True)
        assert repo.arm_sums(r, 1200, 150.0, 0.003) == RolloutSums({}, 0, 0, 1200)
    assert sums.cursor == 1200
    assert sums.canary_runs == sum(c for c, _ in kept)
    assert sums.stable_runs == len(kept) - sums.canary_runs
    error = sums.blocks["error_rate"]
    assert 10 <= len(error.n_stable) <= 30  # blocks of about 64 of the rollout's runs

    def scaled(f: dict[str, Any], name: str) -> float | None:
        if name == "error_rate":
            return float(f["status"] == "error")
        if name == "escalation_rate":
            return float(f["escalated"])
        if name == "edit_rate":
            return float(f["edited"])
        if name == "negative_feedback_rate":
            return None if f["feedback"] is None else float(f["feedback"] < 0)
        if name == "latency_p95":
            return float(f["latency_ms"] > 150.0)
        return None if f["cost_usd"] is None else min(f["cost_usd"], 0.003) / 0.003

    for name, b in sums.blocks.items():
        for is_canary, n, total, sq in (
            (True, b.n_canary, b.sum_canary, b.sq_canary),
            (False, b.n_stable, b.sum_stable, b.sq_stable),
        ):
            values = [v for c, f in kept if c == is_canary and (v := scaled(f, name)) is not None]
            assert int(n.sum()) == len(values), name
            assert float(total.sum()) == pytest.approx(sum(values)), name
            assert float(sq.sum()) == pytest.approx(sum(v * v for v in values)), name
    assert set(sums.blocks) == {*COMPARABLE} - {"label_mix", "quality"}
    mix = sums.labels
    assert mix is not None and list(mix.block) == sorted(mix.block)
    for label in ("fraud", "billing", "lost-card"):
        for is_canary, counted in ((True, mix.canary), (False, mix.stable)):
            want = sum(c == is_canary and f["label"] == label for c, f in kept)
            got = sum(int(n) for x, n in zip(mix.label, counted, strict=True) if x == label)
            assert got == want, (label, is_canary)
    assert set(mix.label) == {"fraud", "billing", "lost-card"}  # no NULL label counted


def test_a_reference_is_read_from_the_first_stable_runs(store: Store) -> None:
    rows = [run(i, STABLE, "stable", latency_ms=100.0 + i) for i in range(1, 6)]
    with store.write() as conn:
        RunRepo(conn).insert_many(rows)
    with store.read() as conn:
        repo = RolloutRepo(conn)
        latency, cost = repo.first_stable_runs(new(), after_seq=1, limit=3)
        assert latency == [102.0, 103.0, 104.0] and all(math.isnan(c) for c in cost)
        latency, cost = repo.reference_runs("router", "production", STABLE, T0.timestamp() + 10)
        assert sorted(latency) == [101.0, 102.0, 103.0, 104.0, 105.0]
