"""The server's logs: one line per request and per event, as JSON objects or as text.

``log_config(fmt, level, access_log)`` is the ``logging.config.dictConfig`` that ``serve``
hands to uvicorn (each worker applies it), so uvicorn's own records and releasegate's go
through the same formatter. Every record made while a request is served carries its
``request_id`` (the ``X-Request-ID`` the server answers with, kept in a context variable);
the access record (logger ``releasegate.access``, written by the server's edge middleware)
adds the method, the route template (never the query string), the status, the duration,
the client and the token's name and id. A last filter blanks anything shaped like an API
token's secret or a bearer value in every line, so a token sent in a header, a body or a
query never reaches a log.

The access line is on every request's path, so ``serve`` gives it its own handler,
``AccessLog``: ``access_line`` hands it the fields and it writes the same line the
formatter would, with string operations instead of a ``LogRecord`` (a tenth of the
cost), into a bounded queue that a thread of its own writes to stdout in batches (one
write per 4 KiB of lines, whole lines only, at least every ``AccessLog.every`` seconds).
A stdout that does not keep up never blocks a request: past ``AccessLog.capacity`` lines
waiting, a line is dropped and counted, and the count is logged (``releasegate.server``,
stderr) once the stream takes lines again; whatever waits is written when the process
stops (``logging.shutdown``, which also runs in uvicorn's workers), or, when stdout
is stuck ``AccessLog.stop_wait`` seconds then, counted and reported without holding
the process.
"""

from __future__ import annotations

import json
import logging
import os
import re
import select
import sys
import threading
import time
import traceback
import weakref
from collections import deque
from contextlib import suppress
from contextvars import ContextVar
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import IO, Any, NamedTuple

FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error")
ACCESS = "releasegate.access"
"""The logger of the one line per request."""

request_id: ContextVar[str | None] = ContextVar("releasegate_request_id", default=None)
"""The id of the request being served (set by the edge middleware for its task)."""

FIELDS = ("method", "route", "status", "duration_ms", "client", "token", "token_id")
"""The access record's fields, in the order the text format writes them."""

_SECRET = re.compile(
    r"(rg_[0-9a-f]{16}_)[A-Za-z0-9_-]{20,}"  # an API token: its id stays, its secret goes
    r"|(?i:(bearer)\s+)[^\s\"',;]+"  # any bearer value (a JWT, a stranger's token)
    r"|\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"  # a bare JWT
)


def redact(text: str) -> str:
    """``text`` with every token secret, bearer value and JWT replaced by ``[redacted]``."""
    low = text.lower()
    if "rg_" not in low and "bearer" not in low and "eyj" not in low:
        return text  # nothing _SECRET can match (a scan of the line, not a regex search)
    return _SECRET.sub(_blank, text)


def _blank(m: re.Match[str]) -> str:
    if m.group(1):
        return f"{m.group(1)}[redacted]"
    if m.group(2):
        return f"{m.group(2)} [redacted]"
    return "[redacted]"


class RequestContext(logging.Filter):
    """Adds ``request_id`` (of the request being served, or None) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id.get()
        return True


def _when(record: logging.LogRecord) -> str:
    at = datetime.fromtimestamp(record.created, UTC)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _error_text(record: logging.LogRecord) -> str | None:
    if record.exc_info and record.exc_info[0] is not None:
        return "".join(traceback.format_exception(*record.exc_info)).rstrip()
    return record.exc_text or None


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time``, ``level``, ``logger``, ``message``, ``pid``,
    ``request_id``, the access fields when present, and ``error`` (the traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _when(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process or os.getpid(),
            "request_id": getattr(record, "request_id", None),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        error = _error_text(record)
        if error:
            line["error"] = error
        return redact(json.dumps(line, ensure_ascii=False, default=str))


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...``, the traceback on the lines after."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_when(record), record.levelname, f"{record.name}:", record.getMessage()]
        rid = getattr(record, "request_id", None)
        if rid is not None:
            parts.append(f"request_id={rid}")
        for name in ("client", "token", "token_id"):
            value = getattr(record, name, None)
            if value is not None:
                parts.append(f"{name}={value}")
        text = " ".join(str(p) for p in parts)
        error = _error_text(record)
        if error:
            text = f"{text}\n{error}"
        return redact(text)


class Access(NamedTuple):
    """One request's access record: what its line says."""

    request_id: str
    method: str
    route: str
    status: int
    seconds: float
    client: str | None
    token: str | None
    token_id: str | None


AT_ONCE = getattr(select, "PIPE_BUF", 4096)
"""Bytes of access lines written at most by one write: up to this, a pipe the workers
share takes each write whole (no worker's line is cut by another's)."""
_server_log = logging.getLogger("releasegate.server")
_access = logging.getLogger(ACCESS)
_live: weakref.WeakSet[AccessLog] = weakref.WeakSet()


class AccessLog(logging.Handler):
    """The access logger's handler under ``serve``: lines made with string operations,
    queued (at most ``capacity``, the rest dropped and counted) and written to ``stream``
    by a thread of its own, in whole-line writes of up to ``AT_ONCE`` bytes."""

    every = 0.2
    """Seconds a line waits at most before its thread writes it."""
    capacity = 100_000
    """Lines waiting at most; a line past them is dropped, counted and reported."""
    stop_wait = 5.0
    """Seconds ``close`` waits at most for a write in progress (a stdout nobody reads
    would otherwise hold the process at exit for ever)."""

    def __init__(self, stream: IO[str] | None = None, fmt: str = "text") -> None:
        super().__init__()
        self.stream = stream if stream is not None else sys.stdout
        self.is_json = fmt == "json"
        self._lines: deque[str] = deque()
        self._dropped = 0
        self._in_flight = 0
        self._dropped_lock = threading.Lock()
        self._writing = threading.Lock()
        self._starting = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._pid = str(os.getpid())
        self._clock = (-1, "")  # (a second, its ISO text): one strftime per second
        _live.add(self)

    def request(self, access: Access) -> None:
        """Queue the line the formatter would write for this request's access record."""
        request_id, method, route, status, seconds, client, token, token_id = access
        now = time.time()
        second = int(now)
        clock = self._clock
        if clock[0] != second:
            clock = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
            self._clock = clock
        when = f"{clock[1]}.{int((now - second) * 1000):03d}Z"
        ms = seconds * 1000
        message = f"{method} {route} {status} {ms:.1f} ms"
        named = (("client", client), ("token", token), ("token_id", token_id))
        if self.is_json:
            q = encode_basestring
            line = (
                f'{{"time": "{when}", "level": "info", "logger": "{ACCESS}", '
                f'"message": {q(message)}, "pid": {self._pid}, "request_id": {q(request_id)}, '
                f'"method": {q(method)}, "route": {q(route)}, "status": {status}, '
                f'"duration_ms": {round(ms, 3)!r}'
                + "".join([f', "{k}": {q(v)}' for k, v in named if v is not None])
                + "}"
            )
        else:
            line = f"{when} INFO {ACCESS}: {message} request_id={request_id}" + "".join(
                [f" {k}={v}" for k, v in named if v is not None]
            )
        self.put(redact(line))

    def emit(self, record: logging.LogRecord) -> None:
        """A record logged to ``releasegate.access`` otherwise: formatted, then queued."""
        try:
            self.put(self.format(record))
        except Exception:
            self.handleError(record)

    def put(self, line: str) -> None:
        """Queue one line (no newline) for the thread to write; drop and count it when
        ``capacity`` lines wait already."""
        lines = self._lines
        if len(lines) >= self.capacity:
            with self._dropped_lock:
                self._dropped += 1
            return
        lines.append(line)
        if self._closed:  # a line after the stop (the thread is gone): written at once
            self.flush()
        elif self._thread is None:
            self._start()

    def _start(self) -> None:
        with self._starting:
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._run, name="releasegate-access-log", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait(self.every)
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        """Write every line queued (whole lines, ``AT_ONCE`` bytes a write at most), then
        report on stderr the lines dropped since the last report. While the thread is
        writing, another caller does not wait for it (``logging.shutdown`` flushes before
        it closes, and the thread may be stuck): what waits is the thread's, or ``close``'s.
        """
        thread = self._thread
        is_writer = thread is None or not thread.is_alive() or thread is threading.current_thread()
        if not self._writing.acquire(blocking=is_writer):
            return
        try:
            lines, lost = self._lines, 0
            while lines:
                chunk = [lines.popleft()]
                size = _size(chunk[0])
                while lines and size + _size(lines[0]) <= AT_ONCE:
                    chunk.append(lines.popleft())
                    size += _size(chunk[-1])
                self._in_flight = len(chunk)
                try:
                    self.stream.write("\n".join(chunk) + "\n")
                    self.stream.flush()
                except (OSError, ValueError):  # a closed or failing stream: counted below
                    lost += len(chunk)
                self._in_flight = 0
            with self._dropped_lock:
                dropped, self._dropped = self._dropped + lost, 0
        finally:
            self._writing.release()
        if dropped:
            _server_log.warning(
                "%d access lines were dropped: stdout did not take them%s",
                dropped,
                " (it failed)" if lost else f" as fast as they came ({self.capacity:,} waiting)",
            )

    def close(self) -> None:
        """Stop the thread and write what waits (``logging.shutdown`` calls this at exit)."""
        self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.stop_wait)
            if thread.is_alive():  # stuck in a write: the process exits anyway, saying so
                self._abandon()
                super().close()
                return
        self.flush()
        super().close()

    def _abandon(self) -> None:
        """Report the lines a stuck stdout will not get: waiting, being written, dropped."""
        waiting = 0
        with suppress(IndexError):
            while True:
                self._lines.popleft()
                waiting += 1
        with self._dropped_lock:
            lost, self._dropped = waiting + self._in_flight + self._dropped, 0
        _server_log.warning(
            "%d access lines were not written at exit: stdout did not take them "
            "(it was still writing after %s s)",
            lost,
            self.stop_wait,
        )

    def _forked(self) -> None:
        self._lines = deque()  # the parent writes its own lines
        self._dropped = 0
        self._in_flight = 0
        self._dropped_lock = threading.Lock()
        self._writing = threading.Lock()
        self._starting = threading.Lock()
        self._wake = threading.Event()
        self._thread = None
        self._pid = str(os.getpid())


def _size(line: str) -> int:
    return len(line) + 1 if line.isascii() else len(line.encode()) + 1


def _after_fork() -> None:
    for handler in list(_live):
        handler._forked()


os.register_at_fork(after_in_child=_after_fork)


def access_line(access: Access) -> None:
    """Log one request's access line (when ``releasegate.access`` logs INFO): straight to
    the ``AccessLog`` when it is the logger's one handler, as under ``serve``; otherwise
    as a ``LogRecord`` through whatever handlers the logger has (an embedding app's)."""
    if not _access.isEnabledFor(logging.INFO):
        return
    handlers = _access.handlers
    if len(handlers) == 1 and type(handlers[0]) is AccessLog:
        handlers[0].request(access)
        return
    method, route, status, seconds = access.method, access.route, access.status, access.seconds
    # the record made and handled directly: Logger.info would also walk the stack for the
    # caller's file and line, which no format shows
    record = _access.makeRecord(
        ACCESS,
        logging.INFO,
        "",
        0,
        "%s %s %d %.1f ms",
        (method, route, status, seconds * 1000),
        None,
        extra={
            "request_id": access.request_id,
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "client": access.client,
            "token": access.token,
            "token_id": access.token_id,
        },
    )
    _access.handle(record)


def log_config(
    fmt: str = "text", level: str = "info", *, access_log: bool = True
) -> dict[str, Any]:
    """The ``dictConfig`` of the server's logging: ``fmt`` (``text`` or ``json``) for
    uvicorn's records and releasegate's; access lines on stdout, the rest on stderr.
    uvicorn's own access log stays off: ``releasegate.access`` replaces it."""
    formatter = {"()": f"{__name__}.{'JsonFormatter' if fmt == 'json' else 'TextFormatter'}"}
    handler = {"formatter": "default", "filters": ["request"], "class": "logging.StreamHandler"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request": {"()": f"{__name__}.RequestContext"}},
        "formatters": {"default": formatter, "access": formatter},
        "handlers": {
            "default": {**handler, "stream": "ext://sys.stderr"},
            "access": {
                "()": f"{__name__}.AccessLog",
                "fmt": fmt,
                "stream": "ext://sys.stdout",
                "formatter": "access",
                "filters": ["request"],
            },
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"level": level.upper()},
            "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
            "releasegate": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            ACCESS: {
                "handlers": ["access"],
                "level": "INFO" if access_log else "CRITICAL",
                "propagate": False,
            },
        },
    }
