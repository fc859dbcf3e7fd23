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
"""

from __future__ import annotations

import json
import logging
import os
import re
import traceback
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

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
            "access": {**handler, "formatter": "access", "stream": "ext://sys.stdout"},
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
