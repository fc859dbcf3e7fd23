"""The server under test: a real uvicorn on a free loopback port, in a thread, over the
``store`` fixture (SQLite and PostgreSQL), with a token of every role and a high-stakes
workflow whose v1 runs in staging and whose v2 (a config change) passed its eval and
waits for a named approver."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from releasegate.domain.access import ROLES
from releasegate.release.evaluate import evaluate
from releasegate.release.gate import gate
from releasegate.release.promote import approve, promote
from releasegate.release.register import register
from releasegate.release.tokens import create_token, revoke_token
from releasegate.server.app import Settings, create_app
from releasegate.store.engine import Store
from tests.helpers import Project


@dataclass
class Live:
    url: str
    store: Store
    tokens: dict[str, str]
    """Who -> a token: one per role, named after it (``viewer`` ... ``admin``), ``bob``
    (approver), ``alice`` (approver, and the owner of both versions), ``revoked``."""
    v1: str
    v2: str

    def client(self, who: str | None = None, **headers: str) -> httpx.Client:
        if who is not None:
            headers["Authorization"] = f"Bearer {self.tokens[who]}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


def loopback_socket() -> socket.socket:
    """A socket bound to a free loopback port (its address known before the app is made)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def run_server(app: object, sock: socket.socket | None = None) -> Iterator[str]:
    """``app`` on uvicorn on a free loopback port (or ``sock``) in a thread; yields its
    base URL."""
    sock = sock or loopback_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", ws="none", lifespan="off")  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture
def live(store: Store, tmp_path: Path) -> Iterator[Live]:
    project = Project(root=tmp_path, stakes="high")
    v1 = register(store, project.workflow("v1"), who="alice").version_id
    evaluate(store, v1, project.suite())
    gate(store, v1, "staging")
    approve(store, v1, "staging", approver="bob")
    approve(store, v1, "staging", approver="dana")
    promote(store, v1, "staging", who="alice")
    v2 = register(store, project.workflow("v2", temperature=0.1), who="alice").version_id
    evaluate(store, v2, project.suite())
    assert gate(store, v2, "staging").verdict == "needs-approval"
    tokens = {role: create_token(store, role, role, who="admin").secret for role in ROLES}
    tokens["bob"] = create_token(store, "bob", "approver").secret
    tokens["alice"] = create_token(store, "alice", "approver").secret
    tokens["revoked"] = create_token(store, "revoked", "admin").secret
    revoke_token(store, "revoked")
    app = create_app(store, Settings(token_ttl=0, resolve_ttl=0, allow_python="tests"))
    for url in run_server(app):
        yield Live(url, store, tokens, v1, v2)
