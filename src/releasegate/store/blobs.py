"""Content-addressed blobs in the database: the files a version refers to (prompt files,
retrieval indexes), so every replica of the server sees the same ones.

A blob is named by the sha256 of its bytes and stored once: a second ``put`` of the same
bytes writes nothing. Its bytes are kept in rows of at most ``CHUNK`` (1 MiB), so no
value nears a driver's or database's limit and a large blob streams a chunk at a time.
Text is compressed (zlib level 1 keeps about a third of it at ~100 MB/s); a blob whose
first 64 KB would not shrink by a tenth (an index of floats) is kept raw. The blob and
its chunks land in one transaction, so a crash never leaves half a blob under its name.
Every read checks the digest: bytes that do not match their name are a BlobCorruptError
naming the blob, and are never handed out. An older store's ``.releasegate/blobs/``
directory moves in on open (``move_in``).
"""

from __future__ import annotations

import contextlib
import hashlib
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from sqlalchemy import Connection, delete, func, select, text, update

from releasegate.errors import BlobCorruptError, NotFoundError, StoreError
from releasegate.store.faults import from_os_error
from releasegate.store.rows import insert_new
from releasegate.store.tables import blob_chunks, blobs

if TYPE_CHECKING:
    from releasegate.store.engine import Store

CHUNK = 1 << 20
"""Bytes of a blob per row."""
SAMPLE = 64 * 1024
"""How much of a blob is compressed to decide whether compressing it pays."""
PAYS = 0.9
"""Compress when the sample shrinks to at most this share of its size."""
LEVEL = 1
STREAM_AFTER = 4
"""Blobs of more chunks than this are read through a streaming cursor, a few at a time."""
RAW, ZLIB = "raw", "zlib"
MOVED_SUFFIX = ".moved"


def bare(digest: str) -> str:
    """The hex digest, with or without its ``sha256:`` prefix."""
    return digest.removeprefix("sha256:").lower()


def _pays(sample: bytes) -> bool:
    return bool(sample) and len(zlib.compress(sample, LEVEL)) <= PAYS * len(sample)


def _encode(chunk: bytes, compress: bool) -> tuple[str, bytes]:
    if compress:
        packed = zlib.compress(chunk, LEVEL)
        if len(packed) < len(chunk):
            return ZLIB, packed
    return RAW, chunk


@dataclass(frozen=True)
class BlobMove:
    """What ``move_in`` did with an older store's blob directory."""

    source: Path
    moved: int
    """Files written into the database."""
    present: int
    """Files whose blob the database already held (a move that was interrupted, resumed)."""
    mismatched: tuple[Path, ...]
    """Files whose content does not match their name: left where they were."""
    kept_at: Path | None
    """Where the directory was renamed to once every file was in (None: left in place)."""

    def describe(self) -> str:
        n = self.moved + self.present
        line = f"moved {n} blob{'s' if n != 1 else ''} from {self.source} into the database"
        if self.present:
            line += f" ({self.present} already there)"
        if self.kept_at is not None:
            line += f"; the old directory is now {self.kept_at} (delete it once backed up)"
        if self.mismatched:
            shown = ", ".join(str(p) for p in self.mismatched[:3])
            line += (
                f"; {len(self.mismatched)} file(s) do not match their name and were left "
                f"in place: {shown}"
            )
        return line


class BlobStore:
    """``store.blobs``: put bytes, get them back by digest, checked."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # -- writing ------------------------------------------------------------------------

    def put(self, data: bytes) -> str:
        """Store ``data`` (once); its hex sha256."""
        digest = hashlib.sha256(data).hexdigest()
        if not self.has(digest):
            with self._store.write() as conn:
                self.put_in(conn, data)
        return digest

    @staticmethod
    def put_in(conn: Connection, data: bytes) -> str:
        """``put`` inside the caller's write transaction, so the blob lands with what refers
        to it (a version) or not at all."""
        digest = hashlib.sha256(data).hexdigest()
        chunks = (data[i : i + CHUNK] for i in range(0, len(data), CHUNK))
        _write_in(conn, digest, len(data), chunks, data[:SAMPLE])
        return digest

    def put_file(self, path: Path) -> str:
        """Store a file without reading it whole: hashed, then written a chunk at a time.
        A file that changes between the two reads is refused; nothing is stored."""
        digest, size, sample = self._hash_file(path)
        if self.has(digest):
            return digest
        h = hashlib.sha256()

        def chunks(fh: BinaryIO) -> Iterator[bytes]:
            while block := fh.read(CHUNK):
                h.update(block)
                yield block
            if h.hexdigest() != digest:
                raise BlobCorruptError(
                    f"{path} changed while it was being stored; nothing was stored",
                    digest=digest,
                    hint="store it again once nothing writes it",
                )

        try:
            with path.open("rb") as fh:
                self._write(digest, size, chunks(fh), sample)
        except OSError as exc:
            raise _read_fault(exc, path) from exc
        return digest

    @staticmethod
    def _hash_file(path: Path) -> tuple[str, int, bytes]:
        h = hashlib.sha256()
        size = 0
        sample = b""
        try:
            with path.open("rb") as fh:
                while block := fh.read(CHUNK):
                    if not sample:
                        sample = block[:SAMPLE]
                    h.update(block)
                    size += len(block)
        except OSError as exc:
            raise _read_fault(exc, path) from exc
        return h.hexdigest(), size, sample

    def _write(self, digest: str, size: int, chunks: Iterable[bytes], sample: bytes) -> None:
        with self._store.write() as conn:
            _write_in(conn, digest, size, chunks, sample)

    # -- reading ------------------------------------------------------------------------

    def has(self, digest: str) -> bool:
        with self._store.read() as conn:
            found = conn.execute(select(blobs.c.digest).where(blobs.c.digest == bare(digest)))
            return found.first() is not None

    def size(self, digest: str) -> int:
        """The blob's size in bytes (``NotFoundError`` when it is not stored)."""
        with self._store.read() as conn:
            return _header(conn, bare(digest))[0]

    def stored_size(self, digest: str) -> int:
        """Bytes the database keeps for the blob (after compression)."""
        with self._store.read() as conn:
            return _header(conn, bare(digest))[1]

    def get(self, digest: str) -> bytes:
        """The blob's bytes, checked against its digest."""
        return b"".join(self.iter_chunks(digest))

    def iter_chunks(self, digest: str) -> Iterator[bytes]:
        """The blob a chunk at a time. The digest is checked after the last chunk, before it
        is yielded, so a reader that writes the chunks to a temporary file and renames it
        into place once this ends never keeps corrupt bytes (``releasegate db blob`` does)."""
        name = bare(digest)
        with self._store.read() as conn:
            size, _, count = _header(conn, name)
            # a few chunks come in one fetch; more stream (a server-side cursor on PostgreSQL)
            streamed = conn.execution_options(stream_results=True, yield_per=4)
            rows = (streamed if count > STREAM_AFTER else conn).execute(
                select(blob_chunks.c.seq, blob_chunks.c.encoding, blob_chunks.c.data)
                .where(blob_chunks.c.digest == name)
                .order_by(blob_chunks.c.seq)
            )
            with contextlib.closing(rows):
                yield from self._checked(name, rows, size, count)

    def _checked(self, name: str, rows: Iterable[Any], size: int, count: int) -> Iterator[bytes]:
        h = hashlib.sha256()
        seen = length = 0
        held: bytes | None = None
        for seq, encoding, data in rows:
            chunk = self._decode(name, encoding, bytes(data))
            seen += 1
            if seq != seen:
                raise _corrupt(name, f"chunk {seen} of {count} is missing")
            h.update(chunk)
            length += len(chunk)
            if held is not None:
                yield held
            held = chunk
        if seen != count or length != size:
            raise _corrupt(name, f"{seen} of {count} chunks, {length} of {size} bytes")
        if h.hexdigest() != name:
            raise _corrupt(name, "its bytes do not match its digest")
        if held is not None:
            yield held

    @staticmethod
    def _decode(name: str, encoding: str, data: bytes) -> bytes:
        if encoding == RAW:
            return data
        if encoding == ZLIB:
            try:
                return zlib.decompress(data)
            except zlib.error:
                raise _corrupt(name, "a chunk does not decompress") from None
        raise _corrupt(name, f"a chunk has an unknown encoding {encoding!r}")

    def count(self) -> tuple[int, int, int]:
        """(blobs, bytes given, bytes stored) in the database."""
        with self._store.read() as conn:
            n, size, stored = conn.execute(
                select(
                    func.count(),
                    func.coalesce(func.sum(blobs.c.size), 0),
                    func.coalesce(func.sum(blobs.c.stored_size), 0),
                )
            ).one()
        return int(n), int(size), int(stored)

    # -- orphans ------------------------------------------------------------------------

    @staticmethod
    def hold_writers(conn: Connection) -> None:
        """Keep blob writers out until ``conn``'s write transaction ends; call it before
        reading what refers to blobs. On PostgreSQL it locks the blobs table (SHARE ROW
        EXCLUSIVE): a registration in flight, which writes its blobs in its version's
        transaction, commits first and its version is then seen; the next one waits, so
        no blob is deleted under a version about to name it. SQLite's write transaction
        already keeps every other writer out."""
        if conn.dialect.name == "postgresql":
            conn.execute(text("LOCK TABLE blobs IN SHARE ROW EXCLUSIVE MODE"))

    @staticmethod
    def orphans(conn: Connection, referenced: set[str]) -> list[tuple[str, int]]:
        """(digest, size) of the blobs not in ``referenced`` (after ``hold_writers``)."""
        rows = conn.execute(select(blobs.c.digest, blobs.c.size).order_by(blobs.c.digest))
        return [(str(d), int(n)) for d, n in rows if d not in referenced]

    @staticmethod
    def delete(conn: Connection, digests: Iterable[str]) -> None:
        """Delete these blobs and their chunks, in ``conn``'s transaction."""
        names = list(digests)
        for start in range(0, len(names), 500):
            some = names[start : start + 500]
            conn.execute(delete(blob_chunks).where(blob_chunks.c.digest.in_(some)))
            conn.execute(delete(blobs).where(blobs.c.digest.in_(some)))

    # -- an older store's directory -----------------------------------------------------

    def move_in(self, root: Path) -> BlobMove | None:
        """Move the blob files of ``root`` (``.releasegate/blobs/``, as releases before the
        database kept them) into the database; None when there is no such directory.

        Each file is hashed and checked against its name before it is stored, so what
        moves in is what was put there; a file that does not match is left and named.
        Once every file is in, the directory is renamed ``blobs.moved`` (kept: delete it
        once the database is backed up), so the next open does nothing. An interrupted
        move resumes where it stopped: files already in are counted, not written again.
        """
        if not root.is_dir():
            return None
        moved = present = 0
        mismatched: list[Path] = []
        for path in sorted(root.glob("??/*")):
            if not path.is_file() or path.name.startswith(".tmp-"):
                continue  # a temporary file was never a blob under a real name
            name = path.parent.name + path.name
            digest, _, _ = self._hash_file(path)
            if digest != name:
                mismatched.append(path)
                continue
            if self.has(digest):
                present += 1
                continue
            self.put_file(path)
            moved += 1
        kept_at = None
        if not mismatched:
            kept_at = _free_name(root.with_name(root.name + MOVED_SUFFIX))
            try:
                root.rename(kept_at)
            except OSError as exc:
                fault = from_os_error(exc, str(root))
                if fault is None:
                    raise
                raise fault from exc
        return BlobMove(root, moved, present, tuple(mismatched), kept_at)


def _write_in(
    conn: Connection, digest: str, size: int, chunks: Iterable[bytes], sample: bytes
) -> None:
    """The blob's rows, in ``conn``'s transaction; nothing when it is already stored."""
    header = {
        "digest": digest,
        "size": size,
        "stored_size": 0,
        "chunks": 0,
        "created_at": datetime.now(UTC),
    }
    added = conn.execute(insert_new(conn, blobs).values(**header).returning(blobs.c.digest))
    if added.first() is None:
        return  # stored already (or by another writer first): same bytes, same name
    compress = _pays(sample)
    stored = seq = 0
    for seq, chunk in enumerate(chunks, start=1):
        encoding, data = _encode(chunk, compress)
        conn.execute(
            blob_chunks.insert().values(digest=digest, seq=seq, encoding=encoding, data=data)
        )
        stored += len(data)
    conn.execute(
        update(blobs).where(blobs.c.digest == digest).values(stored_size=stored, chunks=seq)
    )


def _header(conn: Connection, name: str) -> tuple[int, int, int]:
    row = conn.execute(
        select(blobs.c.size, blobs.c.stored_size, blobs.c.chunks).where(blobs.c.digest == name)
    ).first()
    if row is None:
        raise NotFoundError(
            f"no blob sha256:{name} in the store",
            hint="the digest is a version's file or index digest (`releasegate show VERSION`)",
        )
    return int(row[0]), int(row[1]), int(row[2])


def _corrupt(name: str, why: str) -> BlobCorruptError:
    return BlobCorruptError(
        f"blob sha256:{name} is corrupt: {why}",
        digest=name,
        hint="restore the database from a backup (docs/backup.md); the blob was not used",
    )


def _read_fault(exc: OSError, path: Path) -> StoreError:
    return StoreError(f"cannot read {path}: {exc.strerror or exc}")


def _free_name(path: Path) -> Path:
    n = 1
    candidate = path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate
