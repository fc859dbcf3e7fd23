"""How a front reaches the store: find it, open it, set it up, upgrade it, name it.

The CLI and the SDK never import ``releasegate.store``; they call these functions
and pass the ``Store`` they get to the services. ``Store`` and ``Location`` are
re-exported here as the types a front may hold (the SDK's ``Client(store=...)``).
Importing this module loads SQLAlchemy (what ``resolve`` needs, nothing more), so
fronts import it inside the command that opens a store, never at start-up.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from releasegate.errors import InputError, ReleasegateError, SchemaOutdatedError
from releasegate.store.engine import SCHEMA_HEAD, Location, Store, locate
from releasegate.store.faults import display_url, from_os_error

if TYPE_CHECKING:
    from releasegate.store.backup import Copied

__all__ = [
    "BackupDone",
    "Location",
    "Store",
    "StoreReady",
    "StoreStatus",
    "display_url",
    "file_fault",
    "init_store",
    "backup_store",
    "locate",
    "moved_blobs",
    "open_store",
    "restore_store",
    "store_status",
    "upgrade_store",
]


def open_store(
    project_dir: Path | None = None, *, create: bool = True, location: Location | None = None
) -> Store:
    """The project's store (``RELEASEGATE_DATABASE_URL`` or ``.releasegate/``).

    With ``create=False`` a missing embedded store is a ``NotFoundError`` naming
    ``releasegate init``, so read-only commands never leave an empty store behind.
    """
    return Store.open(project_dir, create=create, location=location)


@dataclass(frozen=True)
class StoreStatus:
    """Whether a running front's store answers and has the schema this release needs."""

    reachable: bool
    schema: str | None
    expected: str
    problem: str | None

    @property
    def ready(self) -> bool:
        return self.problem is None


def store_status(store: Store) -> StoreStatus:
    """One query: the schema revision, against this release's (``/readyz``)."""
    try:
        current = store.schema_revision()
    except ReleasegateError as exc:
        return StoreStatus(False, None, SCHEMA_HEAD, exc.message)
    if current != SCHEMA_HEAD:
        return StoreStatus(
            True,
            current,
            SCHEMA_HEAD,
            f"the store's schema is {current or 'empty'}; this release needs {SCHEMA_HEAD}",
        )
    return StoreStatus(True, current, SCHEMA_HEAD, None)


@dataclass(frozen=True)
class StoreReady:
    """What ``init`` set up: the database (password masked; blobs live in it) and the audit key."""

    database: str
    audit_key: str
    """Where the key is kept: a file path or the environment variable's name."""
    audit_key_id: str


def init_store(project_dir: Path | None = None) -> StoreReady:
    """Create (or open) the store and its audit key; say where each lives."""
    from releasegate.store import audit_keys

    store = open_store(project_dir)
    try:
        loc = store.location
        keys = store.audit_keys(create=True)
        assert keys is not None  # create=True makes one or raises AuditKeyError
        return StoreReady(
            database=loc.url if loc.is_embedded else display_url(loc.url),
            audit_key=audit_keys.describe(loc.home),
            audit_key_id=keys.newest.key_id,
        )
    finally:
        store.close()


def upgrade_store(project_dir: Path | None = None) -> str | None:
    """Upgrade the schema to this release (the embedded store upgrades on open); a log
    from before the audit key is anchored with the key right after. An older store's
    blob directory moves into the database; what moved is said in the line returned."""
    from releasegate.store.migrate import upgrade_url

    loc = locate(project_dir)
    if not loc.is_embedded:
        upgrade_url(loc.url)
    store = open_store(location=loc, create=loc.is_embedded)
    try:
        if not loc.is_embedded:
            store.seal_audit_log()
        return moved_blobs(store)
    finally:
        store.close()


def moved_blobs(store: Store) -> str | None:
    """One line on what opening ``store`` moved in from an older store's blob directory."""
    moved = store.moved_blobs
    return None if moved is None else moved.describe()


@dataclass(frozen=True)
class BackupDone:
    """What ``db backup`` or ``db restore`` copied: the database file, from and to."""

    source: str
    target: str
    size: int
    schema: str
    blobs: int
    audit_key: str
    """Where the audit key is kept (a file or the environment variable): back it up apart."""


def _sqlite_file(loc: Location, verb: str) -> Path:
    from releasegate.store.faults import parse_url

    url = parse_url(loc.url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        raise InputError(
            f"`releasegate db {verb}` copies an SQLite store; this one is {display_url(loc.url)}",
            hint="back up PostgreSQL with pg_dump -Fc and restore it with pg_restore "
            "(docs/backup.md)",
        )
    return Path(str(url.database))


def backup_store(target: Path, project_dir: Path | None = None) -> BackupDone:
    """Copy the embedded store's database to ``target`` while it stays in use."""
    from releasegate.store import backup

    loc = locate(project_dir)
    db_path = _sqlite_file(loc, "backup")
    open_store(location=loc, create=False).close()  # a releasegate store, schema current
    return _done(backup.backup(db_path, target), loc)


def restore_store(
    source: Path, *, replace: bool = False, project_dir: Path | None = None
) -> BackupDone:
    """Copy a backup into the embedded store's database (upgrading an older schema);
    a store that already holds data is replaced only when ``replace`` says so."""
    from releasegate.store import backup

    loc = locate(project_dir)
    db_path = _sqlite_file(loc, "restore")
    schema = backup.schema_of(source)
    known = _revisions()
    if schema not in known:
        raise SchemaOutdatedError(
            f"the backup's schema ({schema}) is newer than this releasegate ({SCHEMA_HEAD})",
            hint="restore it with the release that wrote it: pip install -U releasegate",
        )
    if not replace and backup.has_data(db_path):
        raise InputError(
            f"the store {db_path} already holds data; restoring would replace it",
            hint="back it up first (`releasegate db backup FILE`), then pass --replace",
        )
    return _done(backup.restore(source, db_path), loc)


def _done(copied: Copied, loc: Location) -> BackupDone:
    """What was copied, with the blobs the store now holds (opening it upgrades a restored
    backup of an older release) and where the audit key, not in the copy, is read from."""
    from releasegate.store import audit_keys

    store = open_store(location=loc, create=False)
    try:
        blobs = store.blobs.count()[0]
    finally:
        store.close()
    return BackupDone(
        str(copied.source), str(copied.target), copied.size, copied.schema, blobs,
        audit_keys.describe(loc.home),
    )  # fmt: skip


def _revisions() -> list[str]:
    from releasegate.store.migrate import revisions

    return revisions()


def file_fault(exc: OSError, what: str) -> ReleasegateError | None:
    """A file-system fault writing ``what``: read-only, full or permissions as a
    ``StoreError``; a path that names no directory, or a directory, as an ``InputError``;
    None when the error is none of those (a bug)."""
    if exc.errno in _PATH_ERRORS:
        where = exc.filename or what
        return InputError(
            f"cannot write {where}: {exc.strerror or _PATH_ERRORS[exc.errno]}",
            hint="name a file in a directory that exists and you can write",
        )
    return from_os_error(exc, what)


_PATH_ERRORS = {
    errno.ENOENT: "no such file or directory",
    errno.ENOTDIR: "not a directory",
    errno.EISDIR: "is a directory",
    errno.ENAMETOOLONG: "file name too long",
}
