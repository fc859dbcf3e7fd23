"""A GGUF ``model.file`` registered through a server (``RELEASEGATE_URL``): the CLI hashes
the file where it is and sends its digest, so the version id is the one a local register
gives; the server records where the file was and never reads it, and refuses to evaluate
weights it does not have, in one line naming the file. A real uvicorn, SQLite and
PostgreSQL."""

from __future__ import annotations

import contextvars
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from releasegate.errors import PinMismatchError
from releasegate.release.audit import audit_log
from releasegate.release.pins import SERVING, check_pins
from releasegate.release.refs import find_version
from releasegate.release.register import register
from releasegate.release.tokens import create_token
from releasegate.server.app import Settings, create_app
from releasegate.store.engine import Store
from tests.helpers import Project, rg
from tests.server.conftest import run_server

WEIGHTS = b"GGUF\x03\x00\x00\x00" + bytes(range(256)) * 4096  # 1 MiB and a bit


@pytest.fixture
def served(store: Store) -> Iterator[tuple[str, str]]:
    """(server URL, a builder's token); sent documents may name 127.0.0.1 as a model host."""
    token = create_token(store, "bea", "builder", who="admin").secret
    settings = Settings(token_ttl=0, allow_python="tests", allow_model_hosts="127.0.0.1")
    for url in run_server(create_app(store, settings)):
        yield url, token


def _project(root: Path) -> Path:
    (root / "models").mkdir(parents=True)
    (root / "models" / "tiny.gguf").write_bytes(WEIGHTS)
    Project(root=root).suite(n=4)
    doc = {
        "workflow": "router",
        "owners": {"change": "alice", "approvers": ["bob"]},
        "model": {
            "provider": "openai",
            "runtime": "gguf",
            "name": "tiny",
            "file": "models/tiny.gguf",
            "base_url": "http://127.0.0.1:8080/v1",
        },
        "prompts": {"system": "route it"},
    }
    path = root / "wf.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_a_gguf_file_registers_through_a_server_with_the_local_id(
    store: Store, served: tuple[str, str], tmp_path: Path
) -> None:
    url, token = served
    client = tmp_path / "client"
    path = _project(client)
    remote = {"RELEASEGATE_URL": url, "RELEASEGATE_TOKEN": token}
    local_check = rg(client, "register", "wf.yaml", "--check", "--json")
    remote_check = rg(client, "register", "wf.yaml", "--check", "--json", env=remote)
    assert local_check.returncode == 0, local_check.stderr
    assert (remote_check.returncode, remote_check.stdout, remote_check.stderr) == (
        0,
        local_check.stdout,
        local_check.stderr,
    )
    local_id = json.loads(local_check.stdout)["version_id"]

    done = rg(client, "register", "wf.yaml", "--json", env=remote)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["version_id"] == local_id
    event = next(e for e in audit_log(store) if e.kind == "version.registered")
    assert event.payload["model_file_sent"] == str((client / "models" / "tiny.gguf").resolve())
    assert "model_file" not in event.payload  # no path the server would read
    digest = "sha256:" + hashlib.sha256(WEIGHTS).hexdigest()
    shown = json.loads(rg(client, "show", local_id, "--json", env=remote).stdout)
    assert shown["manifest"]["model"]["digest"] == digest

    # the server does not have the weights: refused in one line naming the file, nothing run
    refused = rg(client, "eval", local_id, "--suite", "suite.yaml", env=remote)
    assert refused.returncode == 2, refused.stderr
    first = refused.stderr.splitlines()[0]
    assert "models/tiny.gguf" in first and "this server does not have" in first
    assert "nothing was run" in first
    assert not [e for e in audit_log(store) if e.kind.startswith("eval")]
    assert path.exists()


def test_a_missing_gguf_file_is_the_local_message_through_a_server(
    served: tuple[str, str], tmp_path: Path
) -> None:
    url, token = served
    client = tmp_path / "client"
    _project(client)
    (client / "models" / "tiny.gguf").unlink()
    remote = {"RELEASEGATE_URL": url, "RELEASEGATE_TOKEN": token}
    for argv in (("register", "wf.yaml"), ("register", "wf.yaml", "--check")):
        local = rg(client, *argv)
        through = rg(client, *argv, env=remote)
        assert local.returncode == 2
        assert "model file 'models/tiny.gguf' not found" in local.stderr
        assert (through.returncode, through.stdout, through.stderr) == (
            local.returncode,
            local.stdout,
            local.stderr,
        )


def test_the_sender_checks_its_file_and_a_server_never_reads_it(
    store: Store, served: tuple[str, str], tmp_path: Path
) -> None:
    url, token = served
    client = tmp_path / "client"
    _project(client)
    remote = {"RELEASEGATE_URL": url, "RELEASEGATE_TOKEN": token}
    done = rg(client, "register", "wf.yaml", "--json", env=remote)
    assert done.returncode == 0, done.stderr
    with store.read() as conn:
        version = find_version(conn, json.loads(done.stdout)["version_id"])
    check_pins(store, version)  # the sender's machine (this one) has the file, unchanged

    def served_check() -> None:
        SERVING.set(True)
        check_pins(store, version)

    # a server refuses though a file is at that path here: it never reads a sent path
    with pytest.raises(PinMismatchError, match="which this server does not have"):
        contextvars.copy_context().run(served_check)
    (client / "models" / "tiny.gguf").write_bytes(WEIGHTS + b"\x00")
    with pytest.raises(PinMismatchError, match=r"the sha256 of .*tiny.gguf"):
        check_pins(store, version)  # the sender sees its weights changed


def test_a_server_refuses_a_gguf_file_registered_elsewhere_and_checks_its_own(
    store: Store, tmp_path: Path
) -> None:
    path = _project(tmp_path)
    with store.read() as conn:
        version = find_version(conn, register(store, path).version_id)  # this machine's file

    def served_check() -> None:
        SERVING.set(True)
        check_pins(store, version)

    contextvars.copy_context().run(served_check)  # the file is here, unchanged: it runs
    (tmp_path / "models" / "tiny.gguf").unlink()
    check_pins(store, version)  # a CLI elsewhere: trusted as pinned, as before
    with pytest.raises(PinMismatchError, match="tiny.gguf .* which this server does not have"):
        contextvars.copy_context().run(served_check)
