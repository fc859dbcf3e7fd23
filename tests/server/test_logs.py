"""The access line as ``serve`` writes it (``logs.AccessLog``): the same line the formatter
writes for the access record, never a secret, and a stdout that does not keep up costs
counted, reported lines, never a blocked request or a line cut in two."""

from __future__ import annotations

import io
import json
import logging
import re
import threading
from collections.abc import Iterator
from weakref import ref

import pytest

from releasegate.server import logs
from releasegate.server.logs import (
    AT_ONCE,
    Access,
    AccessLog,
    JsonFormatter,
    RequestContext,
    TextFormatter,
    access_line,
    redact,
)

SECRET = "rg_0123456789abcdef_" + "S" * 43
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJib2IifQ.c2lnbmF0dXJlLXNpZw"
WHEN = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def access_logger() -> Iterator[logging.Logger]:
    """``releasegate.access`` with no handler of its own for the test to give it."""
    logger = logging.getLogger(logs.ACCESS)
    kept = (logger.handlers[:], logger.level, logger.propagate)
    logger.handlers.clear()
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield logger
    finally:
        for handler in logger.handlers:
            handler.close()
        logger.handlers[:] = kept[0]
        logger.setLevel(kept[1])
        logger.propagate = kept[2]


def both_ways(
    logger: logging.Logger, fmt: str, *fields: str | int | float | None
) -> tuple[str, str]:
    """The line ``access_line(*fields)`` writes through ``AccessLog`` under ``serve``, and
    the line the formatter writes for it through any other handler (an embedding app's)."""
    formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    fast_out, plain_out = io.StringIO(), io.StringIO()
    fast = AccessLog(fast_out, fmt)
    fast.setFormatter(formatter)
    logger.addHandler(fast)
    access_line(Access(*fields))  # type: ignore[arg-type]
    fast.close()
    logger.removeHandler(fast)
    plain = logging.StreamHandler(plain_out)
    plain.setFormatter(formatter)
    plain.addFilter(RequestContext())
    logger.addHandler(plain)
    access_line(Access(*fields))  # type: ignore[arg-type]
    logger.removeHandler(plain)
    return fast_out.getvalue(), plain_out.getvalue()


@pytest.mark.parametrize(
    "fields",
    [
        ("req-1", "GET", "/v1/resolve/{w}/{e}", 200, 0.0012345, "10.0.3.7", "vera", "0a1b"),
        ("7a0478cd991a49b2", "POST", "(unrouted)", 401, 0.25, None, None, None),
        ("r", "GET", "/v1/workflows", 200, 0.001, "::1", 'naïve "quoted" \\ name', "ff00"),
    ],
)
def test_the_access_line_is_the_line_the_formatter_writes(
    access_logger: logging.Logger, fields: tuple[str | int | float | None, ...]
) -> None:
    fast, plain = both_ways(access_logger, "json", *fields)
    assert fast.endswith("\n") and fast.count("\n") == 1
    fast_record, plain_record = json.loads(fast), json.loads(plain)
    assert WHEN.match(fast_record.pop("time")) and WHEN.match(plain_record.pop("time"))
    assert fast_record == plain_record
    assert list(fast_record) == list(plain_record)  # the same keys in the same order
    assert fast_record["request_id"] == fields[0] and fast_record["status"] == fields[3]

    fast, plain = both_ways(access_logger, "text", *fields)
    when, _, rest = fast.partition(" ")
    assert WHEN.match(when)
    assert rest == plain.partition(" ")[2]
    assert f"request_id={fields[0]}" in rest


def test_no_secret_reaches_the_access_line_in_any_field(access_logger: logging.Logger) -> None:
    for fmt in ("json", "text"):
        fields = (JWT, SECRET, "/v1/workflows", 200, 0.01, f"Bearer {JWT}", SECRET, "x")
        fast, plain = both_ways(access_logger, fmt, *fields)
        for line in (fast, plain):
            assert "S" * 43 not in line and "c2lnbmF0dXJlLXNpZw" not in line, line
            assert "rg_0123456789abcdef_[redacted]" in line


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        (f"token={SECRET}&x=1", "token=rg_0123456789abcdef_[redacted]&x=1"),
        ("Authorization: BeArEr abc.def", "Authorization: BeArEr [redacted]"),
        (f"jwt {JWT} end", "jwt [redacted] end"),
        ("GET /v1/workflows 200 1.0 ms token=vera", "GET /v1/workflows 200 1.0 ms token=vera"),
    ],
)
def test_redact_blanks_secrets_and_leaves_the_rest(text: str, redacted: str) -> None:
    assert redact(text) == redacted


@pytest.fixture
def reported() -> Iterator[list[str]]:
    """What ``releasegate.server`` says (where ``serve`` reports dropped lines: stderr)."""
    said: list[str] = []

    class Kept(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record.getMessage())

    logger = logging.getLogger("releasegate.server")
    kept = Kept(logging.WARNING)
    logger.addHandler(kept)
    try:
        yield said
    finally:
        logger.removeHandler(kept)


class Stuck(io.StringIO):
    """A stdout whose first write blocks until the test lets it go (a full pipe)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered, self.go = threading.Event(), threading.Event()
        self.writes: list[str] = []

    def write(self, s: str) -> int:
        if not self.writes:
            self.entered.set()
            assert self.go.wait(60), "the test never let the stream go"
        self.writes.append(s)
        return super().write(s)


def test_a_stdout_that_does_not_keep_up_costs_counted_lines_never_a_wait(
    reported: list[str],
) -> None:
    stream = Stuck()
    handler = AccessLog(stream, "text")
    handler.capacity = 50
    handler.put("line 0")
    assert stream.entered.wait(60)  # the thread is stuck writing line 0
    for i in range(1, 61):  # 50 wait, 10 are dropped; none of these calls waits
        handler.put(f"line {i} " + "x" * 200)
    stream.go.set()
    handler.close()
    lines = stream.getvalue().splitlines()
    assert lines == ["line 0", *(f"line {i} " + "x" * 200 for i in range(1, 51))]
    assert len(stream.writes) > 2  # the waiting lines went out in several writes,
    for write in stream.writes:  # each of whole lines and at most one pipe's atomic write
        assert write.endswith("\n") and len(write.encode()) <= AT_ONCE
    assert reported == [
        "10 access lines were dropped: stdout did not take them as fast as they came (50 waiting)"
    ]


def test_a_failing_stdout_is_reported_with_the_lines_it_lost(reported: list[str]) -> None:
    stream = io.StringIO()
    handler = AccessLog(stream, "text")
    handler.every = 3600  # written by close(): both lines in one write
    stream.close()
    handler.put("a")
    handler.put("b")
    handler.close()
    assert reported == ["2 access lines were dropped: stdout did not take them (it failed)"]


def test_a_stuck_stdout_does_not_hold_the_server_at_exit(reported: list[str]) -> None:
    """At exit ``logging.shutdown`` (flush, then close) gives a stuck stdout ``stop_wait``
    seconds, then reports what it could not write instead of waiting for ever."""
    stream = Stuck()
    handler = AccessLog(stream, "text")
    handler.stop_wait = 0.1
    handler.put("line 0")
    assert stream.entered.wait(60)  # the thread is stuck writing line 0
    handler.put("line 1")
    handler.put("line 2")
    closing = threading.Thread(target=logging.shutdown, args=([ref(handler)],), daemon=True)
    closing.start()
    closing.join(60)
    is_stuck = closing.is_alive()
    stream.go.set()  # lets the writer (and, without the fix, the exit) finish
    closing.join(60)
    assert not is_stuck, "the exit waited for the stuck stdout"
    assert reported == [
        "3 access lines were not written at exit: stdout did not take them "
        "(it was still writing after 0.1 s)"
    ]
