"""The rollouts repository on both databases: one running rollout per environment, changes
by compare-and-swap, and the runs each arm served, in arrival order."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from releasegate.domain.rollout import (
    Evidence,
    Rollout,
    RolloutPolicy,
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


def run(i: int, version: str, arm: str | None, *, status: str = "ok") -> tuple[object, ...]:
    record = {
        "run_id": f"run-{i:04d}",
        "workflow": "router",
        "env": "production",
        "version_id": version,
        "started_at": (T0 + timedelta(seconds=i)).timestamp(),
        "latency_ms": 100.0 + i,
        "status": status,
        **({"failure_reason": "boom"} if status == "error" else {}),
        **({"arm": arm} if arm else {}),
    }
    return encode(build_run(record, datetime.now(UTC).timestamp(), 300.0, "sdk"), 1.0)


def test_the_runs_each_arm_served_are_read_in_arrival_order(store: Store) -> None:
    r = new()
    rows = [
        run(1, STABLE, None),  # before the rollout: no arm
        run(2, STABLE, "stable"),
        run(3, CANARY, "canary", status="error"),
        run(4, CANARY, "stable"),  # an arm that does not match its version: not counted
        run(5, STABLE, "stable"),
    ]
    with store.write() as conn:
        assert RunRepo(conn).insert_many(rows) == 5
        assert RunRepo(conn).get("run-0001")["arm"] is None  # type: ignore[index]
        assert RunRepo(conn).get("run-0003")["arm"] == "canary"  # type: ignore[index]
    with store.read() as conn:
        repo = RolloutRepo(conn)
        assert repo.last_run_seq() == 5
        got = repo.arm_runs(r, after_seq=1)
        assert got.arms == ["stable", "canary", "stable"]
        assert got.error.tolist() == [0.0, 1.0, 0.0]
        assert got.latency_ms.tolist() == [102.0, 103.0, 105.0]
        assert got.cursor == 5
        assert repo.arm_runs(r, after_seq=5).arms == []
        latency, cost = repo.reference_runs("router", "production", STABLE, T0.timestamp() + 10)
        assert sorted(latency) == [101.0, 102.0, 105.0]
