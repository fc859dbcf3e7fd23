"""How an HTTP provider's requests reach the endpoint: a small port and its aiohttp adapter.

``Transport`` is what the OpenAI-compatible provider needs from HTTP: POST a JSON
body to a path under the base URL and get the status, headers and body back, or a
``TransportError`` saying what went wrong and whether another attempt may help.
A test can hand the provider any object with that shape.

``AiohttpTransport`` is the default: one ``aiohttp.ClientSession`` per event loop
(so one per eval, since an eval runs one loop), a ``TCPConnector`` pool of
keep-alive connections, TLS verified against ``SSL_CERT_FILE``/``SSL_CERT_DIR``,
certifi or the system's store, and ``HTTP(S)_PROXY``/``NO_PROXY`` from the
environment (http:// proxies: HTTPS goes through a CONNECT tunnel). Retries and
pacing are the provider's, not the transport's.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib
import os
import ssl
from collections.abc import Mapping
from typing import Any, NamedTuple, Protocol
from urllib.parse import unquote, urlsplit

from releasegate.errors import InputError

MAX_CONNECTIONS = 256  # per session; the eval's concurrency is the real bound
_TLS: ssl.SSLContext | None = None


class Reply(NamedTuple):
    """An HTTP answer: status, headers by lower-case name, the decoded body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class TransportError(Exception):
    """A request that got no HTTP answer: why, and whether another attempt may help."""

    def __init__(self, reason: str, *, is_retryable: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.is_retryable = is_retryable


TIMEOUT = "timeout"
CONNECTION_ERROR = "connection error"
MALFORMED = "malformed response"
UNTRUSTED = "TLS certificate not trusted"


class Transport(Protocol):
    """POSTs to one endpoint from one event loop; closed when that loop ends."""

    async def post(self, path: str, headers: Mapping[str, str], body: bytes) -> Reply: ...

    async def aclose(self) -> None: ...


def tls_context() -> ssl.SSLContext:
    """One verifying TLS context (building one reads the CA bundle: ~10 ms)."""
    global _TLS
    if _TLS is None:
        cafile, capath = os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
        if cafile is None and capath is None:
            with contextlib.suppress(ImportError):  # certifi's bundle, else the system's
                cafile = importlib.import_module("certifi").where()
        _TLS = ssl.create_default_context(cafile=cafile, capath=capath)
    return _TLS


class Proxy(NamedTuple):
    """The proxy the environment routes a base URL through, and its credentials."""

    url: str  # http://host:port, without credentials
    user: str | None
    password: str


def check_proxy(base_url: str) -> Proxy | None:
    """The proxy for ``base_url`` from ``HTTP(S)_PROXY``/``ALL_PROXY`` and ``NO_PROXY``;
    an InputError for one the transport cannot use. Read once per session: aiohttp's own
    ``trust_env`` reads the environment in a thread on every request (~0.4 ms of CPU)."""
    import urllib.request  # ~10 ms of imports (http.client, email): only when an eval starts

    url = urlsplit(base_url)
    proxies = urllib.request.getproxies_environment()
    proxy_url = proxies.get(url.scheme) or proxies.get("all")
    if not proxy_url or urllib.request.proxy_bypass(url.hostname or ""):
        return None
    p = urlsplit(proxy_url if "://" in proxy_url else f"http://{proxy_url}")
    if p.scheme != "http":
        raise InputError(
            f"only http:// proxies are supported, not {p.scheme}://",
            field=f"{url.scheme.upper()}_PROXY",
            hint="point the variable at an http:// proxy, or add the host to NO_PROXY",
        )
    host = f"[{p.hostname}]" if p.hostname and ":" in p.hostname else p.hostname
    user = unquote(p.username) if p.username is not None else None
    return Proxy(f"http://{host}:{p.port or 80}", user, unquote(p.password or ""))


class AiohttpTransport:
    """POSTs through one aiohttp session, opened on first use in the running loop."""

    def __init__(self, base_url: str, headers: Mapping[str, str], timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = dict(headers)
        self.timeout_s = timeout_s
        self._session: Any = None  # aiohttp.ClientSession, imported on first use
        self._proxy: dict[str, Any] = {}  # proxy= and proxy_headers= for every request

    def _open(self) -> Any:
        import aiohttp  # ~60 ms of imports: only when an eval calls an endpoint

        is_tls = self.base_url.startswith("https://")
        connector = aiohttp.TCPConnector(
            limit=MAX_CONNECTIONS, ssl=tls_context() if is_tls else True
        )
        proxy = check_proxy(self.base_url)
        if proxy is not None:
            self._proxy = {"proxy": proxy.url}
            if proxy.user is not None:
                pair = base64.b64encode(f"{proxy.user}:{proxy.password}".encode()).decode()
                credentials = {"Proxy-Authorization": f"Basic {pair}"}
                if is_tls:  # said to the proxy in CONNECT, never inside the tunnel
                    self._proxy["proxy_headers"] = credentials
                else:  # the proxy reads the request itself
                    self.headers.update(credentials)
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers=self.headers,
            timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            skip_auto_headers=("Content-Type",),
        )
        return self._session

    async def post(self, path: str, headers: Mapping[str, str], body: bytes) -> Reply:
        import aiohttp

        session = self._session or self._open()
        url = self.base_url + path
        for is_last in (False, True):
            try:
                async with session.post(url, data=body, headers=headers, **self._proxy) as response:
                    data = await response.read()
                    names = response.headers
                    return Reply(response.status, {k.lower(): v for k, v in names.items()}, data)
            except TimeoutError:
                raise TransportError(TIMEOUT, is_retryable=True) from None
            except aiohttp.ClientConnectorCertificateError:
                raise TransportError(UNTRUSTED, is_retryable=False) from None
            except aiohttp.ClientConnectorError:  # no connection made: the provider retries
                raise TransportError(CONNECTION_ERROR, is_retryable=True) from None
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                # a kept-alive connection the server closed while idle (dropped, or reset
                # under our request): once more on a new one, as aiohttp does for a GET
                if is_last:
                    raise TransportError(CONNECTION_ERROR, is_retryable=True) from None
            except (aiohttp.ClientConnectionError, OSError):
                raise TransportError(CONNECTION_ERROR, is_retryable=True) from None
            except (aiohttp.ClientError, ValueError):
                raise TransportError(MALFORMED, is_retryable=False) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()
            await asyncio.sleep(0)  # let the transports finish closing their sockets
