"""The dashboard's sign-in at the team's identity provider: the OpenID Connect
authorization-code flow with PKCE, when ``RELEASEGATE_OIDC_CLIENT_ID`` is set
(``server/oidc.py``), by authlib's client.

``GET /web/login/oidc`` reads the provider's endpoints from its discovery document, makes
a state, a nonce and a PKCE code verifier, keeps them for ten minutes in an HttpOnly
cookie scoped to ``/web/login`` (SameSite=Lax: the provider's redirect back is a
navigation from another site) and sends the browser to the provider.
``GET /web/login/callback`` checks the state, exchanges the code (with the verifier, and
the client secret when there is one), checks the ID token as any provider token
(``OidcVerifier.claims``: its keys, issuer, audience, expiry), then its nonce, maps its
groups to a role, and starts the same session as the token login: the ID token is the
session's token. The server keeps nothing, so any replica finishes a sign-in another
began. A refusal is a page with its status (400 no or another state, 401 the provider
said no or its token is not valid, 403 no role), audited as ``access.refused``; a
provider that does not answer is a 502, logged. No page, audit event or log line holds
the code, a token or the client secret.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlencode

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response

from releasegate.domain.access import Identity
from releasegate.errors import (
    IdentityProviderError,
    NotFoundError,
    ReleasegateError,
    UnauthorizedError,
)
from releasegate.release.tokens import record_refusal
from releasegate.server.oidc import NO_ROLE_HINT, OidcLogin, OidcVerifier
from releasegate.server.web import SECURITY_HEADERS, keeper, log, page, safe_next, start_session

if TYPE_CHECKING:
    from authlib.integrations.httpx_client import AsyncOAuth2Client

router = APIRouter()
FLOW_COOKIE = "releasegate_oidc"
FLOW_SECONDS = 600
FLOW_PATH = "/web/login"
MAX_COOKIE = 3900
"""The longest ID token kept as the session cookie: browsers drop a cookie whose name and
value are over 4,096 bytes without a word, which would loop back to the login page."""


class SignInFailed(Exception):
    """Why a sign-in stopped: the page's status, message and hint, and who, when known."""

    def __init__(
        self,
        status: int,
        message: str,
        hint: str | None = None,
        who: str = "anonymous",
        token_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.hint = hint
        self.who = who
        self.token_id = token_id


def configured(request: Request) -> tuple[OidcVerifier, OidcLogin] | None:
    """The provider's verifier and the dashboard's client there, if sign-in is on."""
    verifier = keeper(request).oidc
    if verifier is None or verifier.config.login is None:
        return None
    return verifier, verifier.config.login


def sign_out_there(request: Request) -> str | None:
    """The provider's sign-out address for this client, coming back to the login page
    (its discovery document's ``end_session_endpoint``; None without one, or while the
    provider does not answer). Blocking."""
    found = configured(request)
    if found is None:
        return None
    verifier, login = found
    try:
        endpoint = verifier.discovery().get("end_session_endpoint")
    except IdentityProviderError:
        return None
    if not isinstance(endpoint, str):
        return None
    back = {
        "client_id": login.client_id,
        "post_logout_redirect_uri": f"{login.redirect_base}/web/login",
    }
    return endpoint + ("&" if "?" in endpoint else "?") + urlencode(back)


@router.get("/login/oidc")
async def sign_in(request: Request, next: str | None = None) -> Response:
    """Send the browser to the provider, remembering what to check when it comes back."""
    from authlib.common.security import generate_token

    verifier, login = _required(request)
    try:
        endpoint = await _endpoint(verifier, login, "authorization_endpoint")
    except SignInFailed as exc:
        return await _failed(request, exc)
    state, nonce, code_verifier = generate_token(32), generate_token(32), generate_token(64)
    async with _client(login) as client:
        url, _ = client.create_authorization_url(
            endpoint, state=state, nonce=nonce, code_verifier=code_verifier
        )
    out = RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)
    out.set_cookie(
        FLOW_COOKIE,
        ".".join([state, nonce, code_verifier, quote(safe_next(next), safe="")]),
        max_age=FLOW_SECONDS,
        httponly=True,
        samesite="lax",
        secure=login.is_secure,
        path=FLOW_PATH,
    )
    return out


@router.get("/login/callback")
async def callback(request: Request) -> Response:
    """The provider's redirect back: finish the sign-in, or say why not."""
    verifier, login = _required(request)
    try:
        identity, id_token, target = await _finish(request, verifier, login)
    except SignInFailed as exc:
        return await _failed(request, exc)
    request.state.identity = identity  # named in the request's access line
    # a page that moves on by itself rather than a redirect: the session cookie is
    # SameSite=Strict, which a browser does not send on a redirect chain that another
    # site (the provider) began
    out = page(request, "signed_in.html", s=None, who=identity, target=target)
    start_session(out, request, id_token, secure=login.is_secure)
    out.delete_cookie(FLOW_COOKIE, path=FLOW_PATH, httponly=True, samesite="lax")
    return out


def _required(request: Request) -> tuple[OidcVerifier, OidcLogin]:
    found = configured(request)
    if found is None:
        raise NotFoundError(
            "this server has no sign-in at an identity provider",
            hint="log in with an API token, or set RELEASEGATE_OIDC_CLIENT_ID",
        )
    return found


def _client(login: OidcLogin) -> AsyncOAuth2Client:
    from authlib.integrations.httpx_client import AsyncOAuth2Client

    return AsyncOAuth2Client(
        client_id=login.client_id,
        client_secret=login.client_secret,
        token_endpoint_auth_method="client_secret_basic" if login.client_secret else "none",
        scope=login.scope,
        redirect_uri=login.redirect_uri,
        code_challenge_method="S256",
        timeout=10,
    )


async def _endpoint(verifier: OidcVerifier, login: OidcLogin, name: str) -> str:
    try:
        found = (await run_in_threadpool(verifier.discovery)).get(name)
    except IdentityProviderError as exc:
        raise SignInFailed(
            502,
            f"{login.provider_name} did not answer: {exc.message}",
            hint="try again later; the server's admin can check the provider "
            "(RELEASEGATE_OIDC_ISSUER)",
        ) from None
    if not isinstance(found, str):
        raise SignInFailed(
            502,
            f"the discovery document of {verifier.config.issuer} names no {name}",
            hint="check RELEASEGATE_OIDC_ISSUER",
        )
    return found


async def _finish(
    request: Request, verifier: OidcVerifier, login: OidcLogin
) -> tuple[Identity, str, str]:
    """The identity, the ID token and where to go, once every check passed."""
    from authlib.integrations.httpx_client import OAuthError
    from httpx2 import HTTPError

    again = "sign in again from the login page"
    kept = request.cookies.get(FLOW_COOKIE, "").split(".", 3)
    if len(kept) != 4:
        raise SignInFailed(
            400,
            "no sign-in was started in this browser, or it began more than "
            f"{FLOW_SECONDS // 60} minutes ago; nothing was done",
            hint=again,
        )
    state, nonce, code_verifier, back = kept
    answer = request.query_params
    if not hmac.compare_digest(answer.get("state", ""), state):
        raise SignInFailed(
            400,
            "the sign-in's state is not the one this browser started; nothing was done",
            hint=again + " (a sign-in link from elsewhere is refused)",
        )
    if "error" in answer:
        said = answer.get("error_description") or ""
        raise SignInFailed(
            401,
            f"{login.provider_name} refused the sign-in: {answer['error']}"
            + (f" ({said[:200]})" if said else ""),
            hint=again,
        )
    code = answer.get("code", "")
    if not code:
        raise SignInFailed(400, f"{login.provider_name}'s answer has no code", hint=again)
    endpoint = await _endpoint(verifier, login, "token_endpoint")
    try:
        async with _client(login) as client:
            token: dict[str, Any] = await client.fetch_token(
                endpoint,
                grant_type="authorization_code",
                code=code,
                code_verifier=code_verifier,
            )
    except OAuthError as exc:
        raise SignInFailed(
            401,
            f"{login.provider_name} refused the sign-in's code ({exc.error}: "
            f"{str(exc.description)[:200]})",
            hint=again + "; a code is good once, for a short time",
        ) from None
    except (HTTPError, ValueError) as exc:
        raise SignInFailed(
            502,
            f"{login.provider_name}'s token endpoint did not answer: {type(exc).__name__}: "
            f"{str(exc)[:200]}",
            hint="try again later",
        ) from None
    id_token = token.get("id_token")
    if not isinstance(id_token, str):
        raise SignInFailed(
            502,
            f"{login.provider_name} gave no ID token",
            hint=f"allow the openid scope for client {login.client_id}",
        )
    if len(id_token) > MAX_COOKIE:
        raise SignInFailed(
            502,
            f"{login.provider_name}'s ID token is {len(id_token):,} characters, over the "
            f"{MAX_COOKIE:,} a browser keeps in the session cookie",
            hint="the provider's admin puts fewer claims in the ID token (such as the groups "
            "without their full path, or only the groups releasegate maps)",
        )
    try:
        claims = await run_in_threadpool(verifier.claims, id_token)
    except IdentityProviderError as exc:  # its keys: the provider, not the person
        raise SignInFailed(502, exc.message, hint=exc.hint) from None
    except UnauthorizedError as exc:
        raise SignInFailed(401, exc.message, hint=exc.hint) from None
    audience = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    if login.client_id not in audience:
        raise SignInFailed(401, f"the ID token is not for client {login.client_id}", hint=again)
    if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
        raise SignInFailed(
            401,
            "the ID token's nonce is not the one this sign-in sent; nothing was done",
            hint=again,
        )
    identity = verifier.identity_of(claims)
    if identity is None:
        name = verifier.name_of(claims)
        raise SignInFailed(
            403,
            f"{name} signed in at {login.provider_name} but has no releasegate role: "
            f"{verifier.no_role}",
            hint=NO_ROLE_HINT,
            who=name,
            token_id=f"oidc:{claims['sub']}"[:64],
        )
    return identity, id_token, safe_next(unquote(back))


async def _failed(request: Request, exc: SignInFailed) -> HTMLResponse:
    """The error page of a stopped sign-in: a refusal is audited, an outage logged."""
    if exc.status < 500:
        request.app.state.metrics.refused(exc.status)
        await run_in_threadpool(
            record_refusal,
            request.app.state.store,
            who=exc.who,
            token_id=exc.token_id,
            status=exc.status,
            reason=exc.message,
            method=request.method,
            path=request.url.path,
        )
    else:
        log.warning("web sign-in at the identity provider failed: %s", exc.message)
    error = ReleasegateError(exc.message, hint=exc.hint)
    out = page(
        request, "error.html", exc.status, status=exc.status, error=error, s=None, sign_in=True
    )
    out.delete_cookie(FLOW_COOKIE, path=FLOW_PATH, httponly=True, samesite="lax")
    return out
