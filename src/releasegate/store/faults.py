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

_ANSWERS = {"IntegrityError", "ProgrammingError", "DataError", "NotSupportedError"}
_TRANSIENT_SQLITE = frozenset(
    {"SQLITE_BUSY_SNAPSHOT", "SQLITE_BUSY_RECOVERY", "SQLITE_LOCKED_SHAREDCACHE"}
)
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


@dataclass(frozen=True)
class _Fault:
    """One row of ``classify``'s table: the errors it matches and the StoreError they mean.

    A row matches on its SQLSTATE (exact or by class prefix), its SQLite error name, or
    one of its ``phrases`` in the driver's message, lower-cased (with ``along``: and one
    of those too). The message names the store and, with ``{detail}``, the driver's first
    line (password masked)."""

    error: type[StoreError]
    message: str
    hint: str
    sqlstates: tuple[str, ...] = ()
    sqlstate_classes: tuple[str, ...] = ()
    sqlite_names: frozenset[str] = frozenset()
    phrases: tuple[str, ...] = ()
    along: tuple[str, ...] = ()

    def matches(self, sqlstate: str | None, sqlite_name: str | None, text: str) -> bool:
        if sqlstate is not None and (
            sqlstate in self.sqlstates or sqlstate.startswith(self.sqlstate_classes)
        ):
            return True
        if sqlite_name is not None and sqlite_name in self.sqlite_names:
            return True
        return any(p in text for p in self.phrases) and (
            not self.along or any(a in text for a in self.along)
        )


_AGAIN = "nothing was written; run the command again"
_WAIT = "retry when the other writer is done, or raise RELEASEGATE_LOCK_TIMEOUT"
_CHECK_UP = "check that the database is up and the URL is right"
_FAULTS: tuple[_Fault, ...] = (  # first match wins
    _Fault(
        StoreConflictError,
        "store busy: serialization failure with another writer ({store})",
        _AGAIN,
        sqlstates=("40001",),
    ),
    _Fault(
        StoreConflictError,
        "store busy: deadlock with another writer ({store})",
        _AGAIN,
        sqlstates=("40P01",),
    ),
    _Fault(  # busy without waiting
        StoreConflictError,
        "store busy: another writer changed the store first ({store})",
        _AGAIN,
        sqlite_names=_TRANSIENT_SQLITE,
    ),
    _Fault(
        StoreError,
        "store locked: another transaction held a lock past the lock timeout ({store})",
        _WAIT,
        sqlstates=("55P03",),
        phrases=("lock timeout",),
    ),
    _Fault(
        StoreError,
        "store timed out: a statement ran past the statement timeout ({store})",
        "raise RELEASEGATE_STATEMENT_TIMEOUT, or check the database's load",
        sqlstates=("57014",),
        phrases=("statement timeout",),
    ),
    _Fault(
        StoreError,
        "store is read-only: cannot write to {store}",
        "make the store writable, or run where it is",
        sqlstates=("25006",),
        phrases=("read-only", "readonly"),
    ),
    _Fault(
        StoreError,
        "store is full: no space left for {store}",
        "free space on its disk; nothing was half-written",
        sqlstates=("53100", "53200"),
        phrases=("disk is full", "no space left"),
    ),
    _Fault(
        StoreError,
        "store locked: another process held the write lock past the lock timeout ({store})",
        _WAIT,
        phrases=("database is locked", "database table is locked"),
    ),
    _Fault(
        StoreError,
        "store is unreadable: {store} is not a releasegate database (or is damaged)",
        "point RELEASEGATE_DIR / RELEASEGATE_DATABASE_URL at the right store, "
        "or restore it from a backup; it was not changed",
        phrases=("file is not a database", "database disk image is malformed"),
    ),
    _Fault(
        StoreError,
        "store cannot be opened: {store} (missing directory, permissions or read-only)",
        "check the path and that this user may write there",
        phrases=("unable to open database file",),
    ),
    _Fault(
        StoreError,
        "store unreachable: no answer within the connect timeout ({store})",
        "check the database host, or raise RELEASEGATE_CONNECT_TIMEOUT",
        phrases=("timeout expired", "timed out"),
    ),
    _Fault(
        StoreError,
        "store unreachable: {store} ({detail})",
        _CHECK_UP,
        sqlstate_classes=("08", "57P"),
    ),
    _Fault(
        StoreError,
        "store unreachable: {store} ({detail})",
        _CHECK_UP,
        phrases=("connection",),
        along=("refused", "failed", "could not", "closed", "terminat", "resolve", "reset"),
    ),
    _Fault(
        StoreError,
        "store refused the login: {store} ({detail})",
        "check the user and password in RELEASEGATE_DATABASE_URL",
        phrases=("password authentication failed", "no pg_hba.conf entry"),
    ),
    _Fault(
        StoreError,
        "store unreachable: {store} ({detail})",
        "create the database, or fix its name in RELEASEGATE_DATABASE_URL",
        phrases=("does not exist",),
        along=("database",),
    ),
)


def classify(exc: BaseException, store: str, *, secret: str | None = None) -> StoreError | None:
    """The StoreError a driver error means (the first row of ``_FAULTS`` it matches), or
    None when it is not a storage fault."""
    if _ANSWERS & {k.__name__ for k in type(exc).__mro__}:
        return None  # a constraint, a bad statement: not the store's state (and may quote data)
    sqlstate = getattr(exc, "sqlstate", None)
    sqlite_name = getattr(exc, "sqlite_errorname", None)
    text = str(exc).lower()
    for fault in _FAULTS:
        if fault.matches(sqlstate, sqlite_name, text):
            detail = _first_line(exc, secret) if "{detail}" in fault.message else ""
            return fault.error(fault.message.format(store=store, detail=detail), hint=fault.hint)
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


NUL_TEXT = "cannot contain nul (0x00) bytes"
"""PostgreSQL's driver refusing a text parameter with a NUL character (SQLite takes it)."""


def nul_error() -> InputError:
    """The answer to text with a NUL character, which PostgreSQL refuses (the caller's input)."""
    return InputError(
        "text with a NUL character (\\x00) cannot be stored or looked up here; nothing was written",
        hint="remove the NUL characters",
    )


def install(engine: Engine, url: URL) -> None:
    """Route every driver error of ``engine`` through ``classify``."""
    store = display_url(url)
    secret = url.password if isinstance(url.password, str) and url.password else None

    @event.listens_for(engine, "handle_error")
    def _translate(context: ExceptionContext) -> None:
        original = context.original_exception
        if NUL_TEXT in str(original).lower():  # bad input, not a fault: it is the caller's text
            raise nul_error() from original
        fault = _sqlite_file_fault(str(original).lower(), url, store)
        if fault is None:
            fault = classify(original, store, secret=secret)
        if fault is None and isinstance(original, OSError):
            fault = from_os_error(original, store)
        if fault is not None:
            raise fault from original
