"""OIDC: a JWT from an identity provider as a bearer token, checked against the provider's
JWKS served on loopback (its discovery document too), with its groups mapped to roles by
``RELEASEGATE_OIDC_ROLES``; API tokens keep working beside it. And the dashboard's
sign-in at the provider (authorization code with PKCE): the loopback provider also
serves ``/authorize`` (signing its ``user`` in at once) and ``/token`` (checking the
client's secret, the code, the redirect URI and the PKCE verifier), and httpx follows
the whole flow's redirects."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from releasegate.domain.access import Role, parse_role_map, role_from_claim
from releasegate.errors import InputError
from releasegate.release.audit import audit_log
from releasegate.server.app import Settings, create_app
from releasegate.server.oidc import OidcConfig
from tests.helpers import ok_json, rg
from tests.server.conftest import Live, loopback_socket, run_server
from tests.server.served import serve

AUDIENCE = "releasegate-web"
CLIENT_ID = "releasegate-dashboard"
CLIENT_SECRET = "s3cret-" + "q" * 24


class Provider:
    """An identity provider on loopback: discovery, JWKS, and the authorization-code flow
    for the client ``CLIENT_ID`` (secret ``CLIENT_SECRET``), which signs ``user`` in at
    once, or, with ``ask``, once its sign-in form is submitted. ``host`` names it
    (``localhost`` makes it another site than the server's 127.0.0.1 in a browser)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        jwks = json.dumps({"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]})
        self.user: dict[str, Any] = {"preferred_username": "olga", "groups": ["rg-ops"]}
        self.codes: dict[str, dict[str, str]] = {}
        """code -> the authorization request it answers (taken once by /token)."""
        self.token_requests: list[dict[str, str]] = []
        self.deny = False  # /authorize answers error=access_denied
        self.expire_codes = False  # /token answers invalid_grant
        self.other_nonce = False  # the ID token carries another nonce
        self.ask = False  # /authorize shows a sign-in form (a person at the provider)
        self.signed_out: list[str] = []  # the clients /logout signed out
        self.keys_down = False  # /jwks answers 503
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                if url.path == "/authorize":
                    self.authorize({k: v[-1] for k, v in parse_qs(url.query).items()})
                    return
                if url.path == "/logout":  # RP-initiated logout: back where the client said
                    q = {k: v[-1] for k, v in parse_qs(url.query).items()}
                    provider.signed_out.append(q["client_id"])
                    self.send_response(302)
                    self.send_header("Location", q["post_logout_redirect_uri"])
                    self.end_headers()
                    return
                body = {
                    "/.well-known/openid-configuration": json.dumps(
                        {
                            "issuer": provider.issuer,
                            "jwks_uri": f"{provider.issuer}/jwks",
                            "authorization_endpoint": f"{provider.issuer}/authorize",
                            "token_endpoint": f"{provider.issuer}/token",
                            "end_session_endpoint": f"{provider.issuer}/logout",
                        }
                    ),
                    "/jwks": None if provider.keys_down else jwks,
                }.get(self.path)
                self.answer(200 if body else 503 if self.path == "/jwks" else 404, body or "{}")

            def authorize(self, q: dict[str, str], submitted: bool = False) -> None:
                if q.get("client_id") != CLIENT_ID or q.get("response_type") != "code":
                    self.answer(400, '{"error": "invalid_request"}')
                    return
                if provider.ask and not submitted:
                    fields = "".join(
                        f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
                        for k, v in q.items()
                    )
                    form = f'<form method="post">{fields}<button>Sign in</button></form>'
                    self.answer(200, form, "text/html")
                    return
                back = q["redirect_uri"] + "?"
                if provider.deny:
                    back += urlencode({"error": "access_denied", "state": q["state"]})
                else:
                    code = secrets.token_urlsafe(16)
                    provider.codes[code] = q
                    back += urlencode({"code": code, "state": q["state"]})
                self.send_response(302)
                self.send_header("Location", back)
                self.end_headers()

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["Content-Length"])).decode()
                form = {k: v[-1] for k, v in parse_qs(raw).items()}
                if self.path.startswith("/authorize"):  # its sign-in form, submitted
                    self.authorize(form, submitted=True)
                    return
                provider.token_requests.append(form)
                basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
                asked = provider.codes.pop(form.get("code", ""), None)
                if self.headers.get("Authorization") != f"Basic {basic}":
                    self.answer(401, '{"error": "invalid_client"}')
                elif asked is None or provider.expire_codes:
                    self.answer(400, '{"error": "invalid_grant", "error_description": "expired"}')
                elif (
                    form.get("grant_type") != "authorization_code"
                    or form.get("redirect_uri") != asked["redirect_uri"]
                    or asked.get("code_challenge_method") != "S256"
                    or s256(form.get("code_verifier", "")) != asked["code_challenge"]
                ):
                    self.answer(400, '{"error": "invalid_grant"}')
                else:
                    nonce = "another" if provider.other_nonce else asked["nonce"]
                    id_token = provider.token(aud=CLIENT_ID, nonce=nonce, **provider.user)
                    self.answer(
                        200,
                        json.dumps(
                            {"access_token": "at", "token_type": "Bearer", "id_token": id_token}
                        ),
                    )

            def answer(self, status: int, body: str, kind: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.issuer = f"http://{host}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Shut it down (a provider that is down: its port refuses connections)."""
        if self.server.socket.fileno() != -1:
            self.server.shutdown()
            self.server.server_close()

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


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@pytest.fixture
def provider() -> Iterator[Provider]:
    p = Provider()
    yield p
    p.stop()


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


# the dashboard's sign-in at the provider


@pytest.fixture
def dashboard(
    live: Live, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., str]]:
    """Serve the live store with sign-in at ``provider`` configured; returns a maker
    taking the role map, giving the server's URL."""
    stops: list[Iterator[str]] = []

    def make(roles: str = "rg-approvers=approver,rg-ops=operator,*=viewer") -> str:
        sock = loopback_socket()
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        for name, value in {
            "ISSUER": provider.issuer,
            "AUDIENCE": AUDIENCE,
            "ROLES": roles,
            "CLIENT_ID": CLIENT_ID,
            "CLIENT_SECRET": CLIENT_SECRET,
            "REDIRECT_BASE": url,
        }.items():
            monkeypatch.setenv(f"RELEASEGATE_OIDC_{name}", value)
        served = run_server(create_app(live.store, Settings(token_ttl=0, resolve_ttl=0)), sock)
        stops.append(served)
        return next(served)

    yield make
    for served in stops:
        next(served, None)


def browser(url: str) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=60, follow_redirects=True)


def server_log(caplog: pytest.LogCaptureFixture) -> str:
    """What the server logged (the test's own client logs what it sends and receives)."""
    server = ("releasegate", "uvicorn", "httpx2", "httpcore2", "authlib")
    return "\n".join(
        f"{r.name} {r.getMessage()}" for r in caplog.records if r.name.startswith(server)
    )


def refusals(live: Live) -> list[dict[str, Any]]:
    return [
        {"actor": e.actor, "subject": e.subject, **e.payload}
        for e in audit_log(live.store)
        if e.kind == "access.refused"
    ]


def test_sign_in_at_the_provider_lands_logged_in_with_the_mapped_role(
    live: Live, provider: Provider, dashboard: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = dashboard()
    with browser(url) as c:
        start = c.get("/web/workflows/router")  # no session: the login page, with the button
        assert start.url.path == "/web/login"
        assert "Sign in with 127.0.0.1" in start.text
        signed = c.get("/web/login/oidc", params={"next": "/web/workflows/router"})
        assert signed.status_code == 200, signed.text
        assert [r.url.path for r in signed.history] == ["/web/login/oidc", "/authorize"]
        assert "Signed in as olga (operator)" in signed.text
        assert 'content="0; url=/web/workflows/router"' in signed.text  # where it was going
        cookie = next(x for x in c.cookies.jar if x.name == "releasegate_session")
        assert cookie.has_nonstandard_attr("HttpOnly") and cookie.path == "/web"
        assert "samesite=strict" in signed.headers["set-cookie"].lower()
        page = c.get("/web/workflows/router")
        assert page.status_code == 200 and page.url.path == "/web/workflows/router"
        assert "olga" in page.text and '<span class="role">operator</span>' in page.text
        # PKCE with S256, the secret sent as HTTP Basic (never in the form), the code once
        sent = provider.token_requests[-1]
        assert sent["code_verifier"] and "client_secret" not in sent
        assert provider.codes == {}
        # sign out: the session ends, the next page is the login form again
        csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
        out = c.post("/web/logout", data={"csrf": csrf})
        assert out.url.path == "/web/login"
        assert "You are logged out of releasegate" in out.text
        there = out.text.split('class="sign-out" href="')[1].split('"')[0].replace("&amp;", "&")
        back = c.get(there)  # and at the provider too, back to the login page
        assert provider.signed_out == [CLIENT_ID] and back.url == f"{url}/web/login"
        assert c.get("/web/").url.path == "/web/login"
    logged = server_log(caplog)
    assert "httpx2" in logged  # the server's own call to the token endpoint is in it
    said = logged + json.dumps(refusals(live)) + page.text + signed.text
    assert CLIENT_SECRET not in said and sent["code"] not in said
    assert refusals(live) == []


def test_sign_in_goes_back_only_to_a_dashboard_page(
    provider: Provider, dashboard: Callable[..., str]
) -> None:
    """``next`` names where to go after signing in: another site is never it."""
    url = dashboard()
    for hostile in ("https://evil.test/", "//evil.test/web/", "/\\evil.test", "javascript:x"):
        with browser(url) as c:
            signed = c.get("/web/login/oidc", params={"next": hostile})
            assert "Signed in as olga" in signed.text, hostile
            assert 'content="0; url=/web/"' in signed.text, hostile
            assert "evil" not in signed.text and "javascript" not in signed.text


def test_a_callback_with_another_state_or_none_started_is_refused_and_audited(
    live: Live, provider: Provider, dashboard: Callable[..., str]
) -> None:
    url = dashboard()
    with httpx.Client(base_url=url, timeout=60) as c:
        # nothing started in this browser (a link to the callback from elsewhere)
        r = c.get("/web/login/callback", params={"code": "x", "state": "y"})
        assert r.status_code == 400
        assert "Sign-in failed" in r.text and "no sign-in was started" in r.text
        to_provider = c.get("/web/login/oidc")
        assert to_provider.status_code == 303
        assert "code_challenge_method=S256" in to_provider.headers["location"]
        back = httpx.get(to_provider.headers["location"], timeout=60).headers["location"]
        code = parse_qs(urlsplit(back).query)["code"][0]
        r = c.get("/web/login/callback", params={"code": code, "state": "forged"})
    assert r.status_code == 400
    assert "state is not the one this browser started" in r.text
    assert code in provider.codes  # never exchanged
    assert [(x["status"], x["path"], x["actor"]) for x in refusals(live)] == [
        (400, "/web/login/callback", "anonymous"),
        (400, "/web/login/callback", "anonymous"),
    ]


@pytest.mark.parametrize("case", ["denied", "expired code", "other nonce"])
def test_what_the_provider_refuses_or_gets_wrong_is_a_401_page(
    live: Live, provider: Provider, dashboard: Callable[..., str], case: str
) -> None:
    url = dashboard()
    provider.deny = case == "denied"
    provider.expire_codes = case == "expired code"
    provider.other_nonce = case == "other nonce"
    with browser(url) as c:
        r = c.get("/web/login/oidc")
        assert c.get("/web/").url.path == "/web/login"  # no session
    assert r.status_code == 401, r.text
    said = {
        "denied": "refused the sign-in: access_denied",
        "expired code": "refused the sign-in&#39;s code (invalid_grant: expired)",
        "other nonce": "the ID token&#39;s nonce is not the one this sign-in sent",
    }[case]
    assert said in r.text
    assert 'href="/web/login"' in r.text  # a way back
    assert [(x["status"], x["actor"]) for x in refusals(live)] == [(401, "anonymous")]
    assert CLIENT_SECRET not in r.text


def test_a_user_with_no_mapped_role_is_a_403_naming_them(
    live: Live, provider: Provider, dashboard: Callable[..., str]
) -> None:
    url = dashboard(roles="rg-approvers=approver")  # no "*": the provider's word is not enough
    provider.user = {"preferred_username": "eve", "groups": ["marketing"]}
    with browser(url) as c:
        r = c.get("/web/login/oidc")
        assert c.get("/web/").url.path == "/web/login"
    assert r.status_code == 403
    assert "eve signed in at 127.0.0.1 but has no releasegate role" in r.text
    assert "RELEASEGATE_OIDC_ROLES" in r.text
    assert [(x["status"], x["actor"], x["subject"]) for x in refusals(live)] == [
        (403, "eve", "oidc:user-42")
    ]


def test_an_id_token_too_long_for_a_cookie_is_said_not_dropped(
    live: Live, provider: Provider, dashboard: Callable[..., str]
) -> None:
    provider.user["groups"] = [f"/org/unit-{i}/team-{i}" for i in range(200)]
    with browser(dashboard()) as c:
        r = c.get("/web/login/oidc")
    assert r.status_code == 502
    assert "over the 3,900 a browser keeps in the session cookie" in r.text
    assert "releasegate_session" not in r.headers.get("set-cookie", "")


def test_a_provider_that_is_down_is_a_502_page_not_a_refusal(
    live: Live, provider: Provider, dashboard: Callable[..., str], caplog: pytest.LogCaptureFixture
) -> None:
    url = dashboard()
    with httpx.Client(base_url=url, timeout=60) as c:
        to_provider = c.get("/web/login/oidc")  # the provider's endpoints are read now
        back = httpx.get(to_provider.headers["location"], timeout=60).headers["location"]
        provider.stop()  # then it goes down before the code is exchanged
        r = c.get(back)
    assert r.status_code == 502
    assert "token endpoint did not answer" in r.text and "try again later" in r.text
    assert refusals(live) == []  # nobody was refused: logged for the admin instead
    assert "sign-in at the identity provider failed" in server_log(caplog)
    assert CLIENT_SECRET not in r.text + server_log(caplog)
    with httpx.Client(base_url=dashboard(), timeout=60) as c:  # its discovery, unread
        r = c.get("/web/login/oidc")
    assert r.status_code == 502 and "did not answer" in r.text


def test_a_provider_whose_keys_cannot_be_read_is_a_502_page(
    live: Live, provider: Provider, dashboard: Callable[..., str]
) -> None:
    provider.keys_down = True  # the ID token arrives, but cannot be checked
    with browser(dashboard()) as c:
        r = c.get("/web/login/oidc")
        assert c.get("/web/").url.path == "/web/login"
    assert r.status_code == 502
    assert "cannot fetch the identity provider&#39;s keys" in r.text
    assert refusals(live) == []


def test_sign_in_is_offered_only_where_configured(
    live: Live, provider: Provider, oidc: str
) -> None:
    with httpx.Client(base_url=oidc, timeout=60) as c:
        assert "Sign in with" not in c.get("/web/login").text
        assert c.get("/web/login/oidc").status_code == 404
        assert c.get("/web/login/callback").status_code == 404
    base = {
        "RELEASEGATE_OIDC_ISSUER": "https://id.example.com/realms/ml",
        "RELEASEGATE_OIDC_AUDIENCE": "a",
        "RELEASEGATE_OIDC_ROLES": "*=viewer",
        "RELEASEGATE_OIDC_CLIENT_ID": "releasegate",
    }
    with pytest.raises(InputError, match="RELEASEGATE_OIDC_REDIRECT_BASE is not set"):
        OidcConfig.from_env(base)
    with pytest.raises(InputError, match="is not an http:// or https:// address"):
        OidcConfig.from_env({**base, "RELEASEGATE_OIDC_REDIRECT_BASE": "rg.example.com"})
    config = OidcConfig.from_env(
        {
            **base,
            "RELEASEGATE_OIDC_REDIRECT_BASE": "https://rg.example.com/",
            "RELEASEGATE_OIDC_CLIENT_SECRET": CLIENT_SECRET,
        }
    )
    assert config is not None and config.login is not None
    assert config.login.redirect_uri == "https://rg.example.com/web/login/callback"
    assert config.login.provider_name == "id.example.com"
    assert CLIENT_SECRET not in repr(config)
    assert config.audiences == ["a", "releasegate"]


def test_serve_takes_the_client_by_option_and_its_secret_only_from_the_environment(
    tmp_path: Path, provider: Provider
) -> None:
    ok_json(rg(tmp_path, "init", "--json"))
    env = {
        "RELEASEGATE_OIDC_ISSUER": provider.issuer,
        "RELEASEGATE_OIDC_AUDIENCE": AUDIENCE,
        "RELEASEGATE_OIDC_ROLES": "*=viewer",
        "RELEASEGATE_OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "RELEASEGATE_OIDC_PROVIDER_NAME": "Keycloak",
    }
    half = rg(tmp_path, "serve", "--oidc-client-id", CLIENT_ID, env=env)
    assert half.returncode == 2
    assert "RELEASEGATE_OIDC_REDIRECT_BASE is not set" in half.stderr
    on_the_line = rg(tmp_path, "serve", "--oidc-client-secret", "x", env=env)
    assert on_the_line.returncode == 2 and "No such option" in on_the_line.stderr
    served = serve(
        tmp_path,
        "--workers",
        "2",
        "--oidc-client-id",
        CLIENT_ID,
        "--oidc-redirect-base",
        "https://releasegate.example.com",
        env=env,
    )
    try:
        login = httpx.get(f"{served.url}/web/login", timeout=60)
        assert "Sign in with Keycloak" in login.text  # each worker has the client
        to_provider = httpx.get(f"{served.url}/web/login/oidc", timeout=60)
        assert to_provider.status_code == 303
        assert (
            "redirect_uri=https%3A%2F%2Freleasegate.example.com%2Fweb%2Flogin%2Fcallback"
            in (to_provider.headers["location"])
        )
        assert "; secure" in to_provider.headers["set-cookie"].lower()  # https: Secure
    finally:
        assert served.stop() == 0
    assert CLIENT_SECRET not in served.logs()
