"""Two replicas of the server on one PostgreSQL, no sticky sessions: contested promotions
have exactly one winner, concurrent ingestion from several clients loses no run, and the
audit chain stays intact (the rules are the services'; this shows they hold over HTTP)."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
import yaml

from releasegate.release.evaluate import evaluate
from releasegate.release.gate import gate
from releasegate.release.promote import approve
from releasegate.release.register import register
from releasegate.server.app import Settings, create_app
from releasegate.store.engine import Store
from tests.helpers import Project, ok_json, rg
from tests.server.conftest import Live, run_server


@pytest.fixture
def postgresql(dialect: str) -> None:
    if dialect != "postgresql":
        pytest.skip("replicas share a PostgreSQL database")


@pytest.fixture
def replica(postgresql: None, live: Live) -> Iterator[str]:
    """A second server over its own connection pool to the same database."""
    other = Store.open(location=live.store.location)
    try:
        yield from run_server(create_app(other, Settings(token_ttl=0, resolve_ttl=0)))
    finally:
        other.close()


def test_a_contested_promotion_has_exactly_one_winner(
    postgresql: None, live: Live, replica: str, tmp_path: Path
) -> None:
    project = Project(root=tmp_path, stakes="high")
    v3 = register(live.store, project.workflow("v3", temperature=0.3), who="alice").version_id
    evaluate(live.store, v3, project.suite())
    gate(live.store, v3, "staging")
    for vid in (live.v2, v3):
        approve(live.store, vid, "staging", approver="bob")
    start = threading.Barrier(2)
    answers: dict[str, int] = {}

    def promote(url: str, vid: str) -> None:
        headers = {"Authorization": f"Bearer {live.tokens['operator']}"}
        start.wait()
        r = httpx.post(
            f"{url}/v1/versions/{vid}/promote", json={"env": "staging"}, headers=headers, timeout=60
        )
        answers[vid] = r.status_code

    threads = [
        threading.Thread(target=promote, args=(live.url, live.v2)),
        threading.Thread(target=promote, args=(replica, v3)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers.values()) == [200, 409], answers
    winner = next(v for v, s in answers.items() if s == 200)
    with httpx.Client(headers={"Authorization": f"Bearer {live.tokens['viewer']}"}) as c:
        for url in (live.url, replica):
            assert c.get(f"{url}/v1/resolve/router/staging").json()["version_id"] == winner
        assert c.get(f"{replica}/v1/audit/verify").json()["ok"] is True


def test_concurrent_ingestion_through_both_replicas_loses_nothing(live: Live, replica: str) -> None:
    at = datetime(2026, 12, 1, 10, 0, tzinfo=UTC).isoformat()
    batches = [
        [
            {
                "run_id": f"r-{b:03d}-{i:04d}",
                "workflow": "router",
                "env": "staging",
                "version_id": live.v1,
                "started_at": at,
                "latency_ms": 100 + i,
                "status": "ok",
            }
            for i in range(250)
        ]
        for b in range(16)
    ]
    landed: list[int] = []
    errors: list[str] = []

    def send(worker: int) -> None:
        url = (live.url, replica)[worker % 2]
        headers = {"Authorization": f"Bearer {live.tokens['operator']}"}
        with httpx.Client(base_url=url, headers=headers, timeout=120) as c:
            for batch in batches[worker::4]:
                for attempt in (batch, batch):  # each batch twice: the resend lands nothing
                    r = c.post("/v1/runs", json=attempt)
                    if r.status_code != 200:
                        errors.append(r.text)
                        return
                    landed.append(r.json()["landed"])

    threads = [threading.Thread(target=send, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(landed) == 16 * 250
    with live.store.read() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM runs")).scalar_one() == 16 * 250


def test_what_a_cli_elsewhere_wrote_is_served_by_either_replica(
    postgresql: None, live: Live, replica: str, tmp_path: Path
) -> None:
    """No directory is shared: a CLI in another working directory (another machine, with
    the team's audit key) registers a version with a prompt file, evaluates and gates it;
    both replicas then serve its file, its eval and its gate report from the database."""
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / ".releasegate").mkdir(parents=True)
    shutil.copy(live.store.location.home / "audit.key", elsewhere / ".releasegate" / "audit.key")
    prompt = "Route each message to fraud, card_lost, complaint or transfer.\n"
    (elsewhere / "system.txt").write_text(prompt)
    project = Project(root=elsewhere, stakes="high")
    doc = yaml.safe_load(project.workflow("v3", temperature=0.3).read_text())
    doc["prompts"]["system"] = {"file": "system.txt"}
    (elsewhere / "v3.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    project.suite()
    env = {"RELEASEGATE_DATABASE_URL": live.store.location.url}
    v3 = ok_json(rg(elsewhere, "register", "v3.yaml", "--json", env=env))["version_id"]
    assert rg(elsewhere, "eval", v3, "--suite", "suite.yaml", env=env).returncode == 0
    gated = rg(elsewhere, "gate", v3, "--env", "staging", "--json", env=env)
    decision = json.loads(gated.stdout)["decision_id"]
    digest = hashlib.sha256(prompt.encode()).hexdigest()
    with httpx.Client(headers={"Authorization": f"Bearer {live.tokens['viewer']}"}) as c:
        for url in (replica, live.url):
            got = c.get(f"{url}/v1/blobs/sha256:{digest}")
            assert got.status_code == 200, got.text
            assert got.content == prompt.encode()
            assert got.headers["etag"] == f'"sha256:{digest}"'
            report = c.get(f"{url}/v1/decisions/{decision}").json()
            assert report["decision_id"] == decision and report["version"]["id"] == v3
            shown = c.get(f"{url}/v1/versions/{v3}").json()
            assert shown["decisions"][0]["decision_id"] == decision
            assert c.get(f"{url}/v1/blobs/{'0' * 64}").status_code == 404
    for home in (live.store.location.home, elsewhere / ".releasegate"):
        assert not (home / "blobs").exists()
