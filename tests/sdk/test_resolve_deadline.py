"""Resolution keeps its deadline when the database hangs: a PostgreSQL behind a loopback
proxy that accepts connections and never answers. The SDK and ``releasegate resolve``
serve the last known version within the deadline, from the file both keep."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from releasegate import Client
from releasegate.errors import StoreUnavailableError
from releasegate.store.engine import Location, Store
from tests.conftest import PG_ADMIN, drop_pg_database, pg_database
from tests.helpers import Project, rg
from tests.monitor.test_ingest import shipped

DEADLINE = 0.5
SLACK = 5.0  # a loaded machine; without the deadline the call would never return at all


class Blackhole:
    """A TCP listener on loopback that accepts every connection and never says a word."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.server.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def blackhole() -> Iterator[Blackhole]:
    hole = Blackhole()
    yield hole
    hole.close()


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    name = pg_database(pg_template)
    yield f"{PG_ADMIN}/{name}"
    drop_pg_database(name)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(root=tmp_path)


def hung_url(hole: Blackhole) -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:{hole.port}/test"


def test_the_sdk_serves_the_last_known_version_within_its_deadline_when_postgres_hangs(
    pg_url: str,
    blackhole: Blackhole,
    tmp_path: Path,
    project: Project,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = tmp_path / ".releasegate"
    store = Store.open(
        location=Location(url=pg_url, blob_root=home / "blobs", is_embedded=False, home=home)
    )
    vid = shipped(store, project)
    with Client(store=store) as healthy:
        assert healthy.resolve("router", env="staging").version_id == vid
    store.close()
    assert json.loads((home / "last-known.json").read_text())["router@staging"]["version_id"] == vid

    monkeypatch.setenv("RELEASEGATE_DATABASE_URL", hung_url(blackhole))
    with Client(tmp_path, ttl=0, resolve_timeout=DEADLINE) as restarted:  # a fresh process
        t0 = time.monotonic()
        version = restarted.resolve("router", env="staging")
        first = time.monotonic() - t0
        assert version.version_id == vid and version.fallback
        assert blackhole.accepted  # it did reach the hanging server
        t0 = time.monotonic()
        assert restarted.resolve("router", env="staging").version_id == vid
        again = time.monotonic() - t0
        with pytest.raises(StoreUnavailableError, match="did not answer within 0.5 s"):
            restarted.resolve("router", env="production")  # never known here: no guess
    assert first < DEADLINE + SLACK and again < DEADLINE + SLACK


def test_releasegate_resolve_serves_the_last_known_version_when_postgres_hangs(
    pg_url: str, blackhole: Blackhole, tmp_path: Path, project: Project
) -> None:
    home = tmp_path / ".releasegate"
    store = Store.open(
        location=Location(url=pg_url, blob_root=home / "blobs", is_embedded=False, home=home)
    )
    vid = shipped(store, project)
    store.close()
    healthy = rg(tmp_path, "resolve", "router", "--env", "staging", env={
        "RELEASEGATE_DATABASE_URL": pg_url})  # fmt: skip
    assert healthy.returncode == 0, healthy.stderr
    assert healthy.stdout == vid + "\n"

    hung = {"RELEASEGATE_DATABASE_URL": hung_url(blackhole)}
    t0 = time.monotonic()
    served = rg(tmp_path, "resolve", "router", "--env", "staging", "--timeout", "0.5", env=hung)
    elapsed = time.monotonic() - t0
    assert served.returncode == 0, served.stderr
    assert served.stdout == vid + "\n"  # what deploy scripts read stays a bare id
    assert served.stderr == (
        "warning: the database did not answer within 0.5 s; this is the last version known "
        f"to run in router@staging (from {home / 'last-known.json'})\n"
    )
    assert elapsed < DEADLINE + SLACK + 10  # the interpreter's start-up on a shared machine

    as_json = rg(tmp_path, "resolve", "router", "--env", "staging", "--json", "--timeout", "0.5",
                 env=hung)  # fmt: skip
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["fallback"] is True

    unknown = rg(tmp_path, "resolve", "router", "--env", "production", "--timeout", "0.5", env=hung)
    assert unknown.returncode == 2
    assert "did not answer within 0.5 s" in unknown.stderr
    assert "never resolved here before" in unknown.stderr
    assert "Traceback" not in unknown.stderr
