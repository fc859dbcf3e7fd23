"""Backing up and restoring an embedded (SQLite) store with SQLite's online backup API.

A backup copies one consistent snapshot of the database while other processes read and
write it (WAL: the copy runs inside a read transaction, writers carry on), into a
temporary file beside the target that is checked (``PRAGMA integrity_check``) and then
renamed into place: a failed backup never leaves a file under the name asked for. A
restore checks the backup the same way and that it is a releasegate store no newer than
this release, then copies it into the store's database through the same API, which takes
the store's write lock, so other processes see the old store or the restored one, never a
mix. PostgreSQL is backed up with its own tools (``pg_dump``/``pg_restore``;
docs/backup.md). The audit key lives outside the database and is backed up apart.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from releasegate.errors import InputError, StoreError
from releasegate.store.faults import from_os_error


@dataclass(frozen=True)
class Copied:
    """One backup or restore: what was copied where, its size and schema revision."""

    source: Path
    target: Path
    size: int
    schema: str


@contextlib.contextmanager
def _connect(path: Path, *, read_only: bool) -> Iterator[sqlite3.Connection]:
    uri = f"{path.resolve().as_uri()}?mode={'ro' if read_only else 'rwc'}"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None)
    try:
        conn.execute("PRAGMA busy_timeout=30000")
        yield conn
    finally:
        conn.close()


def _check(path: Path, what: str) -> str:
    """The schema revision of the releasegate SQLite database at ``path``; an InputError
    naming ``what`` when it is not one, or is damaged."""
    bad = f"{what} {path} is not a releasegate SQLite backup"
    if not path.is_file():
        raise InputError(f"{what} {path} does not exist", hint="name the file `db backup` wrote")
    try:
        with _connect(path, read_only=True) as conn:
            ok = conn.execute("PRAGMA integrity_check").fetchone()
            if ok is None or ok[0] != "ok":
                raise InputError(f"{bad} (damaged: {ok[0] if ok else 'no answer'})")
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.DatabaseError as exc:
        raise InputError(f"{bad} ({exc})") from None
    if row is None:
        raise InputError(f"{bad} (it has no schema revision)")
    return str(row[0])


def _os_fault(exc: OSError, what: str) -> Exception:
    fault = from_os_error(exc, what)
    if fault is not None:
        return fault
    return InputError(
        f"cannot write {exc.filename or what}: {exc.strerror or exc}",
        hint="name a new file in a directory that exists and you can write",
    )


def backup(db_path: Path, target: Path) -> Copied:
    """Copy the live database at ``db_path`` to the new file ``target``."""
    if target.exists():
        raise InputError(
            f"{target} already exists; a backup never overwrites a file",
            hint="name a new file",
        )
    try:
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    except OSError as exc:
        raise _os_fault(exc, str(target)) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with _connect(db_path, read_only=True) as src, _connect(tmp, read_only=False) as dst:
            src.backup(dst)  # one step: one snapshot, inside one read transaction
            dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        schema = _check(tmp, "the backup")
        os.replace(tmp, target)
    except sqlite3.OperationalError as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot back up {db_path}: {exc}") from exc
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _os_fault(exc, str(target)) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Copied(db_path, target, target.stat().st_size, schema)


def schema_of(source: Path) -> str:
    """The schema revision of a backup file, after checking it is a sound releasegate one."""
    return _check(source, "the backup")


def has_data(db_path: Path) -> bool:
    """Whether the database at ``db_path`` exists and holds a releasegate schema."""
    if not db_path.exists() or db_path.stat().st_size == 0:
        return False
    try:
        with _connect(db_path, read_only=True) as conn:
            return (
                conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type='table' AND name='alembic_version'"
                ).fetchone()
                is not None
            )
    except sqlite3.DatabaseError:
        return True  # something is there; never overwrite it unasked


def restore(source: Path, db_path: Path) -> Copied:
    """Copy the backup ``source`` into the database at ``db_path`` (created if missing)."""
    schema = _check(source, "the backup")
    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        with _connect(source, read_only=True) as src, _connect(db_path, read_only=False) as dst:
            dst.execute("PRAGMA journal_mode=WAL")
            src.backup(dst)
    except sqlite3.OperationalError as exc:
        raise StoreError(f"cannot restore into {db_path}: {exc}") from exc
    except OSError as exc:
        raise _os_fault(exc, str(db_path)) from exc
    return Copied(source, db_path, db_path.stat().st_size, schema)
