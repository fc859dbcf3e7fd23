"""The automatic pause on both databases, with real runs recorded through the SDK: a policy's
``pause_on`` ceiling shown exceeded makes ``rollout check`` (and ``monitor``) pause the
environment, audited with the evidence and alerted once, even when four checks see it at the
same moment; under the ceiling nothing is paused; a policy without ``pause_on`` never pauses."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from releasegate import Client
from releasegate.monitor.alerts import resend_due
from releasegate.monitor.service import monitor
from releasegate.release import rollout
from releasegate.release.audit import audit_verify
from releasegate.release.promote import promote
from releasegate.release.resolve import resolve
from releasegate.store.engine import Store
from tests.helpers import Project
from tests.release.test_rollout import RID, gated, policy, traffic

PAUSE_ON = {"error_rate": 0.5, "window": "1h", "min_runs": 50}


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(root=tmp_path)


def with_pause_on(**extra: Any) -> dict[str, Any]:
    return {**policy(), "pause_on": {**PAUSE_ON, **extra}}


def under_rollout(store: Store, project: Project, pol: dict[str, Any]) -> tuple[str, str]:
    v1 = gated(store, project, "v1", pol)
    promote(store, v1, "staging", who="alice")
    traffic(store, 100, canary_error=0.0, stable_error=0.02, seed=1)
    v2 = gated(store, project, "v2", pol, temperature=0.2)
    rollout.start(store, v2, "staging", canary_pct=25, who="alice", rollout_id=RID)
    return v1, v2


def paused_events(store: Store) -> list[dict[str, Any]]:
    with store.read() as conn:
        rows = conn.execute(
            sa.text("SELECT payload_json FROM audit_events WHERE kind = 'env.paused'")
        ).scalars()
        return [json.loads(r) for r in rows]


def alert_signals(store: Store) -> list[str]:
    with store.read() as conn:
        return list(conn.execute(sa.text("SELECT signal FROM alerts ORDER BY seq")).scalars())


def test_a_severe_error_rate_pauses_on_the_check_with_the_evidence(
    store: Store, project: Project
) -> None:
    under_rollout(store, project, with_pause_on())
    traffic(store, 300, canary_error=0.85, stable_error=0.85, seed=2)  # the model is down
    checked = rollout.check(store, "router", "staging", who="cron")
    auto = checked.auto_pause
    assert auto is not None and auto.has_paused and checked.is_no
    (breach,) = auto.breaches
    assert breach.signal == "error_rate" and breach.lower_bound > 0.5 and breach.runs >= 400
    assert auto.change is not None
    reason = auto.change.pause.reason
    assert reason.startswith("paused automatically by rollout check: error_rate ")
    assert "above its ceiling 50%" in reason
    # resolve says so: the application sends every request to its human fallback
    assert resolve(store, "router", "staging").paused == reason
    (event,) = paused_events(store)
    assert event["automatic"] is True and event["reason"] == reason
    assert event["evidence"]["breaches"][0]["events"] == breach.events
    assert event["evidence"]["by"] == "rollout check"
    sent = resend_due(store, "router", "staging")  # what `rollout check` does next
    assert [a.signal for a in sent] == ["env.paused"] and reason in sent[0].message
    assert audit_verify(store).broken is None
    # the next check finds it paused: says so (exit 1), pauses nothing more
    again = rollout.check(store, "router", "staging", who="cron")
    assert again.auto_pause is not None and again.is_no and not again.auto_pause.has_paused
    assert again.auto_pause.found is not None and again.auto_pause.found.reason == reason
    assert len(paused_events(store)) == 1 and alert_signals(store) == ["env.paused"]
    assert rollout.rollout_dict(again)["pause"]["already_paused"]["reason"] == reason


def test_under_the_ceiling_or_without_pause_on_nothing_is_paused(
    store: Store, project: Project
) -> None:
    under_rollout(store, project, with_pause_on())
    traffic(store, 300, canary_error=0.45, stable_error=0.45, seed=3)  # bad, not beyond 50%
    checked = rollout.check(store, "router", "staging", who="cron")
    assert checked.auto_pause is not None and not checked.auto_pause.is_severe
    assert checked.auto_pause.seen.runs >= 300 and not checked.is_no
    assert resolve(store, "router", "staging").paused is None
    assert paused_events(store) == []


def test_no_pause_on_in_the_policy_never_pauses(store: Store, project: Project) -> None:
    under_rollout(store, project, policy())
    traffic(store, 120, canary_error=1.0, stable_error=1.0, seed=4)
    checked = rollout.check(store, "router", "staging", who="cron")
    assert checked.auto_pause is None and "pause" in rollout.rollout_dict(checked)
    assert resolve(store, "router", "staging").paused is None and paused_events(store) == []


def test_monitor_pauses_on_a_severe_signal_and_says_so(store: Store, project: Project) -> None:
    v1 = gated(store, project, "v1", with_pause_on(escalation_rate=0.3))
    promote(store, v1, "staging", who="alice")
    with Client(store=store, ttl=60, flush_every=60) as client:
        for i in range(80):
            version = client.resolve("router", env="staging")
            with client.run(version, input=f"message {i}") as run:
                run.output = "fraud"
                run.escalated = i % 4 != 0  # 75% go to a person: beyond the 30% ceiling
        client.flush()
    result = monitor(store, "router", "staging", embeddings=False, quality=False)
    auto = result.auto_pause
    assert auto is not None and auto.has_paused and result.is_alert
    assert [b.signal for b in auto.breaches] == ["escalation_rate"]
    assert "paused now: a pause_on ceiling is exceeded" in result.verdict
    assert [a.signal for a in result.pause_alerts] == ["env.paused"]
    assert result.as_dict()["pause"]["breaches"][0]["signal"] == "escalation_rate"
    assert resolve(store, "router", "staging").paused is not None
    (event,) = paused_events(store)
    assert event["evidence"]["by"] == "monitor"


def test_four_checks_at_once_pause_once_and_alert_once(store: Store, project: Project) -> None:
    under_rollout(store, project, with_pause_on())
    traffic(store, 300, canary_error=0.9, stable_error=0.9, seed=5)
    barrier = threading.Barrier(4)
    results: list[rollout.Checked] = []

    def one(who: str) -> None:
        barrier.wait()
        results.append(rollout.check(store, "router", "staging", who=who))

    threads = [threading.Thread(target=one, args=(f"cron-{i}",)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(120)
    assert len(results) == 4 and all(c.is_no for c in results)
    assert sum(c.auto_pause is not None and c.auto_pause.has_paused for c in results) == 1
    assert len(paused_events(store)) == 1
    assert alert_signals(store).count("env.paused") == 1
    assert audit_verify(store).broken is None
