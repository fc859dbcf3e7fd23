"""gc collects the blobs no version refers to (left by releases whose register stored them
first and then failed, or moved in from an older blob directory), on SQLite and
PostgreSQL, and keeps every blob a version's manifest names; a registration at the same
time never loses its blobs."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from releasegate.errors import NotFoundError
from releasegate.release.orphans import collect_orphan_blobs
from releasegate.release.register import register
from releasegate.store.blobs import BlobStore
from releasegate.store.engine import Store
from tests.helpers import rg
from tests.release.test_register_atomic import INDEX, PROMPT, _workflow


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_gc_collects_what_no_version_names_and_keeps_what_one_does(
    store: Store, tmp_path: Path
) -> None:
    register(store, _workflow(tmp_path))
    orphan = b"a prompt file of a registration that failed\n" * 1000
    store.blobs.put(orphan)

    dry = collect_orphan_blobs(store, dry_run=True)
    assert dry.digests == (f"sha256:{_sha(orphan)}",) and dry.size == len(orphan)
    assert store.blobs.has(_sha(orphan))  # a dry run deletes nothing

    done = collect_orphan_blobs(store)
    assert done.digests == dry.digests
    with pytest.raises(NotFoundError):
        store.blobs.get(_sha(orphan))
    assert store.blobs.get(_sha(PROMPT.encode())) == PROMPT.encode()
    assert store.blobs.get(_sha(INDEX)) == INDEX
    assert collect_orphan_blobs(store).digests == ()


def test_a_registration_during_gc_keeps_its_blobs(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gc starts while a registration has written its blobs and not yet committed, and
    the blobs were orphans before it (the most a race could take): gc waits for it, sees
    its version and keeps them."""
    path = _workflow(tmp_path)
    for data in (PROMPT.encode(), INDEX):
        store.blobs.put(data)  # orphans now, named by the version about to be registered
    written, release = threading.Event(), threading.Event()
    put_in = BlobStore.put_in

    def paused(conn: Any, data: bytes) -> str:
        digest = put_in(conn, data)
        if data == INDEX:  # the last of its blobs: the registration waits, uncommitted
            written.set()
            release.wait(60)
        return digest

    monkeypatch.setattr(BlobStore, "put_in", staticmethod(paused))
    errors: list[BaseException] = []

    def run(fn: Callable[[], object]) -> None:
        try:
            fn()
        except BaseException as exc:
            errors.append(exc)

    registering = threading.Thread(target=run, args=(lambda: register(store, path),))
    registering.start()
    assert written.wait(60)
    collecting = threading.Thread(target=run, args=(lambda: collect_orphan_blobs(store),))
    collecting.start()
    collecting.join(2)  # unlocked, gc would be done by now, the blobs deleted
    release.set()
    registering.join(60)
    collecting.join(60)
    assert not errors, errors
    assert store.blobs.get(_sha(PROMPT.encode())) == PROMPT.encode()
    assert store.blobs.get(_sha(INDEX)) == INDEX


def test_gc_says_what_it_collected(tmp_path: Path) -> None:
    path = _workflow(tmp_path)
    assert rg(tmp_path, "register", str(path)).returncode == 0
    from releasegate.store.engine import Location

    home = tmp_path / ".releasegate"
    loc = Location(f"sqlite:///{home / 'releasegate.db'}", home / "blobs", True, home)
    opened = Store.open(location=loc)
    try:
        opened.blobs.put(b"orphan bytes")
    finally:
        opened.close()
    dry = rg(tmp_path, "gc", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would collect 1 blob no version refers to (12 bytes); nothing was deleted" in dry.stdout
    done = json.loads(rg(tmp_path, "gc", "--json").stdout)
    assert done["blobs"] == {
        "dry_run": False,
        "digests": [f"sha256:{_sha(b'orphan bytes')}"],
        "bytes": 12,
    }
    one = json.loads(rg(tmp_path, "gc", "router", "--json").stdout)
    assert one["blobs"] is None  # blobs are the store's, not one workflow's
    gone = rg(tmp_path, "db", "blob", f"sha256:{_sha(b'orphan bytes')}")
    assert gone.returncode == 2
    kept = rg(tmp_path, "db", "blob", f"sha256:{_sha(PROMPT.encode())}")
    assert kept.returncode == 0 and kept.stdout == PROMPT
