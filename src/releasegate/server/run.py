"""Run the server on uvicorn: one process, or ``workers`` processes sharing the port.

The store is opened (and its schema checked) before anything listens, so a missing store
or a PostgreSQL schema that needs ``releasegate db upgrade`` is a clear error, not a
server answering 503. With several workers each opens its own store through
``app.from_environment``; the settings travel in the environment, and so does the
directory where the workers share their ``/metrics`` counts (``metrics.SHARED_DIR``).

SIGTERM or SIGINT stop it gracefully: the port closes at once (new connections are
refused), the requests in flight finish and are answered, for at most ``graceful_timeout``
seconds (then they are cancelled), and ``serve`` returns, so ``releasegate serve`` exits 0.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any

from releasegate.errors import InputError, PrerequisiteError
from releasegate.release.store_access import open_store
from releasegate.server.app import Settings, create_app
from releasegate.server.logs import FORMATS, LEVELS, log_config
from releasegate.server.metrics import SHARED_DIR

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True)
class Launch:
    """How ``serve`` runs: where it listens, how many workers, its logs and its stop."""

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    log_format: str = "text"
    log_level: str = "info"
    access_log: bool = True
    graceful_timeout: float = 30.0
    """Seconds the requests in flight get to finish after SIGTERM/SIGINT."""
    forwarded_allow_ips: str | None = None
    """Proxies (addresses, comma-separated, or ``*``) whose ``X-Forwarded-For`` and
    ``X-Forwarded-Proto`` are believed: the client then logged is the proxy's client."""

    def check(self) -> None:
        """InputError (exit 2) for an option out of range, before anything is opened."""
        if not 0 <= self.port <= 65535:
            raise InputError(f"port {self.port} is not between 0 and 65535", field="--port")
        if self.workers < 1:
            raise InputError("needs at least one worker", field="--workers")
        for value, known, option in (
            (self.log_format, FORMATS, "--log-format"),
            (self.log_level, LEVELS, "--log-level"),
        ):
            if value not in known:
                raise InputError(f"{value!r} is not one of {', '.join(known)}", field=option)
        if self.graceful_timeout < 0:
            raise InputError("cannot be negative", field="--graceful-timeout")


def serve(launch: Launch | None = None, settings: Settings | None = None) -> None:
    """Serve until SIGINT or SIGTERM, then drain the requests in flight and return."""
    launch = launch or Launch()
    launch.check()
    try:
        import uvicorn
    except ModuleNotFoundError as exc:
        raise PrerequisiteError(
            f"the server's dependencies are not installed ({exc.name})",
            hint="pip install 'releasegate[server]'",
        ) from None
    settings = settings or Settings()
    store = open_store(create=False)
    common: dict[str, Any] = {
        "host": launch.host,
        "port": launch.port,
        "log_level": launch.log_level,
        "log_config": log_config(launch.log_format, launch.log_level, access_log=launch.access_log),
        "ws": "none",
        "proxy_headers": launch.forwarded_allow_ips is not None,
        "forwarded_allow_ips": launch.forwarded_allow_ips,
        "access_log": False,  # releasegate.access writes the request lines
        "timeout_graceful_shutdown": launch.graceful_timeout,
    }
    with _stopped_quietly():
        if launch.workers == 1:
            try:
                uvicorn.run(create_app(store, settings), **common)
            finally:
                store.close()
            return
        store.close()
        os.environ.update(settings.to_env())
        with _shared_metrics():
            uvicorn.run(
                "releasegate.server.app:from_environment",
                factory=True,
                workers=launch.workers,
                **common,
            )


@contextmanager
def _shared_metrics() -> Iterator[None]:
    """The workers' shared ``/metrics`` directory: one ``serve`` creates and removes (an
    operator's own ``PROMETHEUS_MULTIPROC_DIR`` is used as it is, and is theirs to wipe)."""
    if os.environ.get(SHARED_DIR):
        yield
        return
    made = tempfile.mkdtemp(prefix="releasegate-metrics-")
    os.environ[SHARED_DIR] = made
    try:
        yield
    finally:
        os.environ.pop(SHARED_DIR, None)
        shutil.rmtree(made, ignore_errors=True)


@contextmanager
def _stopped_quietly() -> Iterator[None]:
    """A stop asked for by SIGINT or SIGTERM is a clean exit (0). uvicorn restores the
    handlers it found and re-raises the signal once it has drained; the handlers found are
    these, which end the process with 0 (before uvicorn listens too: nothing in flight)."""

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    if threading.current_thread() is not threading.main_thread():
        yield  # signals are the main thread's (a server run by a test in a thread)
        return
    before = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
