"""The team server: ``create_app(store, settings)`` builds the FastAPI application.

Routes are thin: each parses its input, calls the same release or monitor service the
CLI calls, and returns that service's JSON (the CLI's ``--json``); no rule lives here.
The store is opened once per process and shared by every request (services open a
transaction per call). ``serve`` runs it on uvicorn; ``from_environment`` is the factory
uvicorn's workers call, reading the settings ``serve`` put in the environment.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass, fields
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from releasegate.domain.sent_code import DEFAULT_KEY_ENVS, SentCodePolicy
from releasegate.release.pins import SERVING
from releasegate.release.resolve import Resolver
from releasegate.release.store_access import Store, open_store
from releasegate.server import errors, logs
from releasegate.server.access import Gatekeeper, document
from releasegate.server.errors import BodyTooLarge
from releasegate.server.metrics import Metrics
from releasegate.server.oidc import OidcVerifier

MIB = 1024 * 1024
log = logging.getLogger("releasegate.server")
access = logging.getLogger(logs.ACCESS)


@dataclass(frozen=True)
class Settings:
    """What ``serve`` can tune (``RELEASEGATE_SERVER_<FIELD>`` in the workers' environment)."""

    max_body_bytes: int = 16 * MIB
    """A larger request body is refused with 413 before it is read whole."""
    token_ttl: float = 5.0
    """Seconds a checked token is remembered: a revoked token stops working within this."""
    resolve_ttl: float = 1.0
    """Seconds a resolved version is served from memory (as the SDK's ``Client``): a
    promotion shows on every replica within this."""
    allow_python: str = ""
    """Module prefixes a workflow or suite sent to the server may run (comma-separated,
    ``*`` for any): none by default (``domain/sent_code``)."""
    allow_model_hosts: str = ""
    """Hosts a sent document's ``base_url`` may name (comma-separated, ``*`` for any)."""
    allow_key_envs: str = ",".join(DEFAULT_KEY_ENVS)
    """Names (patterns) a sent document's ``api_key_env`` may name."""

    @property
    def sent_code(self) -> SentCodePolicy:
        """What a document sent to this server may make it run or call."""
        return SentCodePolicy.parse(self.allow_python, self.allow_model_hosts, self.allow_key_envs)

    @classmethod
    def from_env(cls) -> Settings:
        found: dict[str, Any] = {}
        for f in fields(cls):
            raw = os.environ.get(f"RELEASEGATE_SERVER_{f.name.upper()}")
            if raw is not None:
                found[f.name] = (
                    int(raw) if f.type == "int" else raw if f.type == "str" else float(raw)
                )
        return cls(**found)

    def to_env(self) -> dict[str, str]:
        return {
            f"RELEASEGATE_SERVER_{f.name.upper()}": str(getattr(self, f.name)) for f in fields(self)
        }


def create_app(store: Store, settings: Settings | None = None) -> FastAPI:
    """The application over ``store``; the caller keeps the store open while it serves."""
    from releasegate import __version__
    from releasegate.server.hot import HotResolve
    from releasegate.server.jobs import EvalJobs, Jobs
    from releasegate.server.routes import (
        actions,
        documents,
        governance,
        jobs,
        loop,
        queue,
        read,
        rollouts,
        runs,
        suites,
        tokens,
    )
    from releasegate.server.web import create_web

    settings = settings or Settings()
    app = FastAPI(
        title="releasegate",
        version=__version__,
        summary="The governed release loop for LLM workflows, over HTTP.",
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        # FastAPI's own OpenTelemetry instrumentation: off (the server has its own metrics
        # and logs; checking whether it is configured costs every request a few µs)
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.store = store
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.gatekeeper = Gatekeeper(store, settings.token_ttl, OidcVerifier.from_env())
    app.state.resolver = Resolver(store, ttl=settings.resolve_ttl)
    errors.install(app)
    app.state.evals = EvalJobs(store)
    app.state.jobs = Jobs(store)
    for module in (
        read,
        runs,
        actions,
        rollouts,
        tokens,
        loop,
        queue,
        documents,
        governance,
        suites,
        jobs,
    ):
        app.include_router(module.router)
    app.mount("/web", create_web(app))  # the dashboard (server/web), on the same services
    # the hot path, inside _Edge: request ids, metrics and logs see every answer it gives
    hot = next(r for r in read.router.routes if getattr(r, "endpoint", None) is read.resolve)
    app.add_middleware(
        HotResolve, resolver=app.state.resolver, gatekeeper=app.state.gatekeeper, route=hot
    )
    app.add_middleware(_Edge, metrics=app.state.metrics, limit=settings.max_body_bytes)
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(plain())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def from_environment() -> FastAPI:
    """The factory each uvicorn worker calls: the store ``RELEASEGATE_DIR`` /
    ``RELEASEGATE_DATABASE_URL`` name, the settings ``serve`` exported."""
    return create_app(open_store(create=False), Settings.from_env())


DESCRIPTION = """\
Every endpoint but `/healthz`, `/readyz`, `/metrics` and these docs needs an API token
(`Authorization: Bearer rg_...`, made with `releasegate token create --name NAME --role ROLE`).
Roles are ranked viewer < builder < operator < approver < admin; each endpoint names the
lowest it needs. Every error has one shape: `{"ok": false, "status", "error", "hint",
"errors": [{"field", "message", "index"}]}`; nothing is written on any error.
"""


class _Edge:
    """Pure ASGI middleware: refuses bodies over ``limit`` (413, before reading them whole:
    by Content-Length, else by counting the chunks), times every request for ``/metrics``
    by its route template, and gives each an ``X-Request-ID`` (the caller's, when it is a
    plain token of up to 64 characters, else a new one), answered in the response header
    and carried by every log record made while serving it (``logs.request_id``). It writes
    the request's access line (``releasegate.access``), and answers an unexpected error
    with the one 500 shape, its traceback logged once with the request id."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, limit: int) -> None:
        self.app = app
        self.metrics = metrics
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        logs.request_id.set(request_id)  # each request runs in its own task: no reset needed
        SERVING.set(True)  # the services read no path a caller named (release/pins)
        header = (b"x-request-id", request_id.encode("ascii"))
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            await self._too_large(scope, receive, send, request_id)
            self.metrics.observe(scope["method"], "(too large)", 413, time.perf_counter() - started)
            return
        seen = 0
        limit = self.limit

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(_too_large_text(limit))
            return message

        started_response = False

        async def sending(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status = message["status"]
                started_response = True
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        try:
            await self.app(scope, counted, sending)
        except asyncio.CancelledError:  # still running past serve's --graceful-timeout
            if not started_response:
                await errors.error_response(503, STOPPED, hint=STOPPED_HINT)(
                    scope, receive, sending
                )
            raise
        except Exception as exc:
            if started_response:
                raise  # too late to answer: the server closes the connection and logs it
            route = getattr(scope.get("route"), "path", None) or "(unrouted)"
            log.error("unexpected error in %s %s", scope["method"], route, exc_info=exc)
            await errors.error_response(500, errors.INTERNAL)(scope, receive, sending)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "(unrouted)"
            seconds = time.perf_counter() - started
            self.metrics.observe(scope["method"], template, status, seconds)
            if access.isEnabledFor(logging.INFO):
                _access_line(scope, template, status, seconds)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        response = errors.error_response(
            413, _too_large_text(self.limit), hint="send the runs in smaller batches"
        )
        response.headers["x-request-id"] = request_id
        response.headers["connection"] = "close"  # the unread body must not be parsed as a request
        await response(scope, receive, send)


STOPPED = (
    "the server stopped before this request finished (its --graceful-timeout passed); "
    "it may or may not have taken effect"
)
STOPPED_HINT = "send it again: a re-sent runs batch lands nothing twice"


def _access_line(scope: Scope, route: str, status: int, seconds: float) -> None:
    identity = scope["state"].get("identity")
    client = scope.get("client")
    logs.access_line(
        logs.Access(
            scope["state"]["request_id"],
            scope["method"],
            route,
            status,
            seconds,
            client[0] if client else None,
            getattr(identity, "name", None),
            getattr(identity, "token_id", None),
        )
    )


def _too_large_text(limit: int) -> str:
    return f"the request body is over the server's limit of {limit:,} bytes; nothing was written"


_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def _request_id(scope: Scope) -> str:
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            given = str(value.decode("latin-1"))
            if _REQUEST_ID.match(given):
                return given
            break
    return secrets.token_hex(8)


def _content_length(scope: Scope) -> int | None:
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
