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

from releasegate.errors import InputError, ReleasegateError
from releasegate.store.engine import SCHEMA_HEAD, Location, Store, locate
from releasegate.store.faults import display_url, from_os_error

__all__ = [
    "Location",
    "Store",
    "StoreReady",
    "StoreStatus",
    "display_url",
    "file_fault",
    "init_store",
    "locate",
    "open_store",
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
    """What ``init`` set up: the database (password masked), blobs and the audit key."""

    database: str
    blobs: str
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
            blobs=str(loc.blob_root),
            audit_key=audit_keys.describe(loc.home),
            audit_key_id=keys.newest.key_id,
        )
    finally:
        store.close()


def upgrade_store(project_dir: Path | None = None) -> None:
    """Upgrade the schema to this release (the embedded store upgrades on open); a log
    from before the audit key is anchored with the key right after."""
    from releasegate.store.migrate import upgrade_url

    loc = locate(project_dir)
    if loc.is_embedded:
        open_store(location=loc).close()
        return
    upgrade_url(loc.url)
    store = open_store(location=loc, create=False)
    try:
        store.seal_audit_log()
    finally:
        store.close()


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
