"""The runtime SDK as an application uses it: resolve on every request, record every run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from releasegate import Client
from releasegate.errors import NotFoundError, StoreUnavailableError
from releasegate.release.promote import rollback
from releasegate.store.engine import Location, Store
from releasegate.store.runs import RunRepo
from tests.helpers import Project
from tests.monitor.test_ingest import shipped


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(root=tmp_path)


def test_resolve_returns_what_runs_with_its_prompts_and_config(
    store: Store, project: Project
) -> None:
    vid = shipped(store, project)
    with Client(store=store, ttl=60) as client:
        version = client.resolve("router", env="staging", key="user-17")
        assert version.version_id == vid and not version.fallback
        assert version.system_prompt == "route it"
        assert version.generation["mode"] == "good"
        assert client.resolve("router", env="staging") is version  # from memory within the TTL
        with pytest.raises(NotFoundError, match="nothing runs in router@production"):
            client.resolve("router", env="production")


def test_runs_are_recorded_off_the_request_path_with_errors_and_reasons(
    store: Store, project: Project
) -> None:
    vid = shipped(store, project)
    with Client(store=store, flush_every=60) as client:
        version = client.resolve("router", env="staging")
        for i in range(5):
            with client.run(version, input=f"lost my card {i}") as r:
                r.output = "card_lost"
                r.label = "card_lost"
                r.tokens_in, r.tokens_out = 12, 1
                if i == 3:
                    r.escalate()
        with pytest.raises(TimeoutError), client.run(version, input="boom") as failing:
            failing.retry()
            raise TimeoutError("model took 30s")
        with store.read() as conn:
            assert RunRepo(conn).count() == 0  # nothing written on the request path
        client.flush()
        assert client.stats.written == 6 and client.stats.rejected == 0
        with store.read() as conn:
            rows = RunRepo(conn).window(
                "router", "staging", 0, 2e9, ["version_id", "status", "escalated", "retries"]
            )
            failed = RunRepo(conn).get(failing.run_id)
    assert {r[0] for r in rows} == {vid}
    assert sorted(r[1] for r in rows) == ["error"] + ["ok"] * 5
    assert sum(bool(r[2]) for r in rows) == 1
    assert failed is not None and failed["failure_reason"] == "TimeoutError: model took 30s"
    assert failed["retries"] == 1 and failed["latency_ms"] >= 0


def test_a_bad_value_set_by_the_application_is_rejected_alone(
    store: Store, project: Project
) -> None:
    shipped(store, project)
    with Client(store=store) as client:
        version = client.resolve("router", env="staging")
        with client.run(version, input="a") as good:
            good.output = "fraud"
        with client.run(version, input="b") as bad:
            bad.feedback = 7.0  # outside [-1, 1]
        client.flush()
        assert (client.stats.written, client.stats.rejected) == (1, 1)
        assert "feedback" in client.stats.reasons[0]


def test_a_new_process_falls_back_to_the_last_known_version_when_the_store_is_down(
    tmp_path: Path, project: Project
) -> None:
    home = tmp_path / ".releasegate"
    loc = Location(
        url=f"sqlite:///{home / 'db.sqlite'}", blob_root=home / "blobs", is_embedded=True, home=home
    )
    store = Store.open(location=loc)
    vid = shipped(store, project)
    with Client(store=store, ttl=0) as first:
        assert first.resolve("router", env="staging").version_id == vid
    assert json.loads((home / "last-known.json").read_text())["router@staging"]
    store = Store.open(location=loc)
    with store.write() as conn:  # the store breaks
        conn.execute(sa.text("DROP TABLE environments"))
    with Client(store=store, ttl=0) as restarted:  # a fresh process: nothing in memory
        version = restarted.resolve("router", env="staging")
        assert version.version_id == vid and version.fallback
        with pytest.raises(StoreUnavailableError, match="no such table.*never resolved"):
            restarted.resolve("router", env="production")  # never known: the real error


def test_a_rollback_reaches_the_application_within_the_ttl(store: Store, project: Project) -> None:
    v1 = shipped(store, project)
    from releasegate.release.evaluate import evaluate
    from releasegate.release.gate import gate
    from releasegate.release.promote import promote
    from releasegate.release.register import register

    v2 = register(store, project.workflow("v2", temperature=0.2), who="alice").version_id
    evaluate(store, v2, project.suite(), who="alice")
    gate(store, v2, "staging", who="ci")
    promote(store, v2, "staging", who="alice")
    with Client(store=store, ttl=0) as client:
        assert client.resolve("router", env="staging").version_id == v2
        rollback(store, "router", "staging", who="alice")
        assert client.resolve("router", env="staging").version_id == v1
