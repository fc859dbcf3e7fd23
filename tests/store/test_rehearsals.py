"""The rehearsals repository on both databases: one running rehearsal per environment,
state changes only while it runs, and the latest one by environment."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from releasegate.domain.rehearsal import MutationOutcome, Rehearsal
from releasegate.errors import RehearsalRefusedError
from releasegate.store.engine import Store
from releasegate.store.rehearsals import RehearsalRepo

ORIGINAL, VARIANT = "a" * 64, "b" * 64
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)


def new(rehearsal_id: str = "h1", env: str = "staging", at: datetime = T0) -> Rehearsal:
    return Rehearsal(
        rehearsal_id=rehearsal_id,
        workflow="router",
        env=env,
        original_id=ORIGINAL,
        state="running",
        actor="alice",
        started_at=at,
        updated_at=at,
        runner={"pid": 1, "host": "h"},
    )


def finished(r: Rehearsal) -> Rehearsal:
    return replace(
        r,
        state="finished",
        result="suite-too-weak",
        deployed_id=VARIANT,
        finished_at=r.started_at + timedelta(seconds=5),
        time_to_detect_s=0.5,
        time_to_revert_s=0.25,
        is_restored=True,
        mutations=(
            MutationOutcome(
                "truncate-prompt",
                "kept the first half",
                version_id=VARIANT,
                verdict="fail",
                score=0.4,
                reasons=("accuracy below floor",),
            ),
            MutationOutcome(
                "raise-temperature",
                "0 -> 1.5",
                version_id="c" * 64,
                verdict="pass",
                score=0.9,
                proposed=("releasegate suite add-case suite.yaml --input x",),
            ),
            MutationOutcome("break-tool-schema", "no tools", skipped="the version has no tools"),
        ),
    )


def test_a_rehearsal_round_trips_and_one_runs_per_environment(store: Store) -> None:
    r = new()
    with store.write() as conn:
        RehearsalRepo(conn).add(r)
    with store.read() as conn:
        repo = RehearsalRepo(conn)
        assert repo.active("router", "staging") == r
        assert repo.latest("router", "staging") == r
        assert repo.active("router", "qa") is None
        assert repo.latest("router", "qa") is None
    refused = pytest.raises(RehearsalRefusedError, match="already runs in router@staging")
    with refused, store.write() as conn:
        RehearsalRepo(conn).add(new("h2"))
    with store.write() as conn:
        RehearsalRepo(conn).add(new("h3", env="qa"))  # another environment may


def test_a_finished_rehearsal_frees_the_environment_and_is_the_latest(store: Store) -> None:
    r = new()
    with store.write() as conn:
        RehearsalRepo(conn).add(r)
    done = finished(r)
    with store.write() as conn:
        assert RehearsalRepo(conn).save(done, expected_state="running")
        # a second writer that also saw it running loses: it ended
        assert not RehearsalRepo(conn).save(replace(done, state="undone"), expected_state="running")
    with store.read() as conn:
        repo = RehearsalRepo(conn)
        assert repo.active("router", "staging") is None
        got = repo.latest("router", "staging")
    assert got == done
    assert got is not None and got.mutation_score == 0.5
    assert [m.name for m in got.escaped] == ["raise-temperature"]
    later = new("h2", at=T0 + timedelta(minutes=1))
    with store.write() as conn:
        RehearsalRepo(conn).add(later)  # the environment is free again
    with store.read() as conn:
        assert RehearsalRepo(conn).latest("router", "staging") == later
        assert RehearsalRepo(conn).latest("router") == later
        assert [x.rehearsal_id for x in RehearsalRepo(conn).recent("router")] == ["h2", "h1"]
