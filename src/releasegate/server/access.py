"""Every endpoint's role, checked once per request: ``Depends(requires(Role.X))``.

The bearer token is checked by ``release.tokens.authenticate`` (hashed, revocable) and
remembered for ``token_ttl`` seconds per token, so the hot path (``resolve``) does not
query the tokens table on every call; a revoked token stops working on every replica
within that time (0 checks every request). A refusal (401, 403) is audited
(``access.refused``: who, what they asked, why) before the error is answered, and
counted in ``/metrics``; neither the token nor its secret is ever written anywhere.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from releasegate.domain.access import Identity, Role
from releasegate.domain.access import parse_token as parse
from releasegate.errors import ForbiddenError, UnauthorizedError
from releasegate.release.store_access import Store
from releasegate.release.tokens import authenticate, authorize, record_refusal

bearer = HTTPBearer(auto_error=False, description="An API token: `releasegate token create`")


class Gatekeeper:
    """Authenticates bearer values against the store, remembering each for ``ttl`` s."""

    def __init__(self, store: Store, ttl: float) -> None:
        self.store = store
        self.ttl = ttl
        self._known: dict[str, tuple[float, Identity]] = {}
        self._lock = threading.Lock()

    def cached(self, header: str) -> Identity | None:
        hit = self._known.get(header)
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        return None

    def check(self, header: str | None) -> Identity:
        """The identity of ``header`` (blocking: one indexed query); UnauthorizedError if none."""
        identity = authenticate(self.store, header)
        if self.ttl > 0 and header is not None:
            with self._lock:
                if len(self._known) > 10_000:  # never grows without bound
                    self._known.clear()
                self._known[header] = (time.monotonic(), identity)
        return identity

    def refuse(
        self, request: Request, identity: Identity | None, header: str | None, error: Exception
    ) -> None:
        """Write the ``access.refused`` audit event for this request (blocking)."""
        presented = parse(header.split(" ", 1)[-1]) if header else None
        record_refusal(
            self.store,
            who=identity.name if identity else "anonymous",
            token_id=identity.token_id if identity else (presented.token_id if presented else None),
            status=403 if isinstance(error, ForbiddenError) else 401,
            reason=str(getattr(error, "message", error)),
            method=request.method,
            path=request.url.path,
        )


def requires(role: Role) -> Callable[..., Awaitable[Identity]]:
    """A dependency: the caller's identity, if its token reaches ``role`` (else 401/403)."""

    async def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
    ) -> Identity:
        keeper: Gatekeeper = request.app.state.gatekeeper
        header = request.headers.get("authorization")
        identity = keeper.cached(header) if header else None
        try:
            if identity is None:
                identity = await run_in_threadpool(keeper.check, header)
            authorize(identity, role)
        except (UnauthorizedError, ForbiddenError) as exc:
            request.app.state.metrics.refused(403 if isinstance(exc, ForbiddenError) else 401)
            await run_in_threadpool(keeper.refuse, request, identity, header, exc)
            raise
        return identity

    dependency.__name__ = f"requires_{role.label}"
    return dependency
