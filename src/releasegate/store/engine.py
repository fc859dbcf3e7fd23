"""Opening a store: the embedded SQLite default or a shared PostgreSQL, same code.

SQLite runs in WAL mode and every write transaction starts with BEGIN IMMEDIATE,
so two writers serialise instead of failing half-way; readers never block.
The schema version is checked with one query on open; alembic (slow to import)
is loaded only when the store must be created or upgraded. The embedded store
upgrades itself; a shared PostgreSQL refuses until ``releasegate db upgrade``
so replicas never race a migration.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from releasegate.domain.audit import Keyring
from releasegate.errors import (
    NotFoundError,
    PrerequisiteError,
    SchemaOutdatedError,
    StoreError,
    WriteConflictError,
)
from releasegate.store import faults
from releasegate.store.blobs import BlobMove, BlobStore
from releasegate.store.faults import parse_url

SCHEMA_HEAD = "0019"
"""The newest migration: checked on open without importing alembic (slow); a test holds
it equal to the migrations' head. Their order comes from alembic (``migrate.revisions``)."""
STORE_DIR = ".releasegate"
Conn = Connection  # what services hold while they compose repositories in one transaction


@dataclass(frozen=True)
class Location:
    url: str
    blob_root: Path
    """Where releases before 0014 kept blobs; their files move into the database on open."""
    is_embedded: bool
    home: Path


def locate(project_dir: Path | None = None) -> Location:
    """Where the store lives: ``RELEASEGATE_DATABASE_URL`` or ``.releasegate/`` of the project."""
    home = (project_dir or Path(os.environ.get("RELEASEGATE_DIR", "."))).resolve() / STORE_DIR
    raw = os.environ.get("RELEASEGATE_DATABASE_URL")
    if raw and raw.strip():
        parsed = parse_url(raw)
        url = parsed.render_as_string(hide_password=False)
        return Location(
            url=url,
            blob_root=home / "blobs",
            is_embedded=parsed.get_backend_name() == "sqlite",
            home=home,
        )
    return Location(
        url=f"sqlite:///{home / 'releasegate.db'}",
        blob_root=home / "blobs",
        is_embedded=True,
        home=home,
    )


def _sqlite_pragmas(engine: Engine, busy_timeout: float) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")  # first: WAL may wait
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        mode = "IMMEDIATE" if conn.get_execution_options().get("releasegate_write") else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(raw_url: str, *, migrating: bool = False) -> Engine:
    """An engine with the store's timeouts, whose driver errors become StoreError.

    ``migrating``: no statement timeout, so ``releasegate db upgrade`` may take its time.
    """
    url, timeouts = faults.split_timeouts(faults.parse_url(raw_url))
    if migrating:
        timeouts = replace(timeouts, statement=0.0)
    args = faults.connect_args(url, timeouts)
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args=args)
        _sqlite_pragmas(engine, timeouts.lock)
    else:
        try:
            engine = create_engine(url, pool_pre_ping=True, connect_args=args)
        except ModuleNotFoundError as exc:
            raise PrerequisiteError(
                f"the database driver is not installed ({exc.name})",
                hint="pip install 'releasegate[postgres]'",
            ) from None
    faults.install(engine, url)
    return engine


def _is_missing_table(exc: OperationalError | ProgrammingError) -> bool:
    code = getattr(exc.orig, "sqlstate", None)  # psycopg: undefined_table
    return code == "42P01" or "no such table" in str(exc.orig)


def _is_unique_violation(exc: IntegrityError) -> bool:
    code = getattr(exc.orig, "sqlstate", None)  # psycopg
    return code == "23505" or "UNIQUE constraint failed" in str(exc.orig)


def _known_revisions() -> list[str]:
    from releasegate.store.migrate import revisions

    return revisions()


class Batches:
    """``Store.write_batches``: one connection, a write transaction at a time."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.transaction = conn.begin()
        self.commits = 0

    def commit(self) -> None:
        self.transaction.commit()
        self.commits += 1
        self.transaction = self.conn.begin()


class Store:
    """A database (blobs included); services take one and open transactions on it."""

    def __init__(self, engine: Engine, location: Location) -> None:
        self.engine = engine
        self.blobs = BlobStore(self)
        self.location = location
        self.dialect = engine.dialect.name
        self.moved_blobs: BlobMove | None = None
        """What opening the store moved in from an older store's blob directory."""

    @classmethod
    def open(
        cls,
        project_dir: Path | None = None,
        *,
        create: bool = True,
        location: Location | None = None,
    ) -> Store:
        loc = location or locate(project_dir)
        url = faults.parse_url(loc.url)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            db_path = Path(str(url.database))
            if not db_path.exists():
                if not create:
                    raise NotFoundError(
                        f"no releasegate store at {loc.home}",
                        hint="run `releasegate init` (or `releasegate demo`) in your project",
                    )
                try:
                    db_path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    fault = faults.from_os_error(exc, str(db_path.parent))
                    if fault is None:
                        raise
                    raise fault from exc
        engine = make_engine(loc.url)
        store = cls(engine, loc)
        try:
            store.check_schema(upgrade=loc.is_embedded)
            store.moved_blobs = store.blobs.move_in(loc.blob_root)
        except BaseException:
            engine.dispose()
            raise
        return store

    def schema_revision(self) -> str | None:
        """The store's schema revision; None only when the store is really empty.

        A store that could not be read (locked, unreadable, unreachable) raises
        StoreError here, so it is never mistaken for an empty one and migrated.
        """
        try:
            with self.engine.connect() as conn:
                row = conn.execute(text("SELECT version_num FROM alembic_version")).first()
                conn.rollback()
        except (OperationalError, ProgrammingError) as exc:
            if _is_missing_table(exc):
                return None
            raise StoreError(
                f"store is unreadable: {faults.display_url(self.location.url)} "
                f"({str(exc.orig).strip().splitlines()[0][:200]})",
                hint="it was not changed; point releasegate at the right store "
                "or restore it from a backup",
            ) from exc
        return None if row is None else str(row[0])

    def check_schema(self, *, upgrade: bool) -> None:
        current = self.schema_revision()
        if current == SCHEMA_HEAD:
            return
        if current is not None and current not in _known_revisions():
            raise SchemaOutdatedError(
                f"this store's schema ({current}) is newer than this releasegate ({SCHEMA_HEAD})",
                hint="upgrade releasegate: pip install -U releasegate",
            )
        if current is None and self.dialect == "sqlite":
            self._refuse_foreign()
        if not upgrade:
            raise SchemaOutdatedError(
                f"this store's schema is {current or 'empty'}; releasegate needs {SCHEMA_HEAD}",
                hint="back up the database, then run `releasegate db upgrade`",
            )
        self.upgrade()

    def _refuse_foreign(self) -> None:
        """A database with tables but no releasegate schema is someone else's: never migrate it."""
        from sqlalchemy import inspect

        with self.engine.connect() as conn:
            tables = sorted(inspect(conn).get_table_names())
            conn.rollback()
        if tables:
            shown = ", ".join(tables[:5]) + (", ..." if len(tables) > 5 else "")
            raise StoreError(
                f"store is unreadable: {faults.display_url(self.location.url)} is not a "
                f"releasegate database (it has no releasegate schema but tables of its own "
                f"({shown}))",
                hint="point RELEASEGATE_DIR / RELEASEGATE_DATABASE_URL at a releasegate store "
                "or an empty database; it was not changed",
            )

    def upgrade(self) -> None:
        from releasegate.store.migrate import upgrade

        upgrade(self.engine)
        self.seal_audit_log()

    def audit_keys(self, create: bool = False) -> Keyring | None:
        """The audit keyring (outside the database); ``create`` makes the key file if none."""
        from releasegate.store import audit_keys

        return audit_keys.load(self.location.home, create=create)

    def seal_audit_log(self) -> None:
        """Anchor a log written by the unkeyed releases with the key, right after the upgrade."""
        from releasegate.store.audit import AuditRepo

        with self.write() as conn:
            AuditRepo(conn).seal()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction; on SQLite it takes the write lock at BEGIN.

        A unique violation (two writers inserting the same row at once, which only
        PostgreSQL lets happen) becomes WriteConflictError, so the caller can look again.
        """
        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(
                    releasegate_write=True, releasegate_audit_keys=self.audit_keys
                )
                with conn.begin():
                    yield conn
        except IntegrityError as exc:
            if not _is_unique_violation(exc):
                raise
            raise WriteConflictError(
                "another writer stored the same thing at the same moment; nothing was written",
                hint="run the command again",
            ) from exc

    @contextmanager
    def write_batches(self) -> Iterator[Batches]:
        """Write transactions in a row on one connection: ``commit()`` lands what is
        written so far and begins the next, so a long writer lets others in between.
        Leaving normally commits the last one; an exception rolls it back (only it)."""
        try:
            with self.engine.connect() as conn:
                batches = Batches(conn.execution_options(releasegate_write=True))
                try:
                    yield batches
                except BaseException:
                    batches.transaction.rollback()
                    raise
                batches.transaction.commit()
        except IntegrityError as exc:
            if not _is_unique_violation(exc):
                raise
            raise WriteConflictError(
                "another writer stored the same thing at the same moment",
                hint="run the command again",
            ) from exc

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A read transaction that sees one moment throughout (REPEATABLE READ on PostgreSQL;
        SQLite's WAL readers already do), for checks that compare several tables."""
        with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    def close(self) -> None:
        self.engine.dispose()
