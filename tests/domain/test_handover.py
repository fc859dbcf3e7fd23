"""The handover checklist, the stage in effect, normal ranges and the rollback target:
pure rules, tested without a store."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from releasegate.domain.handover import (
    HandoverFacts,
    StageRecord,
    TrackedNumber,
    normal_range,
    parse_day,
    parse_stage,
    readiness,
    stage_state,
)
from releasegate.domain.promotion import step_back
from releasegate.domain.rehearsal import Rehearsal
from releasegate.errors import InputError

NOW = datetime(2026, 12, 3, 12, tzinfo=UTC)


def number(name: str = "latency_p95", target: float | None = 250.0) -> TrackedNumber:
    return TrackedNumber(
        name, name, "production", "ms", "max", target, "budget", 40.0, 30.0, 60.0, 14, "runs"
    )


def rehearsal(finished: datetime | None, result: str | None = "passed") -> Rehearsal:
    started = (finished or NOW) - timedelta(minutes=2)
    return Rehearsal(
        "r1", "triage", "staging", "a" * 64, "finished" if finished else "running", "alice",
        started, finished or started, result=result, finished_at=finished,
        time_to_detect_s=2.5, time_to_revert_s=0.4, is_restored=result != "not-restored",
    )  # fmt: skip


READY = HandoverFacts(
    workflow="triage",
    now=NOW,
    change_owner="alice",
    care_owner="ops",
    responders=("oncall",),
    tracked=(number("quality", 0.7), number()),
    alert_routes=("slack ($SLACK)",),
    alert_rules=1,
    untested_rules=(),
    delivered=("slack ($SLACK)",),
    last_alert="2026-12-01 10:00 UTC, error_rate in production",
    escalations=("unsure messages go to a person",),
    rehearsal=rehearsal(NOW - timedelta(days=10)),
    runs=1400,
    runs_unregistered=0,
    versions_seen=("a" * 64,),
    in_flight=(),
)


def test_a_workflow_with_every_fact_is_ready() -> None:
    r = readiness(READY)
    assert r.is_ready and r.failing == () and r.verdict == "ready for routine operation"
    assert [line.key for line in r.lines] == [
        "owners",
        "tracked_numbers",
        "alerts",
        "escalation",
        "rollback_rehearsed",
        "runs_recorded",
        "nothing_pending",
    ]
    assert all(line.fix == "" for line in r.lines)


def test_a_rehearsal_whose_suite_was_too_weak_still_proves_the_rollback() -> None:
    weak = dataclasses.replace(READY, rehearsal=rehearsal(NOW, "suite-too-weak"))
    assert readiness(weak).is_ready


@pytest.mark.parametrize(
    ("change", "failing", "evidence"),
    [
        ({"care_owner": None}, "owners", "care owner: none"),
        ({"tracked": (number(target=None),)}, "tracked_numbers", "no target"),
        ({"tracked": ()}, "tracked_numbers", "no tracked number"),
        ({"alert_routes": ()}, "alerts", "no route"),
        ({"delivered": ()}, "alerts", "never delivered through slack ($SLACK)"),
        ({"responders": ()}, "escalation", "responders: none"),
        ({"escalations": ()}, "escalation", "nothing is sent to a human"),
        ({"rehearsal": None}, "rollback_rehearsed", "never rehearsed"),
        ({"untested_rules": ("error_rate",)}, "alerts", "rules that never fired: error_rate"),
        (
            {"rehearsal": rehearsal(NOW - timedelta(days=91))},
            "rollback_rehearsed",
            "last rehearsal 2026-09-03 on staging: passed",
        ),
        (
            {"rehearsal": rehearsal(NOW, "not-restored")},
            "rollback_rehearsed",
            "not-restored, detected in 2.5 s, reverted in 0.4 s",
        ),
        ({"rehearsal": rehearsal(None, None)}, "rollback_rehearsed", "is running since"),
        ({"runs": 0, "versions_seen": ()}, "runs_recorded", "0 runs"),
        ({"runs_unregistered": 3}, "runs_recorded", "3 name a version never registered"),
        ({"in_flight": ("production paused",)}, "nothing_pending", "production paused"),
    ],
)
def test_each_missing_fact_fails_its_line_with_evidence_and_a_fix(
    change: dict[str, object], failing: str, evidence: str
) -> None:
    r = readiness(dataclasses.replace(READY, **change))  # type: ignore[arg-type]
    assert r.failing == (failing,)
    line = next(line for line in r.lines if line.key == failing)
    assert evidence in line.evidence and line.fix
    assert not r.is_ready and r.verdict == "not ready: 1 of 7 checks fail"
    assert r.as_dict()["ready"] is False


def stage(name: str, day: date) -> StageRecord:
    return StageRecord("triage", name, day, "alice", "ops", "alice", "", False, (), NOW)


def test_the_stage_in_effect_is_the_latest_whose_date_has_come() -> None:
    today = date(2026, 12, 3)
    assert stage_state("triage", [], today).stage == "experiment"
    history = [stage("pilot", date(2026, 11, 1)), stage("routine", date(2026, 12, 20))]
    state = stage_state("triage", history, today)
    assert state.stage == "pilot" and state.scheduled is not None
    assert state.scheduled.stage == "routine"
    later = stage_state("triage", history, date(2026, 12, 20))
    assert later.stage == "routine" and later.scheduled is None
    # a later record with an earlier date replaces what it overlaps
    back = [*history, stage("pilot", date(2026, 12, 1))]
    assert stage_state("triage", back, today).scheduled is None


def test_bad_stage_and_date_name_the_field() -> None:
    assert parse_stage(" Routine ") == "routine"
    with pytest.raises(InputError) as bad:
        parse_stage("prod")
    assert bad.value.field == "STAGE"
    assert parse_day("2026-12-18") == date(2026, 12, 18)
    with pytest.raises(InputError) as day:
        parse_day("18/12/2026")
    assert day.value.field == "--date"


def test_the_normal_range_is_of_days_and_skips_thin_days() -> None:
    rng = np.random.default_rng(1)
    days = 10
    started = np.repeat(np.arange(days) * 86400.0, 100) + rng.uniform(0, 86000, days * 100)
    values = np.repeat(np.arange(days, dtype=float), 100)  # day d: every value is d
    thin = np.array([days * 86400.0 + 5])  # one run on an eleventh day: left out
    got = normal_range(np.concatenate([started, thin]), np.concatenate([values, [1e6]]), "mean")
    assert got.days == days
    assert got.typical == pytest.approx(4.5)
    assert got.low == pytest.approx(np.quantile(np.arange(days), 0.1))
    assert got.high == pytest.approx(np.quantile(np.arange(days), 0.9))
    nan = np.full(len(started), np.nan)
    assert normal_range(started, nan, "p95").typical is None


@given(st.lists(st.sampled_from("abcd"), max_size=12), st.sampled_from("abcde"))
def test_step_back_is_the_version_promoted_before_the_current_one(
    promoted: list[str], current: str
) -> None:
    back = step_back(promoted, current)
    latest = list(dict.fromkeys(reversed(promoted)))[::-1]  # each at its latest promotion
    if current in latest:
        i = latest.index(current)
        assert back == (latest[i - 1] if i > 0 else None)
    else:
        assert back == (latest[-1] if latest else None)
