"""The SDK's HTTP mode against a real server on loopback: ``Client(url=..., token=...)``
resolves and records runs through ``releasegate serve`` with the local client's rules (a bad
run does not lose the others; an outage serves the last known version and spills runs)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from releasegate import Client
from releasegate.errors import NotFoundError, UnauthorizedError
from tests.server.conftest import Live, run_server


def stored_runs(live: Live) -> int:
    with live.store.read() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM runs")).scalar_one())


def test_resolve_and_runs_over_http(live: Live, tmp_path: Path) -> None:
    with Client(tmp_path / "app", url=live.url, token=live.tokens["operator"], ttl=0.0) as client:
        version = client.resolve("router", env="staging")
        assert version.version_id == live.v1 and version.fallback is False
        assert version.manifest["generation"]["mode"] == "good"
        for i in range(20):
            with client.run(version, input=f"message {i}") as run:
                run.output = "fraud"
                if i == 7:
                    run.tokens_in = "lots"  # type: ignore[assignment]
        report = client.flush()
        assert (report.stored, client.stats.rejected) == (19, 1)
        assert "tokens_in" in client.stats.reasons[0]
        with pytest.raises(NotFoundError, match="nothing runs in router@production"):
            client.resolve("router", env="production")
    assert stored_runs(live) == 19


def test_an_outage_serves_the_last_known_version_and_spills_runs(
    live: Live, tmp_path: Path
) -> None:
    from releasegate.server.app import Settings, create_app

    app = create_app(live.store, Settings(token_ttl=0, resolve_ttl=0))
    down = None
    for url in run_server(app):
        client = Client(
            tmp_path / "app", url=url, token=live.tokens["operator"], ttl=0.0, resolve_timeout=1.0
        )
        assert client.resolve("router", env="staging").fallback is False
        down = url
    assert down is not None  # the server is gone now
    version = client.resolve("router", env="staging")
    assert (version.version_id, version.fallback) == (live.v1, True)
    with client.run(version, input="during the outage") as run:
        run.output = "fraud"
    report = client.close()
    assert (report.stored, report.spilled) == (0, 1)
    # the next start against a live server replays the spilled run
    with Client(tmp_path / "app", url=live.url, token=live.tokens["operator"]) as again:
        assert again.flush().stored == 0
    assert stored_runs(live) == 1


def test_a_revoked_token_is_raised_not_ridden_out(live: Live, tmp_path: Path) -> None:
    client = Client(tmp_path / "app", url=live.url, token=live.tokens["revoked"], ttl=0.0)
    with pytest.raises(UnauthorizedError, match="was revoked"):
        client.resolve("router", env="staging")
    client.close()


def test_the_environment_names_the_server(
    live: Live, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELEASEGATE_URL", live.url)
    monkeypatch.setenv("RELEASEGATE_TOKEN", live.tokens["viewer"])
    with Client(tmp_path / "app") as client:
        assert client.resolve("router", env="staging").version_id == live.v1
