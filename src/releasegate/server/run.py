"""Run the server on uvicorn: one process, or ``workers`` processes sharing the port.

The store is opened (and its schema checked) before anything listens, so a missing store
or a PostgreSQL schema that needs ``releasegate db upgrade`` is a clear error, not a
server answering 503. With several workers each opens its own store through
``app.from_environment``; the settings travel in the environment.
"""

from __future__ import annotations

import os

from releasegate.errors import InputError, PrerequisiteError
from releasegate.release.store_access import open_store
from releasegate.server.app import Settings, create_app


def serve(
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    settings: Settings | None = None,
    *,
    log_level: str = "info",
    access_log: bool = True,
) -> None:
    """Serve until interrupted (SIGINT/SIGTERM drain the requests in flight, then stop)."""
    if not 0 <= port <= 65535:
        raise InputError(f"port {port} is not between 0 and 65535", field="--port")
    if workers < 1:
        raise InputError("needs at least one worker", field="--workers")
    try:
        import uvicorn
    except ModuleNotFoundError as exc:
        raise PrerequisiteError(
            f"the server's dependencies are not installed ({exc.name})",
            hint="pip install 'releasegate[server]'",
        ) from None
    settings = settings or Settings()
    store = open_store(create=False)
    common = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "ws": "none",
        "proxy_headers": False,
        "access_log": access_log,
    }
    if workers == 1:
        try:
            uvicorn.run(create_app(store, settings), **common)  # type: ignore[arg-type]
        finally:
            store.close()
        return
    store.close()
    os.environ.update(settings.to_env())
    uvicorn.run(
        "releasegate.server.app:from_environment",
        factory=True,
        workers=workers,
        **common,  # type: ignore[arg-type]
    )
