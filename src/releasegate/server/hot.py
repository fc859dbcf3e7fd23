"""The hot path: ``GET /v1/resolve/{workflow}/{env}`` answered before the framework.

Applications resolve on every request, so most resolves ask again, within the resolver's
TTL, with a token this process checked already. ``HotResolve`` (pure ASGI middleware,
inside the edge middleware: request id, metrics and the access line still apply) answers
those from memory: the token from the ``Gatekeeper``'s memory, the version from the
``Resolver``'s, and the response body serialized once per answer the resolver holds.

When one of them has expired, the requests that find it so share one refresh (one
thread-pool call, ``Gatekeeper.check`` or the ``Resolver``), instead of each making its
own trip through the framework and the thread pool, the burst a busy replica otherwise
sees once per TTL. Any other case (a token or an answer this process never held, a role
too low, a failed refresh, a path of another shape) goes on to the FastAPI route, which
checks, audits, looks up and answers as before: the hot path adds no rule, it only skips
the framework's per-request work (routing, dependency solving, the exception layers).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Any, TypeVar, cast

from starlette.concurrency import run_in_threadpool
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from releasegate.domain.access import Role, allows
from releasegate.errors import ReleasegateError
from releasegate.release.resolve import Resolved, Resolver
from releasegate.server.access import Gatekeeper
from releasegate.server.routes import Json

PREFIX = "/v1/resolve/"
MAX_KEPT = 10_000
"""Bodies and tokens remembered at most (then forgotten at once: memory stays bounded)."""
_T = TypeVar("_T")


class HotResolve:
    def __init__(
        self, app: ASGIApp, *, resolver: Resolver, gatekeeper: Gatekeeper, route: BaseRoute
    ) -> None:
        self.app = app
        self.resolver = resolver
        self.gatekeeper = gatekeeper
        self.route = route
        """The FastAPI route answered here (``scope["route"]``: metrics by its template)."""
        self._bodies: dict[tuple[str, str], tuple[Resolved, bytes]] = {}
        self._tokens: set[str] = set()  # bearer values that passed here before
        self._refreshing: dict[Hashable, asyncio.Future[Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            path: str = scope["path"]
            if path.startswith(PREFIX):
                body = await self._answer(scope, path)
                if body is not None:
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 200,
                            "headers": [
                                (b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                            ],
                        }
                    )
                    await send({"type": "http.response.body", "body": body})
                    return
        await self.app(scope, receive, send)

    async def _answer(self, scope: Scope, path: str) -> bytes | None:
        """The body of the route's answer, if memory holds it (or one shared refresh
        brings it back); else None."""
        workflow, _, env = path[len(PREFIX) :].partition("/")
        if not workflow or not env or "/" in env:
            return None
        header = None
        for key, value in scope["headers"]:
            if key == b"authorization":
                header = value.decode("latin-1")
                break
        if header is None:
            return None
        identity = self.gatekeeper.cached(header)
        if identity is None:
            if header not in self._tokens:
                return None
            identity = await self._shared(header, self.gatekeeper.check, header)
            if identity is None:
                self._tokens.discard(header)  # revoked, or the store is down: the route says
                return None
        if not allows(identity.role, Role.VIEWER):
            return None
        key = (workflow, env)
        kept = self._bodies.get(key)
        found = self.resolver.peek(workflow, env)
        if found is None:
            if kept is None:
                return None
            found = await self._shared(key, self.resolver, workflow, env)
            if found is None:
                return None
        if kept is None or kept[0] is not found:
            if len(self._bodies) >= MAX_KEPT:
                self._bodies.clear()
            kept = (found, bytes(Json(found.to_dict()).body))  # the route's own bytes
            self._bodies[key] = kept
        if header not in self._tokens:
            if len(self._tokens) >= MAX_KEPT:
                self._tokens.clear()
            self._tokens.add(header)
        scope["route"] = self.route
        scope.setdefault("state", {})["identity"] = identity
        return kept[1]

    async def _shared(self, key: Hashable, call: Callable[..., _T], *args: str) -> _T | None:
        """``call(*args)`` in the thread pool, one at a time per ``key``: whoever asks while
        it runs waits for the same answer. None if it raised (the route will say why)."""
        pending = self._refreshing.get(key)
        if pending is None:
            pending = asyncio.ensure_future(run_in_threadpool(call, *args))
            self._refreshing[key] = pending
            pending.add_done_callback(lambda _: self._refreshing.pop(key, None))
        try:
            found = await asyncio.shield(pending)
        except ReleasegateError:
            return None
        return cast(_T, found)
