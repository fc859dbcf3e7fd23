"""The web dashboard: server-rendered pages over the same services as the CLI and the API.

``create_web(api)`` builds a small FastAPI application that ``create_app`` mounts at
``/web``; it shares the API's store and gatekeeper, and has its own error pages (HTML,
never a traceback; an unauthenticated visit is sent to the login form). A person logs in
with an API token: it is checked like a bearer token and kept in an HttpOnly,
SameSite=Strict cookie; every page shows who is logged in and with which role. The
state-changing forms (approve, promote, roll back, abort a rollout, log out) carry a CSRF
token derived from the session's token (HMAC), checked on every POST, so the dashboard
keeps no session state and any replica answers any request. Every text is escaped by
Jinja2's autoescape, and every response forbids framing and outside scripts.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import FastAPI, Request
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from releasegate.domain.access import Identity, Role, allows
from releasegate.errors import ForbiddenError, ReleasegateError, UnauthorizedError
from releasegate.release.audit import AuditWatch
from releasegate.server.access import Gatekeeper
from releasegate.server.errors import BodyTooLarge, status_of

log = logging.getLogger("releasegate.server")
HERE = Path(__file__).resolve().parent
COOKIE = "releasegate_session"
MAX_FORM_BYTES = 64 * 1024
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters["short"] = lambda v: "" if v is None else str(v)[:12]


def _when(at: datetime | str | None) -> Markup | str:
    """A time as ``YYYY-MM-DD HH:MM UTC`` (a datetime, or the ISO text a service gave)."""
    if at is None or at == "":
        return ""
    if isinstance(at, str):
        at = datetime.fromisoformat(at)
    at = at.astimezone(UTC) if at.tzinfo else at.replace(tzinfo=UTC)
    return Markup(f'<span class="when">{at:%Y-%m-%d %H:%M} UTC</span>')


templates.filters["when"] = _when
templates.filters["people"] = lambda v: (
    ", ".join(str(x) for x in v) if isinstance(v, list | tuple) else "" if v is None else str(v)
)


class LoginNeeded(Exception):
    """No usable session: the visitor is sent to the login form (and back after it)."""

    def __init__(self, back: str, why: str | None = None) -> None:
        super().__init__(why or "log in")
        self.back = back
        self.why = why


class Session:
    """Who is logged in on this request, and the CSRF token of their session."""

    def __init__(self, identity: Identity, token: str) -> None:
        self.identity = identity
        self.csrf = csrf_token(token)

    def may(self, role: str) -> bool:
        return allows(self.identity.role, Role.parse(role))


def safe_next(value: str | None) -> str:
    """Where to go after logging in: a path of the dashboard, never another site."""
    if value and value.startswith("/web/") and not value.startswith("//"):
        return value
    return "/web/"


def start_session(response: Response, request: Request, token: str, secure: bool = False) -> None:
    """Keep ``token`` (an API token, or a provider's ID token) as the session's cookie:
    HttpOnly, SameSite=Strict, scoped to ``/web``, Secure over HTTPS."""
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=secure or request.url.scheme == "https",
        path="/web",
    )


def csrf_token(token: str) -> str:
    """The session's CSRF token: an HMAC of its API token (only its holder can compute it)."""
    return hmac.new(token.encode(), b"releasegate web csrf", hashlib.sha256).hexdigest()


def keeper(request: Request) -> Gatekeeper:
    found: Gatekeeper = request.app.state.gatekeeper
    return found


def session(request: Request) -> Session:
    """The logged-in session of ``request``, or ``LoginNeeded`` (blocking: may query)."""
    back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        back = "/web/"  # a form sent without a session is not sent again after logging in
    token = request.cookies.get(COOKIE) or _bearer(request)
    if not token:
        raise LoginNeeded(back)
    header = f"Bearer {token}"
    gate = keeper(request)
    try:
        identity = gate.cached(header) or gate.check(header)
    except UnauthorizedError as exc:
        raise LoginNeeded(back, exc.message) from None
    request.state.identity = identity  # named in the request's access line
    return Session(identity, token)


def _bearer(request: Request) -> str | None:
    """The token a login proxy in front passes on (``Authorization: Bearer``), if any."""
    header = request.headers.get("authorization", "")
    return header[7:].strip() or None if header[:7].lower() == "bearer " else None


def page(request: Request, template: str, code: int = 200, /, **context: Any) -> HTMLResponse:
    """Render ``template`` with ``context`` (every value escaped by autoescape)."""
    body = templates.get_template(template).render(request=request, root="/web", **context)
    return HTMLResponse(body, status_code=code, headers=SECURITY_HEADERS)


async def form(request: Request) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body, one value per field (the last)."""
    raw = await request.body()
    if len(raw) > MAX_FORM_BYTES:
        raise BodyTooLarge(f"the form is over {MAX_FORM_BYTES // 1024} KiB; nothing was done")
    fields = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[-1] for k, v in fields.items()}


def checked(request: Request, fields: dict[str, str], role: Role) -> Session:
    """The session of a POST whose CSRF token matches and whose role reaches ``role``."""
    s = session(request)
    if not hmac.compare_digest(fields.get("csrf", ""), s.csrf):
        raise ForbiddenError(
            "the form's CSRF token does not match this session; nothing was done",
            hint="reload the page and submit the form again",
        )
    if not allows(s.identity.role, role):
        raise ForbiddenError(
            f"{s.identity.name} has role {s.identity.role.label}; this needs {role.label} or "
            "above; nothing was done"
        )
    return s


def create_web(api: FastAPI) -> FastAPI:
    """The dashboard application over ``api``'s store and gatekeeper, to mount at ``/web``."""
    from releasegate.server.web import actions, pages, queue, signin

    web = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    web.state.store = api.state.store
    web.state.gatekeeper = api.state.gatekeeper
    web.state.metrics = api.state.metrics
    web.state.audit_watch = AuditWatch(api.state.store)
    web.include_router(pages.router)
    web.include_router(actions.router)
    web.include_router(queue.router)
    web.include_router(signin.router)
    web.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    async def on_login(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LoginNeeded)
        target = f"/web/login?next={quote(exc.back, safe='')}"
        if exc.why:
            target += "&expired=1"
        return RedirectResponse(target, status_code=303, headers=SECURITY_HEADERS)

    async def on_ours(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ReleasegateError)
        status = status_of(exc)
        if status == 500:
            return _bug(request)
        return page(request, "error.html", status, status=status, error=exc, s=None)

    async def on_http(request: Request, exc: Exception) -> Response:
        code = int(getattr(exc, "status_code", 500))
        text = {404: "no such page", 405: "method not allowed here"}.get(code, "bad request")
        return page(
            request,
            "error.html",
            code,
            status=code,
            error=ReleasegateError(text),
            s=None,
        )

    from starlette.exceptions import HTTPException

    web.add_exception_handler(LoginNeeded, on_login)
    web.add_exception_handler(ReleasegateError, on_ours)
    web.add_exception_handler(HTTPException, on_http)
    web.add_middleware(_Guard)
    return web


def _bug(request: Request) -> HTMLResponse:
    error = ReleasegateError("internal error; the server log has the details")
    return page(request, "error.html", 500, status=500, error=error, s=None)


class _Guard:
    """Pure ASGI middleware: a bug is logged and answered with the HTML error page (500),
    never a traceback, and not raised further (the API's handler would answer twice)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception:
            log.exception("web: unexpected error")
            if started or scope["type"] != "http":
                raise
            await _bug(Request(scope))(scope, receive, send)
