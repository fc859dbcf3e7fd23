"""The team server (``releasegate serve``): FastAPI on uvicorn over the release and
monitor services. ``create_app(store, settings)`` builds it; ``serve`` runs it."""

from __future__ import annotations

from releasegate.server.app import Settings, create_app
from releasegate.server.run import serve

__all__ = ["Settings", "create_app", "serve"]
