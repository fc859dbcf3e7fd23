"""OIDC: a JSON Web Token from the team's identity provider, accepted as a bearer token.

With ``RELEASEGATE_OIDC_ISSUER`` set, the server also takes ``Authorization: Bearer <JWT>``
(and the dashboard a JWT in its login form): PyJWT checks its signature against the
provider's published keys (JWKS: ``RELEASEGATE_OIDC_JWKS_URL``, else the ``jwks_uri`` of
the issuer's discovery document), its issuer, audience (``RELEASEGATE_OIDC_AUDIENCE``)
and expiry. It acts as the value of ``RELEASEGATE_OIDC_NAME_CLAIM``
(``preferred_username``, else ``sub``), with the highest role that
``RELEASEGATE_OIDC_ROLES`` (``group=role,...``; ``*`` for anyone) gives the values of
``RELEASEGATE_OIDC_ROLE_CLAIM`` (``groups``); no role is a 401 saying so. API tokens keep
working beside it.

With ``RELEASEGATE_OIDC_CLIENT_ID`` too, the dashboard runs the provider's redirect login
(``server/web/signin.py``): ``OidcLogin`` holds the client's side of it (the client id,
its secret from ``RELEASEGATE_OIDC_CLIENT_SECRET`` only, never an option or a log line,
and the server's public address ``RELEASEGATE_OIDC_REDIRECT_BASE``); the ID token it
brings back is checked here like any other, its audience being the client id.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from releasegate.domain.access import Identity, Role, parse_role_map, role_from_claim
from releasegate.errors import (
    IdentityProviderError,
    InputError,
    PrerequisiteError,
    UnauthorizedError,
)

ENV = "RELEASEGATE_OIDC_"
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"]
"""Asymmetric only: a shared-secret (HS*) token could be minted by anyone holding the key."""


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    audience: str
    roles: dict[str, Role]
    jwks_url: str | None = None
    role_claim: str = "groups"
    name_claim: str = "preferred_username"
    login: OidcLogin | None = None
    """The dashboard's redirect login, when a client id is configured."""

    @property
    def audiences(self) -> list[str]:
        """The ``aud`` values accepted: the audience, and the login's client id (its ID
        tokens' audience)."""
        if self.login is None or self.login.client_id == self.audience:
            return [self.audience]
        return [self.audience, self.login.client_id]

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> OidcConfig | None:
        """The configuration in ``env`` (None without ``RELEASEGATE_OIDC_ISSUER``)."""
        issuer = env.get(f"{ENV}ISSUER", "").strip()
        if not issuer:
            return None
        audience = env.get(f"{ENV}AUDIENCE", "").strip()
        if not audience:
            raise InputError(
                "RELEASEGATE_OIDC_AUDIENCE is not set",
                field=f"{ENV}AUDIENCE",
                hint="the client id the identity provider puts in its tokens' aud claim",
            )
        roles = parse_role_map(env.get(f"{ENV}ROLES", ""), f"{ENV}ROLES")
        if not roles:
            raise InputError(
                "RELEASEGATE_OIDC_ROLES gives no role",
                field=f"{ENV}ROLES",
                hint="e.g. RELEASEGATE_OIDC_ROLES='rg-admins=admin,rg-approvers=approver,*=viewer'",
            )
        return cls(
            issuer=issuer,
            audience=audience,
            roles=roles,
            jwks_url=env.get(f"{ENV}JWKS_URL", "").strip() or None,
            role_claim=env.get(f"{ENV}ROLE_CLAIM", "").strip() or "groups",
            name_claim=env.get(f"{ENV}NAME_CLAIM", "").strip() or "preferred_username",
            login=OidcLogin.from_env(issuer, env),
        )


@dataclass(frozen=True)
class OidcLogin:
    """The dashboard's client at the provider: the authorization-code flow with PKCE."""

    client_id: str
    redirect_base: str
    """The server's address as the browser reaches it (``https://releasegate.example.com``)."""
    provider_name: str
    client_secret: str | None = field(default=None, repr=False)
    """From ``RELEASEGATE_OIDC_CLIENT_SECRET`` only (a public client has none: PKCE alone)."""
    scope: str = "openid profile email"

    @property
    def redirect_uri(self) -> str:
        """Where the provider sends the browser back: register it with the provider."""
        return f"{self.redirect_base}/web/login/callback"

    @property
    def is_secure(self) -> bool:
        return self.redirect_base.startswith("https://")

    @classmethod
    def from_env(cls, issuer: str, env: Mapping[str, str]) -> OidcLogin | None:
        client_id = env.get(f"{ENV}CLIENT_ID", "").strip()
        if not client_id:
            return None
        base = env.get(f"{ENV}REDIRECT_BASE", "").strip().rstrip("/")
        if not base:
            raise InputError(
                f"{ENV}REDIRECT_BASE is not set",
                field=f"{ENV}REDIRECT_BASE",
                hint="the server's address as browsers reach it, e.g. "
                "https://releasegate.example.com (the provider sends them back to "
                "BASE/web/login/callback)",
            )
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise InputError(
                f"{base!r} is not an http:// or https:// address",
                field=f"{ENV}REDIRECT_BASE",
                hint="e.g. https://releasegate.example.com",
            )
        name = env.get(f"{ENV}PROVIDER_NAME", "").strip() or urlsplit(issuer).hostname or issuer
        return cls(
            client_id=client_id,
            redirect_base=base,
            provider_name=name,
            client_secret=env.get(f"{ENV}CLIENT_SECRET", "").strip() or None,
        )


def is_jwt(value: str) -> bool:
    """Whether a bearer value is shaped as a JWT (three base64url parts, a JSON header)."""
    return value.startswith("eyJ") and value.count(".") == 2


class OidcVerifier:
    """Checks JWTs against the provider's keys (fetched once, again for an unknown key id)."""

    def __init__(self, config: OidcConfig) -> None:
        try:
            import jwt
        except ModuleNotFoundError as exc:
            raise PrerequisiteError(
                f"OIDC needs PyJWT with its crypto extra ({exc.name})",
                hint="pip install 'releasegate[server]'",
            ) from None
        self.config = config
        self._jwt = jwt
        self._keys: Any = None
        self._discovered: tuple[float, dict[str, Any]] | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls) -> OidcVerifier | None:
        config = OidcConfig.from_env()
        return None if config is None else cls(config)

    def discovery(self) -> dict[str, Any]:
        """The issuer's OpenID discovery document (read once an hour; a failure is not
        kept, so the next call asks again); IdentityProviderError if it cannot be read."""
        with self._lock:
            if self._discovered is None or time.monotonic() - self._discovered[0] > 3600:
                self._discovered = (time.monotonic(), _discover(self.config.issuer))
            return self._discovered[1]

    def _client(self) -> Any:
        if self._keys is not None:
            return self._keys
        url = self.config.jwks_url or self.discovery().get("jwks_uri")
        if not isinstance(url, str):
            raise IdentityProviderError(
                f"the discovery document of {self.config.issuer} names no jwks_uri",
                hint=f"set {ENV}JWKS_URL to its keys' URL",
            )
        with self._lock:
            if self._keys is None:
                self._keys = self._jwt.PyJWKClient(url, cache_keys=True, lifespan=300, timeout=10)
            return self._keys

    def identity(self, token: str) -> Identity:
        """Who the JWT ``token`` acts as; UnauthorizedError saying why not (blocking)."""
        claims = self.claims(token)
        found = self.identity_of(claims)
        if found is None:
            raise UnauthorizedError(
                f"{self.name_of(claims)} has no releasegate role: {self.no_role}",
                hint=NO_ROLE_HINT,
            )
        return found

    @property
    def no_role(self) -> str:
        return f"no value of the {self.config.role_claim!r} claim is in {ENV}ROLES"

    def name_of(self, claims: Mapping[str, Any]) -> str:
        return str(claims.get(self.config.name_claim) or claims["sub"])

    def identity_of(self, claims: Mapping[str, Any]) -> Identity | None:
        """Who checked ``claims`` act as: their name and the role their groups map to
        (None: no role)."""
        role = role_from_claim(claims.get(self.config.role_claim), self.config.roles)
        if role is None:
            return None
        return Identity(self.name_of(claims), role, f"oidc:{claims['sub']}"[:64])

    def claims(self, token: str) -> dict[str, Any]:
        """The claims of the JWT ``token`` once its signature (by the provider's keys),
        issuer, audience and expiry are checked; UnauthorizedError saying why not."""
        jwt = self._jwt
        c = self.config
        try:
            key = self._client().get_signing_key_from_jwt(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=ALGORITHMS,
                audience=c.audiences,
                issuer=c.issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except (jwt.PyJWKClientError, OSError) as exc:
            raise IdentityProviderError(
                f"cannot fetch the identity provider's keys to check the token: {exc}",
                hint=f"check {ENV}JWKS_URL / {ENV}ISSUER and that the provider answers",
            ) from None
        except jwt.InvalidTokenError as exc:
            raise UnauthorizedError(f"the identity provider's token is not valid: {exc}") from None
        return claims


NO_ROLE_HINT = "an admin maps the provider's groups to roles in RELEASEGATE_OIDC_ROLES"


def _discover(issuer: str) -> dict[str, Any]:
    """The issuer's OpenID discovery document."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 (https or loopback)
            found = json.load(answer)
    except (OSError, ValueError) as exc:
        raise IdentityProviderError(
            f"cannot read the identity provider's discovery document {url}: {exc}",
            hint=f"set {ENV}JWKS_URL to its keys' URL",
        ) from None
    if not isinstance(found, dict):
        raise IdentityProviderError(f"the discovery document {url} is not a JSON object")
    return found
