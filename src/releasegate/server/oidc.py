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
"""

from __future__ import annotations

import json
import os
import threading
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from releasegate.domain.access import Identity, Role, parse_role_map, role_from_claim
from releasegate.errors import InputError, PrerequisiteError, UnauthorizedError

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
        self._lock = threading.Lock()

    @classmethod
    def from_env(cls) -> OidcVerifier | None:
        config = OidcConfig.from_env()
        return None if config is None else cls(config)

    def _client(self) -> Any:
        with self._lock:
            if self._keys is None:
                url = self.config.jwks_url or _discover(self.config.issuer)
                self._keys = self._jwt.PyJWKClient(url, cache_keys=True, lifespan=300, timeout=10)
            return self._keys

    def identity(self, token: str) -> Identity:
        """Who the JWT ``token`` acts as; UnauthorizedError saying why not (blocking)."""
        jwt = self._jwt
        c = self.config
        try:
            key = self._client().get_signing_key_from_jwt(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=ALGORITHMS,
                audience=c.audience,
                issuer=c.issuer,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except (jwt.PyJWKClientError, OSError) as exc:
            raise UnauthorizedError(
                f"cannot fetch the identity provider's keys to check the token: {exc}",
                hint=f"check {ENV}JWKS_URL / {ENV}ISSUER and that the provider answers",
            ) from None
        except jwt.InvalidTokenError as exc:
            raise UnauthorizedError(f"the identity provider's token is not valid: {exc}") from None
        name = str(claims.get(c.name_claim) or claims["sub"])
        role = role_from_claim(claims.get(c.role_claim), c.roles)
        if role is None:
            raise UnauthorizedError(
                f"{name} has no releasegate role: no value of the {c.role_claim!r} claim is in "
                f"{ENV}ROLES",
                hint="an admin maps the provider's groups to roles in RELEASEGATE_OIDC_ROLES",
            )
        return Identity(name, role, f"oidc:{claims['sub']}"[:64])


def _discover(issuer: str) -> str:
    """The ``jwks_uri`` of the issuer's OpenID discovery document."""
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 (https or loopback)
            found = json.load(answer).get("jwks_uri")
    except (OSError, ValueError) as exc:
        raise UnauthorizedError(
            f"cannot read the identity provider's discovery document {url}: {exc}",
            hint=f"set {ENV}JWKS_URL to its keys' URL",
        ) from None
    if not isinstance(found, str):
        raise UnauthorizedError(f"the discovery document {url} names no jwks_uri")
    return found
