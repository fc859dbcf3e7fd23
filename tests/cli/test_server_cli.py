"""``token create|list|revoke`` and ``serve`` through the real CLI, and the OS user beside
``approve --as`` in the audit log."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.helpers import REPO, Project, ok_json, register, rg


def test_a_token_is_shown_once_listed_without_its_secret_and_revoked(tmp_path: Path) -> None:
    ok_json(rg(tmp_path, "init", "--json"))
    made = rg(tmp_path, "token", "create", "--name", "bob", "--role", "approver")
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip()
    assert secret.startswith("rg_") and "not shown again" in made.stderr
    listed = ok_json(rg(tmp_path, "token", "list", "--json"))
    assert [(t["name"], t["role"], t["active"]) for t in listed] == [("bob", "approver", True)]
    assert secret[20:] not in repr(listed)
    again = rg(tmp_path, "token", "create", "--name", "bob", "--role", "viewer")
    assert again.returncode == 1 and "an active token named 'bob' exists" in again.stderr
    bad = rg(tmp_path, "token", "create", "--name", "eve", "--role", "root")
    assert bad.returncode == 2 and "unknown role 'root'" in bad.stderr
    revoked = ok_json(rg(tmp_path, "token", "revoke", "bob", "--json"))
    assert revoked["active"] is False and revoked["revoked_by"] == "alice"
    twice = rg(tmp_path, "token", "revoke", revoked["token_id"])
    assert twice.returncode == 1 and "already revoked" in twice.stderr
    assert rg(tmp_path, "token", "revoke", "nobody").returncode == 2
    log = ok_json(rg(tmp_path, "audit", "log", "--json"))
    assert [e["kind"] for e in log][-2:] == ["token.created", "token.revoked"]
    assert secret[20:] not in repr(log)


def test_approve_as_records_the_os_user(tmp_path: Path) -> None:
    project = Project(root=tmp_path, stakes="high")
    vid = register(tmp_path, project.workflow("v1"))
    project.suite()
    assert rg(tmp_path, "eval", vid, "--suite", "suite.yaml").returncode == 0
    assert rg(tmp_path, "gate", vid, "--env", "staging").returncode == 1  # needs approval
    ok_json(rg(tmp_path, "approve", vid, "--env", "staging", "--as", "bob", "--json"))
    granted = [e for e in ok_json(rg(tmp_path, "audit", "log", "--json"))][-1]
    assert granted["kind"] == "approval.granted" and granted["actor"] == "bob"
    import getpass

    assert granted["payload"]["os_user"] == getpass.getuser()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_answers_over_loopback_and_stops_on_sigterm(tmp_path: Path) -> None:
    ok_json(rg(tmp_path, "init", "--json"))
    token = ok_json(rg(tmp_path, "token", "create", "--name", "ops", "--role", "viewer", "--json"))
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("RELEASEGATE_DATABASE_URL", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "releasegate", "serve", "--port", str(port), "--workers", "2"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, server.stderr
            time.sleep(0.2)
        headers = {"Authorization": f"Bearer {token['token']}"}
        assert httpx.get(f"{url}/v1/workflows", headers=headers).json() == []
        assert httpx.get(f"{url}/v1/workflows").status_code == 401
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=60)
    assert server.returncode == 0, err
    assert token["token"][20:] not in err


def test_serve_without_a_store_says_so(tmp_path: Path) -> None:
    done = rg(tmp_path, "serve", "--port", str(free_port()))
    assert done.returncode == 2 and "releasegate init" in done.stderr
