"""Blobs in the database, on SQLite and PostgreSQL: stored once by digest, chunked,
compressed where it pays, checked on every read; an older store's blob directory moves in
on open, resumably, leaving what does not match its name."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from releasegate.errors import BlobCorruptError, NotFoundError
from releasegate.store.blobs import CHUNK
from releasegate.store.engine import Store
from tests.helpers import rg


def _text(size: int) -> bytes:
    line = b"I lost my card yesterday and someone paid with it, please block it\n"
    return (line * (size // len(line) + 1))[:size]


def _rows(store: Store, table: str) -> int:
    with store.read() as conn:
        return int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_a_blob_comes_back_as_it_went_in_once_per_content(store: Store) -> None:
    text, noise = _text(3 * CHUNK + 5), os.urandom(CHUNK + 1)
    digest = store.blobs.put(text)
    assert digest == hashlib.sha256(text).hexdigest()
    assert store.blobs.get(digest) == text
    assert store.blobs.get(f"sha256:{digest}") == text
    assert store.blobs.put(text) == digest  # the same bytes: nothing new
    assert store.blobs.put(noise) == hashlib.sha256(noise).hexdigest()
    assert store.blobs.get(hashlib.sha256(noise).hexdigest()) == noise
    assert store.blobs.put(b"") == hashlib.sha256(b"").hexdigest()
    assert store.blobs.get(hashlib.sha256(b"").hexdigest()) == b""
    assert _rows(store, "blobs") == 3
    assert _rows(store, "blob_chunks") == 4 + 2  # text in 4 chunks, noise in 2, empty in 0
    assert store.blobs.stored_size(digest) < len(text) / 5  # text compresses
    assert store.blobs.stored_size(hashlib.sha256(noise).hexdigest()) == len(noise)  # noise not


def test_a_blob_not_stored_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match=r"no blob sha256:0{64} in the store"):
        store.blobs.get("0" * 64)


@pytest.mark.parametrize("damage", ["bytes", "chunk"])
def test_a_corrupt_blob_is_an_error_naming_it_never_its_bytes(
    store: Store, tmp_path: Path, damage: str
) -> None:
    data = os.urandom(2 * CHUNK)
    digest = store.blobs.put(data)
    with store.write() as conn:
        if damage == "bytes":
            conn.execute(
                sa.text("UPDATE blob_chunks SET data = :d WHERE seq = 2"), {"d": os.urandom(CHUNK)}
            )
        else:
            conn.execute(sa.text("DELETE FROM blob_chunks WHERE seq = 1"))
    with pytest.raises(BlobCorruptError, match=f"blob sha256:{digest} is corrupt"):
        store.blobs.get(digest)
    env = {} if store.dialect == "sqlite" else {"RELEASEGATE_DATABASE_URL": store.location.url}
    shown = rg(tmp_path, "db", "blob", digest, "--out", "copy.bin", env=env)
    assert shown.returncode == 1, shown.stderr
    assert f"refused: blob sha256:{digest} is corrupt" in shown.stderr
    assert not (tmp_path / "copy.bin").exists()  # no corrupt bytes kept under the name


def test_db_blob_writes_a_stored_blob(store: Store, tmp_path: Path) -> None:
    data = _text(CHUNK + 10)
    digest = store.blobs.put(data)
    env = {} if store.dialect == "sqlite" else {"RELEASEGATE_DATABASE_URL": store.location.url}
    done = rg(tmp_path, "db", "blob", f"sha256:{digest}", "--out", "copy.txt", env=env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "copy.txt").read_bytes() == data
    missing = rg(tmp_path, "db", "blob", "ab" * 32, env=env)
    assert missing.returncode == 2
    assert f"error: no blob sha256:{'ab' * 32} in the store" in missing.stderr


def test_two_writers_of_one_blob_store_it_once(store: Store) -> None:
    data = _text(2 * CHUNK)
    other = Store.open(location=store.location)
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def put(s: Store) -> None:
        start.wait()
        try:
            s.blobs.put(data)
        except BaseException as exc:  # pragma: no cover - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=put, args=(s,)) for s in (store, other)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.close()
    assert errors == []
    assert _rows(store, "blobs") == 1
    assert store.blobs.get(hashlib.sha256(data).hexdigest()) == data


def _old_directory(root: Path, blobs: list[bytes]) -> list[str]:
    """A blob directory as releases before 0014 wrote it: ``ab/cdef...`` by sha256."""
    digests = []
    for data in blobs:
        digest = hashlib.sha256(data).hexdigest()
        (root / digest[:2]).mkdir(parents=True, exist_ok=True)
        (root / digest[:2] / digest[2:]).write_bytes(data)
        digests.append(digest)
    return digests


def test_an_older_stores_blobs_move_in_on_open_and_only_once(store: Store) -> None:
    root = store.location.blob_root
    blobs = [_text(100), os.urandom(3 * CHUNK), b"prompt: route it"]
    digests = _old_directory(root, blobs)
    store.blobs.put(blobs[0])  # a move interrupted after the first file: resumed
    (root / "ab").mkdir(exist_ok=True)
    (root / "ab" / ".tmp-x1").write_bytes(b"half")  # an old crash's temporary: not a blob
    again = Store.open(location=store.location)
    try:
        moved = again.moved_blobs
        assert moved is not None
        assert (moved.moved, moved.present, moved.mismatched) == (2, 1, ())
        assert moved.kept_at == root.with_name("blobs.moved")
        assert moved.describe() == (
            f"moved 3 blobs from {root} into the database (1 already there); the old "
            f"directory is now {root.with_name('blobs.moved')} (delete it once backed up)"
        )
        for digest, data in zip(digests, blobs, strict=True):
            assert again.blobs.get(digest) == data
        assert not root.exists()
    finally:
        again.close()
    third = Store.open(location=store.location)
    assert third.moved_blobs is None
    third.close()


def test_a_file_that_does_not_match_its_name_is_left_and_named(store: Store) -> None:
    root = store.location.blob_root
    (good,) = _old_directory(root, [b"good"])
    bad = root / ("cd" * 1) / ("ef" * 31)
    bad.parent.mkdir(exist_ok=True)
    bad.write_bytes(b"changed by hand")
    again = Store.open(location=store.location)
    try:
        moved = again.moved_blobs
        assert moved is not None
        assert (moved.moved, moved.mismatched, moved.kept_at) == (1, (bad,), None)
        assert f"1 file(s) do not match their name and were left in place: {bad}" in (
            moved.describe()
        )
        assert again.blobs.get(good) == b"good"
        assert bad.read_bytes() == b"changed by hand"
    finally:
        again.close()


def test_db_upgrade_says_what_moved(tmp_path: Path) -> None:
    first = rg(tmp_path, "init")
    assert first.returncode == 0, first.stderr
    root = tmp_path / ".releasegate" / "blobs"
    _old_directory(root, [b"one", b"two"])
    done = rg(tmp_path, "db", "upgrade")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1] == (
        f"moved 2 blobs from {root} into the database; the old directory is now "
        f"{root.with_name('blobs.moved')} (delete it once backed up)"
    )


def test_a_store_of_the_release_before_upgrades_and_its_blobs_move_in(
    store_url: str, tmp_path: Path
) -> None:
    """A store at 0012 (before blobs in the database) with its blob directory: on SQLite
    the first command upgrades it and moves them in; on PostgreSQL `db upgrade` does."""
    from releasegate.store.engine import make_engine
    from releasegate.store.migrate import upgrade

    home = tmp_path / ".releasegate"
    if store_url.startswith("sqlite"):
        home.mkdir(exist_ok=True)
        Path(store_url.removeprefix("sqlite:///")).unlink(missing_ok=True)
    engine = make_engine(store_url, migrating=True)
    if engine.dialect.name == "postgresql":  # the fixture's database is at the head: empty it
        with engine.connect() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
            conn.commit()
    upgrade(engine, "0012")
    engine.dispose()
    blobs = [b"system: route it\n", os.urandom(CHUNK + 3)]
    digests = _old_directory(home / "blobs", blobs)
    env = {} if store_url.startswith("sqlite") else {"RELEASEGATE_DATABASE_URL": store_url}
    argv = ("db", "upgrade") if env else ("audit", "verify")
    done = rg(tmp_path, *argv, env=env)
    assert done.returncode == 0, done.stderr
    said = done.stdout if env else done.stderr
    assert f"moved 2 blobs from {home / 'blobs'} into the database" in said, done.stderr
    for digest, data in zip(digests, blobs, strict=True):
        got = rg(tmp_path, "db", "blob", digest, "--out", "b.bin", env=env)
        assert got.returncode == 0, got.stderr
        assert (tmp_path / "b.bin").read_bytes() == data
