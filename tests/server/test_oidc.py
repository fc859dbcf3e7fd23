"""OIDC: a JWT from an identity provider as a bearer token, checked against the provider's
JWKS served on loopback (its discovery document too), with its groups mapped to roles by
``RELEASEGATE_OIDC_ROLES``; API tokens keep working beside it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from releasegate.domain.access import Role, parse_role_map, role_from_claim
from releasegate.errors import InputError
from releasegate.release.audit import audit_log
from releasegate.server.app import Settings, create_app
from releasegate.server.oidc import OidcConfig
from tests.server.conftest import Live, run_server

AUDIENCE = "releasegate-web"


class Provider:
    """An identity provider's public side: discovery and JWKS on loopback, and its key."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwks = json.dumps({"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]})
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = {
                    "/.well-known/openid-configuration": json.dumps(
                        {"issuer": provider.issuer, "jwks_uri": f"{provider.issuer}/jwks"}
                    ),
                    "/jwks": jwks,
                }.get(self.path)
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write((body or "{}").encode())

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, key: Any = None, algorithm: str = "RS256", **claims: Any) -> str:
        now = int(time.time())
        body = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": "user-42",
            "iat": now,
            "exp": now + 600,
            **claims,
        }
        return jwt.encode(body, key or self.key, algorithm=algorithm, headers={"kid": "k1"})


@pytest.fixture
def provider() -> Iterator[Provider]:
    p = Provider()
    yield p
    p.server.shutdown()
    p.server.server_close()


@pytest.fixture
def oidc(live: Live, provider: Provider, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The live store served by an app that also takes the provider's tokens."""
    monkeypatch.setenv("RELEASEGATE_OIDC_ISSUER", provider.issuer)
    monkeypatch.setenv("RELEASEGATE_OIDC_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("RELEASEGATE_OIDC_ROLES", "rg-approvers=approver,rg-ops=operator,*=viewer")
    yield from run_server(create_app(live.store, Settings(token_ttl=0, resolve_ttl=0)))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_provider_token_acts_as_its_user_with_the_role_its_groups_map_to(
    live: Live, provider: Provider, oidc: str
) -> None:
    bob = provider.token(preferred_username="bob", groups=["staff", "rg-approvers"])
    with httpx.Client(base_url=oidc, timeout=60) as c:
        assert c.get("/v1/workflows", headers=bearer(bob)).status_code == 200
        r = c.post(f"/v1/versions/{live.v2}/approve", json={"env": "staging"}, headers=bearer(bob))
        assert r.status_code == 200, r.text
        # anyone the provider vouches for is a viewer ("*"): may read, not approve
        eve = provider.token(preferred_username="eve", groups=["marketing"])
        assert c.get("/v1/workflows", headers=bearer(eve)).status_code == 200
        r = c.post(f"/v1/versions/{live.v2}/approve", json={"env": "staging"}, headers=bearer(eve))
        assert r.status_code == 403
        assert "eve has role viewer" in r.json()["error"]
        # API tokens keep working beside it
        assert c.get("/v1/workflows", headers=bearer(live.tokens["viewer"])).status_code == 200
    approved = [e for e in audit_log(live.store) if e.kind == "approval.granted"]
    assert approved[-1].actor == "bob"


@pytest.mark.parametrize(
    "case",
    ["expired", "audience", "issuer", "other key", "shared secret", "no subject", "garbled"],
)
def test_a_token_the_provider_did_not_vouch_for_is_401(
    provider: Provider, oidc: str, case: str
) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = {
        "expired": lambda: provider.token(exp=int(time.time()) - 60),
        "audience": lambda: provider.token(aud="someone-else"),
        "issuer": lambda: provider.token(iss="http://127.0.0.1:1"),
        "other key": lambda: provider.token(key=other),
        "shared secret": lambda: provider.token(key="x" * 32, algorithm="HS256"),
        "no subject": lambda: provider.token(sub=None),
        "garbled": lambda: provider.token()[:-8] + "AAAAAAAA",
    }[case]()
    r = httpx.get(f"{oidc}/v1/workflows", headers=bearer(token), timeout=60)
    assert r.status_code == 401, r.text
    assert r.json()["ok"] is False


def test_the_dashboard_logs_in_with_a_provider_token(provider: Provider, oidc: str) -> None:
    token = provider.token(preferred_username="olga", groups=["rg-ops"])
    with httpx.Client(base_url=oidc, timeout=60) as c:
        r = c.post("/web/login", data={"token": token, "next": "/web/"})
        assert r.status_code == 303, r.text
        home = c.get("/web/")
    assert home.status_code == 200
    assert "olga" in home.text and '<span class="role">operator</span>' in home.text
    assert token not in home.text
    # behind a proxy that runs the login and passes the token on, no form at all
    passed = httpx.get(f"{oidc}/web/", headers=bearer(token), timeout=60)
    assert passed.status_code == 200 and "olga" in passed.text


def test_roles_map_from_a_claim_to_the_highest_role_given() -> None:
    roles = parse_role_map("ops=operator, leads=approver,*=viewer", "RELEASEGATE_OIDC_ROLES")
    assert role_from_claim(["ops", "leads"], roles) is Role.APPROVER
    assert role_from_claim("ops", roles) is Role.OPERATOR
    assert role_from_claim(["nobody"], roles) is Role.VIEWER
    assert role_from_claim(None, parse_role_map("ops=operator", "x")) is None
    with pytest.raises(InputError, match="'ops' is not value=role"):
        parse_role_map("ops", "RELEASEGATE_OIDC_ROLES")
    with pytest.raises(InputError, match="unknown role 'boss'"):
        parse_role_map("ops=boss", "RELEASEGATE_OIDC_ROLES")


def test_an_issuer_without_an_audience_or_roles_is_refused_before_serving() -> None:
    assert OidcConfig.from_env({}) is None
    with pytest.raises(InputError, match="RELEASEGATE_OIDC_AUDIENCE is not set"):
        OidcConfig.from_env({"RELEASEGATE_OIDC_ISSUER": "https://id.example"})
    with pytest.raises(InputError, match="RELEASEGATE_OIDC_ROLES gives no role"):
        OidcConfig.from_env(
            {"RELEASEGATE_OIDC_ISSUER": "https://id.example", "RELEASEGATE_OIDC_AUDIENCE": "a"}
        )
