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
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from releasegate.domain.access import Identity, Role
from releasegate.domain.access import parse_token as parse
from releasegate.domain.sent_code import SentCodePolicy
from releasegate.errors import ForbiddenError, SentCodeRefusedError, UnauthorizedError
from releasegate.release.store_access import Store
from releasegate.release.tokens import authenticate, authorize, record_refusal
from releasegate.server.oidc import OidcVerifier, is_jwt

PUBLIC = frozenset({"/healthz", "/readyz", "/metrics"})
"""The paths that need no token; the spec declares the bearer token on every other one."""
SCHEME = {
    "HTTPBearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token: `releasegate token create --name NAME --role ROLE`",
    }
}


def document(spec: dict[str, Any]) -> dict[str, Any]:
    """Declare the bearer token in an OpenAPI spec: its scheme, and on every operation but
    the public ones (the header is read by ``requires`` itself, not by a FastAPI security
    dependency, which costs a fifth of the hot path's CPU)."""
    spec.setdefault("components", {})["securitySchemes"] = SCHEME
    for path, operations in spec.get("paths", {}).items():
        if path in PUBLIC:
            continue
        for op in operations.values():
            op["security"] = [{"HTTPBearer": []}]
    return spec


class Gatekeeper:
    """Authenticates bearer values against the store, remembering each for ``ttl`` s; with
    ``oidc``, a JWT from the identity provider too (``server/oidc.py``)."""

    def __init__(self, store: Store, ttl: float, oidc: OidcVerifier | None = None) -> None:
        self.store = store
        self.ttl = ttl
        self.oidc = oidc
        self._known: dict[str, tuple[float, Identity]] = {}
        self._lock = threading.Lock()

    def cached(self, header: str) -> Identity | None:
        hit = self._known.get(header)
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        return None

    def forget(self) -> None:
        """Drop every remembered token (a revocation through this process)."""
        with self._lock:
            self._known.clear()

    def check(self, header: str | None) -> Identity:
        """The identity of ``header`` (blocking: one indexed query); UnauthorizedError if none."""
        value = header[7:].strip() if header and header[:7].lower() == "bearer " else ""
        if self.oidc is not None and is_jwt(value):
            identity = self.oidc.identity(value)
        else:
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

    async def dependency(request: Request) -> Identity:
        keeper: Gatekeeper = request.app.state.gatekeeper
        header = request.headers.get("authorization")
        identity = keeper.cached(header) if header else None
        try:
            if identity is None:
                identity = await run_in_threadpool(keeper.check, header)
            request.state.identity = identity  # named in the request's access line
            authorize(identity, role)
        except (UnauthorizedError, ForbiddenError) as exc:
            request.app.state.metrics.refused(403 if isinstance(exc, ForbiddenError) else 401)
            await run_in_threadpool(keeper.refuse, request, identity, header, exc)
            raise
        return identity

    dependency.__name__ = f"requires_{role.label}"
    dependency.__doc__ = f"Needs a token of role {role.label} or above."
    return dependency


@contextmanager
def sent_policy(request: Request, who: Identity) -> Iterator[SentCodePolicy]:
    """What a document sent with this request may make the server run (the server's
    ``Settings.sent_code``); a refusal of it is a 403, audited as ``access.refused`` with
    who and why, like a role too low."""
    try:
        yield request.app.state.settings.sent_code
    except SentCodeRefusedError as exc:
        request.app.state.metrics.refused(403)
        keeper: Gatekeeper = request.app.state.gatekeeper
        keeper.refuse(request, who, request.headers.get("authorization"), exc)
        raise
