"""Pause and resume on both databases: while paused, resolve (the service and the SDK, and
its last-known file when the store is gone) says so with the reason; resume serves again;
both are audited and alert the responders once; every refusal writes nothing."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from releasegate import Client
from releasegate.errors import InputError, NotFoundError, PauseRefusedError
from releasegate.monitor.alerts import resend_due
from releasegate.release import rollout
from releasegate.release.audit import audit_verify
from releasegate.release.pause import pause, resume
from releasegate.release.promote import promote
from releasegate.release.resolve import LAST_KNOWN, Resolver, resolve
from releasegate.store.engine import Store
from tests.helpers import Project
from tests.release.test_rollout import RID, gated, policy, shipped_pair


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(root=tmp_path)


def shipped(store: Store, project: Project) -> str:
    v1 = gated(store, project, "v1", policy())
    promote(store, v1, "staging", who="alice")
    return v1


def written(store: Store) -> tuple[Any, ...]:
    """Everything a pause or a resume writes: the environments, the audit chain, alerts."""
    with store.read() as conn:
        return tuple(
            tuple(tuple(r) for r in conn.execute(sa.text(q)).all())
            for q in (
                "SELECT workflow, env, paused_reason, paused_by FROM environments ORDER BY env",
                "SELECT seq, kind FROM audit_events ORDER BY seq",
                "SELECT seq, signal FROM alerts ORDER BY seq",
            )
        )


def test_a_paused_environment_resolves_paused_until_resumed(store: Store, project: Project) -> None:
    v1 = shipped(store, project)
    with Client(store=store, ttl=0.0) as client:
        assert not client.resolve("router", env="staging").paused

        done = pause(store, "router", "staging", reason="fraud wave: humans only", who="bob")
        assert (done.action, done.version_id, done.pause.by) == ("paused", v1, "bob")
        found = resolve(store, "router", "staging")
        assert (found.version_id, found.paused) == (v1, "fraud wave: humans only")
        served = client.resolve("router", env="staging", key="user-1")
        assert served.paused and served.paused_reason == "fraud wave: humans only"
        assert served.version_id == v1  # the alias does not move

        sent = resend_due(store, "router", "staging")  # what the CLI does next
        assert len(sent) == 1 and "paused by bob" in sent[0].message
        assert "fraud wave: humans only" in sent[0].message
        assert resend_due(store, "router", "staging") == []  # sent once

        back = resume(store, "router", "staging", who="carol")
        assert (back.action, back.pause.reason) == ("resumed", "fraud wave: humans only")
        again = client.resolve("router", env="staging")
        assert not again.paused and again.paused_reason is None
        assert resolve(store, "router", "staging").paused is None
        resumed = [a.message for a in resend_due(store, "router", "staging")]
        assert len(resumed) == 1 and "resumed by carol" in resumed[0]
    with store.read() as conn:
        kinds = list(conn.execute(sa.text("SELECT kind FROM audit_events ORDER BY seq")).scalars())
    assert kinds[-2:] == ["env.paused", "env.resumed"]
    assert audit_verify(store).broken is None


def test_the_last_known_version_remembers_the_pause(
    store: Store, project: Project, tmp_path: Path
) -> None:
    shipped(store, project)
    pause(store, "router", "staging", reason="incident 42", who="bob")
    known = tmp_path / "elsewhere" / LAST_KNOWN
    with Client(store=store, ttl=0.0, fallback_file=known) as client:
        assert client.resolve("router", env="staging").paused_reason == "incident 42"
    # a process started while the store is unreachable serves the last known answer, paused
    offline = Resolver(unreachable, ttl=0.0, fallback_file=known)
    served = offline("router", "staging")
    assert served.fallback and served.paused == "incident 42"

    resume(store, "router", "staging", who="bob")
    with Client(store=store, ttl=0.0, fallback_file=known) as client:
        assert not client.resolve("router", env="staging").paused
    assert Resolver(unreachable, ttl=0.0, fallback_file=known)("router", "staging").paused is None


def unreachable() -> Store:
    raise ConnectionRefusedError("connection refused")


def test_refusals_write_nothing(store: Store, project: Project) -> None:
    shipped(store, project)
    before = written(store)
    with pytest.raises(InputError, match="a pause needs a reason"):
        pause(store, "router", "staging", reason="   ", who="bob")
    with pytest.raises(InputError, match="has no environment 'prod'"):
        pause(store, "router", "prod", reason="x", who="bob")
    with pytest.raises(NotFoundError):
        pause(store, "nope", "staging", reason="x", who="bob")
    with pytest.raises(PauseRefusedError, match="router@staging is not paused"):
        resume(store, "router", "staging", who="bob")
    assert written(store) == before

    pause(store, "router", "staging", reason="incident 42", who="bob")
    paused = written(store)
    with pytest.raises(PauseRefusedError, match="already paused by bob .*: incident 42"):
        pause(store, "router", "staging", reason="again", who="carol")
    assert written(store) == paused


def test_audit_verify_catches_a_pause_changed_outside_releasegate(
    store: Store, project: Project
) -> None:
    shipped(store, project)
    pause(store, "router", "staging", reason="incident 42", who="bob")
    assert audit_verify(store).broken is None

    def edit(sql: str) -> str:
        with store.write() as conn:
            conn.execute(sa.text(sql))
        broken = audit_verify(store).broken
        return "" if broken is None else broken.reason

    lifted = edit("UPDATE environments SET paused_reason = NULL")
    assert "records router@staging paused (incident 42), but it is not" in lifted
    reworded = edit("UPDATE environments SET paused_reason = 'all fine'")
    assert "is paused (all fine), but the audit log records the reason (incident 42)" in reworded
    assert edit("UPDATE environments SET paused_reason = 'incident 42'") == ""  # as logged
    resume(store, "router", "staging", who="bob")
    sneaked = edit("UPDATE environments SET paused_reason = 'quietly'")
    assert "router@staging is paused (quietly), but the audit log records no such pause" in sneaked


def test_two_pauses_at_once_pause_once_and_alert_once(store: Store, project: Project) -> None:
    shipped(store, project)
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def one(who: str) -> None:
        barrier.wait()
        try:
            pause(store, "router", "staging", reason=f"paged {who}", who=who)
            outcomes.append("paused")
        except PauseRefusedError:
            outcomes.append("refused")

    threads = [threading.Thread(target=one, args=(f"oncall-{i}",)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert sorted(outcomes) == ["paused", "refused", "refused", "refused"]
    with store.read() as conn:
        kinds = list(conn.execute(sa.text("SELECT kind FROM audit_events")).scalars())
        alerts = conn.execute(sa.text("SELECT count(*) FROM alerts")).scalar_one()
    assert (kinds.count("env.paused"), alerts) == (1, 1)
    assert audit_verify(store).broken is None


def test_a_pause_reaches_a_running_client_once_its_ttl_has_passed(
    store: Store, project: Project
) -> None:
    shipped(store, project)
    with Client(store=store, ttl=0.2) as client:
        assert not client.resolve("router", env="staging").paused  # cached from here
        pause(store, "router", "staging", reason="incident 7", who="bob")
        time.sleep(0.3)  # the TTL has passed: the next resolve asks the store again
        assert client.resolve("router", env="staging").paused_reason == "incident 7"
        resume(store, "router", "staging", who="bob")
        time.sleep(0.3)
        assert not client.resolve("router", env="staging").paused


def test_under_a_rollout_both_arms_are_paused(store: Store, project: Project) -> None:
    v1, v2 = shipped_pair(store, project)
    rollout.start(store, v2, "staging", canary_pct=25, who="alice", rollout_id=RID)
    pause(store, "router", "staging", reason="incident 9", who="bob")
    with Client(store=store, ttl=60) as client:
        served = [client.resolve("router", env="staging", key=str(k)) for k in range(200)]
    assert {v.arm for v in served} == {"stable", "canary"}
    assert {v.version_id for v in served} == {v1, v2}
    assert all(v.paused_reason == "incident 9" for v in served)
