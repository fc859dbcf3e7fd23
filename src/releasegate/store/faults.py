"""Storage faults become answers: one translation point from driver errors to StoreError.

A store that cannot be used as given (read-only, full, locked past the lock
timeout, unreachable, timed out, not a database) is a fact about the machine,
not a bug: every command says so in one line naming the cause and the store
(password masked) and exits 2. ``install`` hooks SQLAlchemy's ``handle_error``
event on an engine so that every statement and every connect goes through
``classify``; blob and file writes call ``from_os_error``. Conflicts another
writer will have finished with a moment later (a serialization failure, a
deadlock, SQLite busy on upgrade) become ``StoreConflictError``, which
``release.retry`` retries. Errors that are answers of their own (a unique
violation, a missing table) pass through untouched.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.engine import ExceptionContext, make_url
from sqlalchemy.engine.url import URL
from sqlalchemy.exc import ArgumentError

from releasegate.domain.masking import mask_url
from releasegate.errors import InputError, StoreConflictError, StoreError

DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_STATEMENT_TIMEOUT = 30.0
DEFAULT_LOCK_TIMEOUT = 10.0
DEFAULT_SQLITE_BUSY_TIMEOUT = 30.0
URL_HINT = (
    "set RELEASEGATE_DATABASE_URL to postgresql://user@host:5432/dbname "
    "or sqlite:////absolute/path/releasegate.db (or unset it for .releasegate/ here)"
)

# SQLSTATEs (PostgreSQL) that a moment later will have gone away
_TRANSIENT_SQLSTATES = {"40001": "serialization failure", "40P01": "deadlock"}
_ANSWERS = {"IntegrityError", "ProgrammingError", "DataError", "NotSupportedError"}
_TRANSIENT_SQLITE = {"SQLITE_BUSY_SNAPSHOT", "SQLITE_BUSY_RECOVERY", "SQLITE_LOCKED_SHAREDCACHE"}
_OS_CAUSES = {
    errno.EROFS: "read-only file system",
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}


@dataclass(frozen=True)
class Timeouts:
    """Seconds; ``statement`` and ``lock`` apply on PostgreSQL, ``lock`` is SQLite's busy wait."""

    connect: float
    statement: float
    lock: float


def _seconds(raw: str, name: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise InputError(
            f"{name} must be a positive number of seconds, not {raw!r}",
            hint="e.g. 5 or 0.5",
        )
    return value


def parse_url(raw: str) -> URL:
    """A database URL as users write it; ``postgres://`` and ``postgresql://`` mean psycopg."""
    text = raw.strip()
    try:
        url = make_url(text)
    except ArgumentError:
        raise InputError(
            f"RELEASEGATE_DATABASE_URL is not a database URL: {mask_url(text)!r}",
            hint=URL_HINT,
        ) from None
    backend, _, driver = url.drivername.partition("+")
    if backend in ("postgres", "postgresql"):
        url = url.set(drivername=f"postgresql+{driver or 'psycopg'}")
    elif backend == "sqlite":
        if driver not in ("", "pysqlite"):
            raise InputError(
                f"RELEASEGATE_DATABASE_URL: unknown SQLite driver {driver!r}", hint=URL_HINT
            )
    else:
        raise InputError(
            f"RELEASEGATE_DATABASE_URL: releasegate stores in PostgreSQL or SQLite, "
            f"not {backend!r} ({mask_url(text)})",
            hint=URL_HINT,
        )
    return url


def split_timeouts(url: URL) -> tuple[URL, Timeouts]:
    """Take our timeout parameters out of the URL; the environment, then defaults, fill in."""
    query = dict(url.query)

    def pick(param: str, env: str, default: float) -> float:
        raw = query.pop(param, None)
        if isinstance(raw, tuple):
            raw = raw[-1]
        if raw is not None:
            return _seconds(str(raw), f"the URL parameter {param}")
        if os.environ.get(env):
            return _seconds(os.environ[env], env)
        return default

    is_sqlite = url.get_backend_name() == "sqlite"
    lock_default = DEFAULT_SQLITE_BUSY_TIMEOUT if is_sqlite else DEFAULT_LOCK_TIMEOUT
    timeouts = Timeouts(
        connect=pick("connect_timeout", "RELEASEGATE_CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT),
        statement=pick(
            "statement_timeout", "RELEASEGATE_STATEMENT_TIMEOUT", DEFAULT_STATEMENT_TIMEOUT
        ),
        lock=pick("lock_timeout", "RELEASEGATE_LOCK_TIMEOUT", lock_default),
    )
    return url.set(query=query), timeouts


def connect_args(url: URL, timeouts: Timeouts) -> dict[str, Any]:
    """What the driver needs to honour the timeouts."""
    if url.get_backend_name() == "sqlite":
        return {"timeout": timeouts.lock}
    options = (
        f"-c statement_timeout={int(timeouts.statement * 1000)} "
        f"-c lock_timeout={int(timeouts.lock * 1000)}"
    )
    extra = url.query.get("options")
    if isinstance(extra, str):
        options = f"{extra} {options}"
    return {"connect_timeout": max(1, round(timeouts.connect)), "options": options}


def display_url(url: URL | str) -> str:
    """The store as a message names it: a path for SQLite, the URL with its password masked."""
    if isinstance(url, str):
        raw = url
        try:
            url = make_url(raw)
        except ArgumentError:
            return mask_url(raw)
    if url.get_backend_name() == "sqlite" and url.database:
        return url.database
    return url.render_as_string(hide_password=True)


def _first_line(exc: BaseException, secret: str | None) -> str:
    line = (str(exc).strip().splitlines() or [""])[0].strip()
    if secret:
        line = line.replace(secret, "***")
    return line[:200]


def classify(exc: BaseException, store: str, *, secret: str | None = None) -> StoreError | None:
    """The StoreError a driver error means, or None when it is not a storage fault."""
    if _ANSWERS & {k.__name__ for k in type(exc).__mro__}:
        return None  # a constraint, a bad statement: not the store's state (and may quote data)
    sqlstate = getattr(exc, "sqlstate", None)
    text = str(exc).lower()
    if sqlstate in _TRANSIENT_SQLSTATES:
        return StoreConflictError(
            f"store busy: {_TRANSIENT_SQLSTATES[sqlstate]} with another writer ({store})",
            hint="nothing was written; run the command again",
        )
    if getattr(exc, "sqlite_errorname", None) in _TRANSIENT_SQLITE:  # busy without waiting
        return StoreConflictError(
            f"store busy: another writer changed the store first ({store})",
            hint="nothing was written; run the command again",
        )
    if sqlstate == "55P03" or "lock timeout" in text:
        return StoreError(
            f"store locked: another transaction held a lock past the lock timeout ({store})",
            hint="retry when the other writer is done, or raise RELEASEGATE_LOCK_TIMEOUT",
        )
    if sqlstate == "57014" or "statement timeout" in text:
        return StoreError(
            f"store timed out: a statement ran past the statement timeout ({store})",
            hint="raise RELEASEGATE_STATEMENT_TIMEOUT, or check the database's load",
        )
    if sqlstate == "25006" or "read-only" in text or "readonly" in text:
        return StoreError(
            f"store is read-only: cannot write to {store}",
            hint="make the store writable, or run where it is",
        )
    if sqlstate in ("53100", "53200") or "disk is full" in text or "no space left" in text:
        return StoreError(
            f"store is full: no space left for {store}",
            hint="free space on its disk; nothing was half-written",
        )
    if "database is locked" in text or "database table is locked" in text:
        return StoreError(
            f"store locked: another process held the write lock past the lock timeout ({store})",
            hint="retry when the other writer is done, or raise RELEASEGATE_LOCK_TIMEOUT",
        )
    if "file is not a database" in text or "database disk image is malformed" in text:
        return StoreError(
            f"store is unreadable: {store} is not a releasegate database (or is damaged)",
            hint="point RELEASEGATE_DIR / RELEASEGATE_DATABASE_URL at the right store, "
            "or restore it from a backup; it was not changed",
        )
    if "unable to open database file" in text:
        return StoreError(
            f"store cannot be opened: {store} (missing directory, permissions or read-only)",
            hint="check the path and that this user may write there",
        )
    if "timeout expired" in text or "timed out" in text:
        return StoreError(
            f"store unreachable: no answer within the connect timeout ({store})",
            hint="check the database host, or raise RELEASEGATE_CONNECT_TIMEOUT",
        )
    if sqlstate is not None and sqlstate.startswith(("08", "57P")):
        return StoreError(
            f"store unreachable: {store} ({_first_line(exc, secret)})",
            hint="check that the database is up and the URL is right",
        )
    if "connection" in text and any(
        word in text
        for word in ("refused", "failed", "could not", "closed", "terminat", "resolve", "reset")
    ):
        return StoreError(
            f"store unreachable: {store} ({_first_line(exc, secret)})",
            hint="check that the database is up and the URL is right",
        )
    if "password authentication failed" in text or "no pg_hba.conf entry" in text:
        return StoreError(
            f"store refused the login: {store} ({_first_line(exc, secret)})",
            hint="check the user and password in RELEASEGATE_DATABASE_URL",
        )
    if "does not exist" in text and "database" in text:
        return StoreError(
            f"store unreachable: {store} ({_first_line(exc, secret)})",
            hint="create the database, or fix its name in RELEASEGATE_DATABASE_URL",
        )
    return None


def from_os_error(exc: OSError, what: str) -> StoreError | None:
    """A file-system fault (read-only, full, permissions) writing ``what``, or None."""
    cause = _OS_CAUSES.get(exc.errno or 0)
    if cause is None:
        return None
    where = exc.filename or what
    return StoreError(
        f"cannot write {where}: {cause}",
        hint="free space or make it writable, then run the command again",
    )


def _local_fs(url: URL) -> os.statvfs_result | None:
    """The file system an SQLite store's directory is on, when there is one."""
    if url.get_backend_name() != "sqlite" or not url.database:
        return None
    try:
        return os.statvfs(os.path.dirname(os.path.abspath(url.database)))
    except OSError:
        return None


def _sqlite_file_fault(text: str, url: URL, store: str) -> StoreError | None:
    """SQLite says "unable to open" or "disk I/O error"; the file system says why."""
    if "unable to open database file" not in text and "disk i/o error" not in text:
        return None
    fs = _local_fs(url)
    if fs is not None and fs.f_flag & os.ST_RDONLY:
        return StoreError(
            f"store is read-only: cannot write to {store} (read-only file system)",
            hint="make the store writable, or run where it is",
        )
    if fs is not None and fs.f_bavail == 0:
        return StoreError(
            f"store is full: no space left for {store}",
            hint="free space on its disk; nothing was half-written",
        )
    if "disk i/o error" in text:
        return StoreError(
            f"store I/O error: {store} could not be read or written",
            hint="check the disk it is on",
        )
    return None


def install(engine: Engine, url: URL) -> None:
    """Route every driver error of ``engine`` through ``classify``."""
    store = display_url(url)
    secret = url.password if isinstance(url.password, str) and url.password else None

    @event.listens_for(engine, "handle_error")
    def _translate(context: ExceptionContext) -> None:
        original = context.original_exception
        fault = _sqlite_file_fault(str(original).lower(), url, store)
        if fault is None:
            fault = classify(original, store, secret=secret)
        if fault is None and isinstance(original, OSError):
            fault = from_os_error(original, store)
        if fault is not None:
            raise fault from original
