"""Progressive rollout end to end on both databases, with real runs recorded through the SDK:
who gets the canary, a worse canary aborted in its first step (once, alerted once, even
with two checks at the same moment), a healthy one ramped to completion, and every refusal."""

from __future__ import annotations

import json
import multiprocessing
import os
import random
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from releasegate import Client
from releasegate.domain.rollout import parse_steps_flag
from releasegate.errors import InputError, PromotionRefusedError, RolloutRefusedError
from releasegate.monitor.alerts import resend_due
from releasegate.release import rollout
from releasegate.release.audit import audit_verify
from releasegate.release.evaluate import evaluate
from releasegate.release.gate import gate
from releasegate.release.pause import pause, resume
from releasegate.release.promote import promote, rollback
from releasegate.release.register import register
from releasegate.release.resolve import resolve
from releasegate.store.engine import Location, Store
from releasegate.store.runs import RunRepo
from tests.helpers import Project

# latency in-process is the machine's noise, not the canary's: the SDK tests compare errors
# (latency and cost are compared in tests/domain/test_rollout.py, on drawn values)
RAMP = {"steps": [25, 50, 100], "min_runs_per_step": 300, "signals": ["error_rate"]}
RID = "5eed" * 8  # who gets the canary is fixed, so every outcome here is reproducible


def policy(**rollout_section: Any) -> dict[str, Any]:
    return {
        "floors": {"accuracy": 0.5},
        "max_regression": {"metric": "accuracy", "margin": 0.1},
        "rollout": {**RAMP, **rollout_section},
    }


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(root=tmp_path)


def gated(store: Store, project: Project, name: str, pol: dict[str, Any], **kw: Any) -> str:
    vid = register(store, project.workflow(name, policy=pol, **kw), who="alice").version_id
    evaluate(store, vid, project.suite(), who="alice")
    assert gate(store, vid, "staging", who="ci").verdict == "pass"
    return vid


def shipped_pair(store: Store, project: Project, **rollout_section: Any) -> tuple[str, str]:
    """v1 runs in staging with 400 runs behind it; v2 passed the gate against it."""
    pol = policy(**rollout_section)
    v1 = gated(store, project, "v1", pol)
    promote(store, v1, "staging", who="alice")
    traffic(store, 400, canary_error=0.0, stable_error=0.05, seed=1)
    v2 = gated(store, project, "v2", pol, temperature=0.2)
    return v1, v2


def traffic(
    store: Store, n: int, *, canary_error: float, stable_error: float = 0.05, seed: int = 0
) -> dict[str, int]:
    """``n`` requests of distinct users: resolve by key, run, record (through the SDK)."""
    rng = random.Random(seed)
    served = {"stable": 0, "canary": 0, "none": 0}
    with Client(store=store, ttl=60, flush_every=60) as client:
        for i in range(n):
            version = client.resolve("router", env="staging", key=f"user-{seed}-{i}")
            served[version.arm or "none"] += 1
            with client.run(version, input=f"message {i}") as run:
                run.output = "fraud"
                p = canary_error if version.arm == "canary" else stable_error
                if rng.random() < p:
                    run.fail("the model answered nothing usable")
        client.flush()
    return served


def audit_kinds(store: Store) -> list[str]:
    with store.read() as conn:
        return list(conn.execute(sa.text("SELECT kind FROM audit_events ORDER BY seq")).scalars())


def test_the_sdk_routes_a_sticky_share_of_keys_and_records_the_arm(
    store: Store, project: Project
) -> None:
    v1, v2 = shipped_pair(store, project)
    started = rollout.start(store, v2, "staging", canary_pct=25, who="alice", rollout_id=RID)
    assert (started.state, started.weight, started.steps) == ("running", 25.0, (25, 50, 100))
    assert resolve(store, "router", "staging").version_id == v1  # the alias has not moved
    with Client(store=store, ttl=60) as client:
        first = {k: client.resolve("router", env="staging", key=k) for k in map(str, range(4000))}
        again = {k: client.resolve("router", env="staging", key=k) for k in map(str, range(4000))}
        assert all(first[k].arm == again[k].arm for k in first)  # sticky per key
        canary = [v for v in first.values() if v.arm == "canary"]
        assert {v.version_id for v in canary} == {v2}
        assert {v.version_id for v in first.values() if v.arm == "stable"} == {v1}
        assert abs(len(canary) - 1000) < 4.5 * (4000 * 0.25 * 0.75) ** 0.5
        with client.run(canary[0], input="hello") as run:
            run.output = "fraud"
        client.flush()
        with store.read() as conn:
            stored = RunRepo(conn).get(run.run_id)
        assert stored is not None and (stored["version_id"], stored["arm"]) == (v2, "canary")


def test_a_canary_with_three_times_the_errors_is_aborted_in_its_first_step(
    store: Store, project: Project
) -> None:
    v1, v2 = shipped_pair(store, project)
    rollout.start(store, v2, "staging", canary_pct=25, who="alice", rollout_id=RID)
    checked = None
    for seed in range(100, 140):
        traffic(store, 400, canary_error=0.15, seed=seed)
        checked = rollout.check(store, "router", "staging", who="cron")
        if checked.rollout.state != "running":
            break
    assert checked is not None and checked.has_aborted and checked.wrote_abort
    r = checked.rollout
    assert (r.state, r.step, r.weight) == ("aborted", 0, 0.0)
    assert "error_rate: canary" in r.reason and "worse by more than 2.0 pt shown" in r.reason
    assert checked.alert_message is not None and "aborted at 25%" in checked.alert_message
    sent = resend_due(store, "router", "staging")  # what `rollout check` does next
    assert [a.message for a in sent] == [checked.alert_message]
    assert resend_due(store, "router", "staging") == []  # sent once
    # stable serves everything again, the next check reports and does nothing more
    assert traffic(store, 200, canary_error=0.0, seed=999)["canary"] == 0
    again = rollout.check(store, "router", "staging", who="cron")
    assert not again.has_aborted and again.rollout.state == "aborted"
    with store.read() as conn:
        alerts = conn.execute(sa.text("SELECT count(*) FROM alerts")).scalar_one()
    assert alerts == 1
    assert audit_kinds(store).count("rollout.aborted") == 1
    with pytest.raises(RolloutRefusedError, match=r"was aborted \(error_rate: .*it cannot advance"):
        rollout.advance(store, "router", "staging", who="alice")
    assert resolve(store, "router", "staging").version_id == v1
    assert audit_verify(store).broken is None


def test_a_healthy_canary_ramps_to_completion_and_the_alias_moves(
    store: Store, project: Project
) -> None:
    v1, v2 = shipped_pair(store, project, auto_advance=True)
    rollout.start(store, v2, "staging", canary_pct=25, who="alice", rollout_id=RID)
    weights = []
    for seed in range(200, 300):
        traffic(store, 500, canary_error=0.05, seed=seed)
        checked = rollout.check(store, "router", "staging", who="cron")
        assert not checked.has_aborted, checked.outcome
        weights.append(checked.rollout.weight)
        if checked.rollout.state == "completed":
            break
    assert weights[-1] == 100.0 and 50.0 in weights, weights
    assert resolve(store, "router", "staging").version_id == v2
    kinds = audit_kinds(store)
    assert kinds.count("rollout.advanced") == 1 and kinds.count("rollout.completed") == 1
    assert audit_verify(store).broken is None
    # the completed rollout is a promotion like any other: rollback returns to v1
    assert rollback(store, "router", "staging", who="alice").version_id == v1


def test_a_check_where_no_rollout_ever_ran_is_no_abort(store: Store, project: Project) -> None:
    # cron calls `rollout check` whether or not a rollout runs: nothing to compare is exit 0
    # (the docs' "no rollout running"), not a refusal that reads like an abort
    shipped_pair(store, project)
    before = audit_kinds(store)
    checked = rollout.check(store, "router", "staging", who="cron")
    assert (checked.rollout, checked.outcome, checked.is_no) == (None, None, False)
    out = rollout.rollout_dict(checked, "router", "staging")
    assert (out["workflow"], out["env"], out["state"], out["aborted_now"]) == (
        "router",
        "staging",
        None,
        False,
    )
    assert audit_kinds(store) == before


def test_refusals_write_nothing(store: Store, project: Project) -> None:
    v1, v2 = shipped_pair(store, project)
    ungated = register(store, project.workflow("v3", policy=policy(), temperature=0.9)).version_id
    before = audit_kinds(store)
    with pytest.raises(PromotionRefusedError, match="has no gate decision for staging"):
        rollout.start(store, ungated, "staging", canary_pct=5, who="alice")
    with pytest.raises(InputError, match="--canary: expected a percentage above 0 and below 100"):
        rollout.start(store, v2, "staging", canary_pct=150, who="alice")
    with pytest.raises(InputError, match="--steps: steps must increase strictly"):
        rollout.start(store, v2, "staging", steps=parse_steps_flag("5,50,25,100"), who="alice")
    with pytest.raises(RolloutRefusedError, match="no rollout runs in router@staging"):
        rollout.advance(store, "router", "staging", who="alice")
    assert audit_kinds(store) == before
    with store.read() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM rollouts")).scalar_one() == 0
    rollout.start(store, v2, "staging", canary_pct=5, who="alice")
    before = audit_kinds(store)
    with pytest.raises(RolloutRefusedError, match="already runs in router@staging"):
        rollout.start(store, v2, "staging", canary_pct=10, who="alice")
    with pytest.raises(RolloutRefusedError, match="a rollout of .* runs in router@staging"):
        promote(store, v2, "staging", who="alice")
    assert audit_kinds(store) == before
    stopped = rollout.abort(store, "router", "staging", who="alice", reason="not today")
    assert (stopped.state, stopped.reason) == ("aborted", "not today")
    with pytest.raises(RolloutRefusedError, match="cannot be aborted"):
        rollout.abort(store, "router", "staging", who="alice")
    assert audit_kinds(store) == [*before, "rollout.aborted"]


def _check_in_process(url: str, home: str, queue: multiprocessing.Queue[str], barrier: Any) -> None:
    loc = Location(
        url=url,
        blob_root=Path(home) / "blobs",
        is_embedded=url.startswith("sqlite"),
        home=Path(home),
    )
    store = Store.open(location=loc)
    try:
        barrier.wait(60)  # both read the same runs, then both hold before writing
        checked = rollout.check(
            store, "router", "staging", who=f"p{os.getpid()}", pause_after_read=1.0
        )
        resend_due(store, "router", "staging")  # both try to send what is due
        queue.put(f"{checked.has_aborted} {checked.wrote_abort}")
    except Exception as exc:  # reported to the test, which fails with it
        queue.put(f"error: {type(exc).__name__}: {exc}")
    finally:
        store.close()


def test_two_concurrent_checks_abort_once_and_alert_once(
    store: Store, project: Project, store_url: str, tmp_path: Path
) -> None:
    v1, v2 = shipped_pair(store, project)
    rollout.start(store, v2, "staging", canary_pct=50, who="alice", rollout_id=RID)
    traffic(store, 3000, canary_error=0.30, seed=7)
    ctx = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[str] = ctx.Queue()
    barrier = ctx.Barrier(2)
    home = str(tmp_path / ".releasegate")
    procs = [
        ctx.Process(target=_check_in_process, args=(store_url, home, queue, barrier)) for _ in "ab"
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    results = sorted(queue.get(timeout=5) for _ in procs)
    assert results == ["True False", "True True"], results  # both saw it, one wrote it
    with store.read() as conn:
        rows = conn.execute(sa.text("SELECT status, attempts FROM alerts")).all()
    assert [tuple(r) for r in rows] == [("routed", 1)]  # stored once, sent once
    assert audit_kinds(store).count("rollout.aborted") == 1
    assert audit_verify(store).broken is None


def audit_payloads(store: Store, kind: str) -> list[dict[str, Any]]:
    with store.read() as conn:
        rows = conn.execute(
            sa.text("SELECT payload_json FROM audit_events WHERE kind = :k ORDER BY seq"),
            {"k": kind},
        ).scalars()
        return [json.loads(r) if isinstance(r, str) else r for r in rows]


def test_a_held_step_advances_by_hand_only_when_forced_with_a_reason(
    store: Store, project: Project
) -> None:
    # QA: `rollout advance` passed a step the check held, and completed with 0 canary runs
    v1, v2 = shipped_pair(store, project)
    rollout.start(store, v2, "staging", canary_pct=25, who="alice", rollout_id=RID)
    traffic(store, 150, canary_error=0.05, seed=50)
    held = rollout.check(store, "router", "staging", who="cron")
    assert held.outcome is not None and held.outcome.action == "hold"
    before = audit_kinds(store)
    with pytest.raises(RolloutRefusedError) as refused:
        rollout.advance(store, "router", "staging", who="alice")
    said = str(refused.value)
    assert "step 1 at 25% of router@staging is not eligible to advance: the check holds it" in said
    assert f"{held.rollout.evidence.step_runs} canary runs in this step of 300 needed" in said
    assert "--force --reason" in (refused.value.hint or "")
    with pytest.raises(InputError, match="--force needs a reason"):
        rollout.advance(store, "router", "staging", who="alice", force=True, reason="  ")
    assert audit_kinds(store) == before
    assert rollout.status(store, "router", "staging").rollout.weight == 25.0
    moved = rollout.advance(store, "router", "staging", who="alice", force=True, reason="INC-9")
    assert (moved.state, moved.weight) == ("running", 50.0)
    [forced] = audit_payloads(store, "rollout.advanced")
    assert (forced["forced"], forced["reason"], forced["overrode"]["action"]) == (
        True,
        "INC-9",
        "hold",
    )
    assert forced["overrode"]["step_runs"] == held.rollout.evidence.step_runs
    assert forced["overrode"]["min_runs"] == 300
    # 0 canary runs in the 50% step: into 100% is refused too, and forced it completes
    with pytest.raises(RolloutRefusedError, match=r"step 2 at 50% .*\(0 canary runs in this step"):
        rollout.advance(store, "router", "staging", who="alice")
    assert resolve(store, "router", "staging").version_id == v1
    done = rollout.advance(store, "router", "staging", who="bob", force=True, reason="INC-9 fix")
    assert done.state == "completed" and resolve(store, "router", "staging").version_id == v2
    [completed] = audit_payloads(store, "rollout.completed")
    assert completed["forced"] and completed["overrode"]["reasons"][0].startswith("0 canary runs")
    assert audit_verify(store).broken is None


def test_a_paused_environment_refuses_an_advance_forced_or_not(
    store: Store, project: Project
) -> None:
    v1, v2 = shipped_pair(store, project)
    rollout.start(store, v2, "staging", canary_pct=25, who="alice", rollout_id=RID)
    pause(store, "router", "staging", reason="INC-3: answers look off", who="alice")
    before = audit_kinds(store)
    for forced in ({}, {"force": True, "reason": "go"}):
        with pytest.raises(RolloutRefusedError, match="router@staging is paused .* INC-3") as no:
            rollout.advance(store, "router", "staging", who="alice", **forced)
        assert no.value.hint == "resume it first: `releasegate resume router --env staging`"
    assert audit_kinds(store) == before
    assert rollout.status(store, "router", "staging").rollout.weight == 25.0
    resume(store, "router", "staging", who="alice")
    assert rollout.advance(store, "router", "staging", force=True, reason="go").weight == 50.0


def test_after_an_abort_the_hint_says_the_same_version_may_start_again(
    store: Store, project: Project
) -> None:
    v1, v2 = shipped_pair(store, project)
    rollout.start(store, v2, "staging", canary_pct=25, who="alice", rollout_id=RID)
    rollout.abort(store, "router", "staging", who="alice", reason="not today")
    with pytest.raises(RolloutRefusedError) as ended:
        rollout.advance(store, "router", "staging", who="alice")
    hint = ended.value.hint or ""
    assert "a new rollout may start, of this version too" in hint, hint
    assert "this abort's evidence stays in the audit log" in hint and "gated again" not in hint
    # what the hint says is true: the same version starts again at once, the abort recorded
    again = rollout.start(store, v2, "staging", canary_pct=25, who="alice")
    assert again.state == "running" and again.canary_id == v2
    assert audit_kinds(store).count("rollout.aborted") == 1
