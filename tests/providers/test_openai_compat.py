from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import shutil
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from releasegate.domain.results import CaseOutput
from releasegate.errors import InputError, ManifestError, PrerequisiteError
from releasegate.providers import build_provider, transport
from releasegate.providers.base import ProviderContext
from releasegate.providers.embeddings import Embedder
from releasegate.providers.openai_compat import OpenAICompatible
from tests.providers.openai_server import FakeOpenAIServer

KEY_ENV = "RG_TEST_OPENAI_KEY"
KEY = "sk-test-5f1c9a0b7e2d4c68"
CONTEXT = ProviderContext(embedder=Embedder())
CLOCK_SLACK = 0.001  # asyncio may wake a sleeper up to its clock resolution early


@pytest.fixture(params=["threads", "asyncio"])
def server(request: pytest.FixtureRequest) -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(backend=request.param) as running:
        yield running


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    # the caller's proxies, price table and OpenAI settings must not leak into these tests
    for name in ("RELEASEGATE_PRICES", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("RELEASEGATE_DIR", str(tmp_path))


def manifest(server: FakeOpenAIServer, **options: Any) -> dict[str, Any]:
    return {
        "model": {
            "provider": "openai",
            "name": "gpt-test",
            "base_url": server.base_url,
            "api_key_env": KEY_ENV,
            "options": {"timeout_s": 2, **options},
        },
        "prompts": {
            "system": "Route each customer message to the team that handles it.",
            "templates": {"user": "Customer says: {input}"},
        },
        "generation": {"temperature": 0.0, "seed": 7, "min_confidence": 0.3},
        "tools": [],
    }


def provider(m: dict[str, Any]) -> OpenAICompatible:
    built = OpenAICompatible(m, CONTEXT)
    built.backoff_base_s = 0.01  # keep the jittered waits short; Retry-After still rules
    return built


def complete(p: OpenAICompatible, case_input: Any) -> CaseOutput:
    p.warm([case_input])
    return asyncio.run(p.complete(case_input))


def assert_no_key(out: CaseOutput) -> None:
    assert KEY not in repr(out)
    assert KEY[3:] not in json.dumps(out.data or {}) + out.text + (out.error or "")


def test_the_registry_builds_it_by_name(server: FakeOpenAIServer) -> None:
    assert isinstance(build_provider(manifest(server), CONTEXT), OpenAICompatible)


def test_a_completion_gives_text_tokens_and_cost(server: FakeOpenAIServer) -> None:
    m = manifest(server, price_per_1k_input=0.5, price_per_1k_output=2.0)
    out = complete(provider(m), "my card is gone #card_lost")
    usage = server.requests[-1].usage
    assert out.error is None
    assert out.text == "card_lost"
    assert (out.tokens_in, out.tokens_out) == (usage["prompt_tokens"], usage["completion_tokens"])
    assert out.tokens_in > 0 and out.tokens_out == 1
    assert out.cost_usd == pytest.approx((out.tokens_in * 0.5 + out.tokens_out * 2.0) / 1000)
    assert out.latency_ms > 0
    assert out.data == {"retries": 0}


def test_the_system_prompt_template_generation_and_key_reach_the_server(
    server: FakeOpenAIServer,
) -> None:
    complete(provider(manifest(server)), "where is my transfer")
    (request,) = server.requests
    assert request.body["model"] == "gpt-test"
    assert request.body["messages"] == [
        {"role": "system", "content": "Route each customer message to the team that handles it."},
        {"role": "user", "content": "Customer says: where is my transfer"},
    ]
    assert request.body["temperature"] == 0.0 and request.body["seed"] == 7
    assert "min_confidence" not in request.body  # not an API parameter
    assert request.headers["authorization"] == f"Bearer {KEY}"


def test_a_dict_input_fills_the_template_by_field(server: FakeOpenAIServer) -> None:
    m = manifest(server)
    m["prompts"]["templates"]["user"] = "{subject}: {body}"
    out = complete(provider(m), {"subject": "Card", "body": "stolen #card_lost"})
    assert out.text == "card_lost"
    assert server.requests[-1].body["messages"][-1]["content"] == "Card: stolen #card_lost"


def test_a_template_field_the_input_lacks_is_a_case_error(server: FakeOpenAIServer) -> None:
    m = manifest(server)
    m["prompts"]["templates"]["user"] = "{subject}"
    out = complete(provider(m), {"body": "x"})
    assert out.error is not None and "subject" in out.error
    assert server.requests == []


def test_tools_are_offered_and_tool_calls_parsed(server: FakeOpenAIServer) -> None:
    m = manifest(server)
    parameters = {"type": "object", "properties": {"input": {"type": "string"}}}
    m["tools"] = [{"name": "lookup", "description": "Find an order", "parameters": parameters}]
    out = complete(provider(m), "order 42")
    assert server.requests[-1].body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "Find an order",
                "parameters": parameters,
            },
        }
    ]
    calls = [{"id": "call_1", "name": "lookup", "arguments": {"input": "Customer says: order 42"}}]
    assert out.error is None
    assert out.data == {"retries": 0, "tool_calls": calls}
    assert json.loads(out.text) == calls


def test_a_429_waits_for_retry_after_then_succeeds(server: FakeOpenAIServer) -> None:
    server.fail_next(1, "rate_limit", retry_after=1)
    out = complete(provider(manifest(server)), "#ok")
    first, second = server.requests
    assert (first.status, second.status) == (429, 200)
    assert second.at - first.at >= 0.95
    assert out.text == "ok" and out.error is None
    assert out.data == {"retries": 1}
    assert out.latency_ms >= 950


def test_a_500_is_retried_then_succeeds(server: FakeOpenAIServer) -> None:
    server.fail_next(2, "server_error")
    out = complete(provider(manifest(server)), "#ok")
    assert [r.status for r in server.requests] == [500, 500, 200]
    assert out.text == "ok" and out.data == {"retries": 2}


def test_a_persistent_500_is_an_error_after_max_retries(server: FakeOpenAIServer) -> None:
    server.fail_next(10, "server_error")
    out = complete(provider(manifest(server, max_retries=2)), "#ok")
    assert len(server.requests) == 3
    assert out.text == ""
    assert out.error == "HTTP 500 Internal Server Error (server_error) after 3 attempts"
    assert out.data == {"retries": 2}


def test_a_hang_past_the_timeout_is_an_error(server: FakeOpenAIServer) -> None:
    server.fail_next(1, "hang")
    out = complete(provider(manifest(server, timeout_s=0.3, max_retries=0)), "#ok")
    assert out.error == "timeout after 1 attempt"
    assert out.latency_ms >= 250


def test_malformed_json_is_an_error_without_retrying(server: FakeOpenAIServer) -> None:
    server.fail_next(1, "malformed")
    out = complete(provider(manifest(server)), "#ok")
    assert out.error == "malformed response after 1 attempt"
    assert len(server.requests) == 1


def test_a_missing_key_variable_is_named_in_the_error(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-other-should-not-leak")
    out = complete(provider(manifest(server)), "#ok")
    assert out.error == f"environment variable {KEY_ENV} is not set"
    assert "sk-" not in repr(out)
    assert server.requests == []


def test_a_key_with_characters_no_header_can_carry_is_named_not_quoted(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "sk-copied\u2019from-a-doc\n")
    out = complete(provider(manifest(server)), "#ok")
    assert out.error == f"environment variable {KEY_ENV} is not a valid key"
    assert "copied" not in repr(out)
    assert server.requests == []


def test_the_key_appears_in_no_output_or_error(server: FakeOpenAIServer) -> None:
    p = provider(manifest(server, max_retries=1))
    outputs = [complete(p, "#ok")]
    server.fail_next(1, "unauthorized")  # quotes the key back, as OpenAI's 401 does
    outputs.append(complete(p, "#ok"))
    server.fail_next(5, "server_error")
    outputs.append(complete(p, "#ok"))
    assert outputs[1].error == "HTTP 401 Unauthorized after 1 attempt"
    assert outputs[2].error is not None
    for out in outputs:
        assert_no_key(out)
    assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in server.requests)


def test_the_key_is_read_at_call_time(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = provider(manifest(server))
    monkeypatch.setenv(KEY_ENV, "sk-rotated")
    complete(p, "#ok")
    assert server.requests[-1].headers["authorization"] == "Bearer sk-rotated"


def test_requests_per_minute_spaces_out_requests(server: FakeOpenAIServer) -> None:
    p = provider(manifest(server, requests_per_minute=120))

    async def three() -> list[CaseOutput]:
        return await asyncio.gather(*(p.complete(f"#c{i}") for i in range(3)))

    began = time.monotonic()
    outs = asyncio.run(three())
    assert sorted(o.text for o in outs) == ["c0", "c1", "c2"]
    # 120/minute: the i-th request may not leave before i * 0.5 s after the first was asked
    # for. Bounds from below only: a loaded machine delays requests, never hastens them
    # (the spread between arrivals is no such bound: a late first one shrinks it).
    arrivals = sorted(r.at for r in server.requests)
    assert all(at >= began + 0.5 * i - CLOCK_SLACK for i, at in enumerate(arrivals))


def test_tokens_per_minute_spaces_out_requests(server: FakeOpenAIServer) -> None:
    # ~34 estimated tokens a request (characters / 4) at 1200 tokens/minute: ~1.7 s apart,
    # so the second may not leave before ~1.7 s after both were asked for (lower bounds only)
    p = provider(manifest(server, tokens_per_minute=1200))

    async def two() -> list[CaseOutput]:
        return await asyncio.gather(*(p.complete("x" * 60) for _ in range(2)))

    began = time.monotonic()
    asyncio.run(two())
    first, second = sorted(r.at for r in server.requests)
    assert first >= began - CLOCK_SLACK and second - began >= 1.5


def test_64_concurrent_cases_all_complete(server: FakeOpenAIServer) -> None:
    p = provider(manifest(server))

    async def many() -> list[CaseOutput]:
        return await asyncio.gather(*(p.complete(f"#l{i}") for i in range(64)))

    outs = asyncio.run(many())
    assert [o.text for o in outs] == [f"l{i}" for i in range(64)]
    assert all(o.error is None for o in outs)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"requests_per_minute": 0}, "model.options.requests_per_minute"),
        ({"requests_per_minute": "fast"}, "model.options.requests_per_minute"),
        ({"tokens_per_minute": -5}, "model.options.tokens_per_minute"),
        ({"max_retries": -1}, "model.options.max_retries"),
        ({"max_retries": 1.5}, "model.options.max_retries"),
        ({"timeout_s": 0}, "model.options.timeout_s"),
        ({"timeout_s": True}, "model.options.timeout_s"),
        ({"price_per_1k_input": -0.1}, "model.options.price_per_1k_input"),
        ({"price_per_1k_output": "free"}, "model.options.price_per_1k_output"),
        ({"requests_per_min": 10}, "model.options.requests_per_min"),
    ],
)
def test_bad_options_name_the_field(
    server: FakeOpenAIServer, options: dict[str, Any], field: str
) -> None:
    with pytest.raises(ManifestError) as caught:
        OpenAICompatible(manifest(server, **options), CONTEXT)
    assert caught.value.field == field
    assert field in str(caught.value)


@pytest.mark.parametrize(
    ("model", "field"),
    [
        ({"name": ""}, "model.name"),
        ({"base_url": "localhost:8000"}, "model.base_url"),
        ({"base_url": "http://localhost:80a0/v1"}, "model.base_url"),
        ({"base_url": "https:///v1"}, "model.base_url"),
        ({"api_key_env": KEY}, "model.api_key_env"),
        ({"api_key": KEY}, "model.api_key"),
    ],
)
def test_a_bad_model_section_names_the_field_and_never_echoes_a_key(
    server: FakeOpenAIServer, model: dict[str, Any], field: str
) -> None:
    m = manifest(server)
    m["model"].update(model)
    with pytest.raises(ManifestError) as caught:
        OpenAICompatible(m, CONTEXT)
    assert caught.value.field == field
    assert KEY not in str(caught.value)


def test_a_tool_without_a_name_names_the_field(server: FakeOpenAIServer) -> None:
    m = manifest(server)
    m["tools"] = [{"description": "nameless"}]
    with pytest.raises(ManifestError) as caught:
        OpenAICompatible(m, CONTEXT)
    assert caught.value.field == "tools[0].name"


def test_a_key_shaped_like_an_error_code_is_still_not_echoed(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "plainlowercasekey123")
    server.fail_next(1, "unauthorized")  # the server answers with code = the key
    out = complete(provider(manifest(server)), "#ok")
    assert out.error is not None and out.error.startswith("HTTP 401 Unauthorized")
    assert "plainlowercasekey123" not in repr(out)


def test_connections_are_kept_alive_then_closed_when_the_event_loop_ends(
    server: FakeOpenAIServer,
) -> None:
    p = provider(manifest(server))
    sessions: list[Any] = []

    async def three() -> None:
        for _ in range(3):
            await p.complete("#ok")
        (used,) = p._transports.values()
        assert isinstance(used, transport.AiohttpTransport)
        sessions.append(used._session)
        assert len(server.peers) == 1  # one connection carried all three requests

    asyncio.run(three())
    assert len(server.requests) == 3
    assert sessions[0].closed


class ScriptedTransport:
    """A transport a test writes by hand: answers from a list, records what was posted."""

    def __init__(self, replies: list[transport.Reply | transport.TransportError]) -> None:
        self.replies = replies
        self.posted: list[tuple[str, dict[str, str], bytes]] = []
        self.closed = False

    async def post(self, path: str, headers: Any, body: bytes) -> transport.Reply:
        self.posted.append((path, dict(headers), body))
        reply = self.replies.pop(0)
        if isinstance(reply, transport.TransportError):
            raise reply
        return reply

    async def aclose(self) -> None:
        self.closed = True


def test_a_test_can_swap_the_transport(server: FakeOpenAIServer) -> None:
    answer = {"choices": [{"message": {"content": "ok"}}], "usage": {"prompt_tokens": 3}}
    scripted = ScriptedTransport(
        [
            transport.TransportError("connection error", is_retryable=True),
            transport.Reply(200, {}, json.dumps(answer).encode()),
        ]
    )
    p = provider(manifest(server))
    p.transport_factory = lambda: scripted
    out = complete(p, "#ok")
    assert (out.text, out.tokens_in, out.data) == ("ok", 3, {"retries": 1})
    assert [path for path, _, _ in scripted.posted] == ["/chat/completions"] * 2
    assert scripted.posted[0][1] == {"Authorization": f"Bearer {KEY}"}
    assert scripted.closed and server.requests == []


def test_an_error_text_is_masked_even_when_the_key_is_not_the_callers(
    server: FakeOpenAIServer,
) -> None:
    leaked = transport.TransportError("refused: Bearer sk-other-0123456789", is_retryable=False)
    p = provider(manifest(server))
    p.transport_factory = lambda: ScriptedTransport([leaked])
    out = complete(p, "#ok")
    assert out.error == "refused: Bearer *** after 1 attempt"


# -- cost from the price table ---------------------------------------------------------------


def test_without_price_options_cost_comes_from_the_price_table(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    table = tmp_path / "team-prices.yaml"
    table.write_text("version: t1\nmodels:\n  gpt-test: {input: 500, output: 2000}\n")
    monkeypatch.setenv("RELEASEGATE_PRICES", str(table))
    p = provider(manifest(server))
    out = complete(p, "my card is gone #card_lost")
    assert (p.pricing.source, p.pricing.entry) == ("table", "gpt-test")
    assert p.pricing.table_version.endswith("+t1")
    assert out.cost_usd == pytest.approx((out.tokens_in * 500 + out.tokens_out * 2000) / 1e6)


def test_an_unpriced_model_on_this_machine_is_a_free_local_runtime(
    server: FakeOpenAIServer,
) -> None:
    p = provider(manifest(server))
    out = complete(p, "#ok")
    assert (p.pricing.source, out.cost_usd, p.pricing.warning) == ("local", 0.0, None)


def test_an_unpriced_remote_model_costs_0_and_is_flagged(server: FakeOpenAIServer) -> None:
    m = manifest(server)
    m["model"]["base_url"] = "https://llm.example.com/v1"
    p = provider(m)
    assert p.pricing.source == "unknown" and p.cost(1000, 1000) == 0.0
    assert p.pricing.warning is not None and "gpt-test" in p.pricing.warning


def test_without_base_url_openai_base_url_or_openai_is_used(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    m = manifest(server)
    del m["model"]["base_url"]
    assert provider(m).base_url == "https://api.openai.com/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj_42")
    assert complete(provider(m), "#ok").text == "ok"
    assert server.requests[-1].headers["openai-project"] == "proj_42"


# -- the wire ----------------------------------------------------------------------------------


def test_a_dropped_keep_alive_connection_is_replaced_not_retried(
    server: FakeOpenAIServer,
) -> None:
    p = provider(manifest(server))
    server.fail_next(1, "close_after")  # answers, then closes as an idle timeout would

    async def two() -> list[CaseOutput]:
        return [await p.complete("#a"), await p.complete("#b")]

    first, second = asyncio.run(two())
    assert (first.text, second.text) == ("a", "b")
    assert second.error is None and second.data == {"retries": 0}
    assert [r.status for r in server.requests] == [200, 200]


class ForwardProxy:
    """A tiny HTTP proxy: CONNECT tunnels, and absolute-form requests forwarded one each."""

    def __init__(self) -> None:
        self.seen: list[str] = []  # request lines
        self.auth: list[str | None] = []  # Proxy-Authorization values
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._done: asyncio.Event | None = None
        self.port = 0
        self.writers: set[asyncio.StreamWriter] = set()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def url(self, userinfo: str = "") -> str:
        return f"http://{userinfo}127.0.0.1:{self.port}"

    def __enter__(self) -> ForwardProxy:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._done is not None
        self._loop.call_soon_threadsafe(self._done.set)
        self._thread.join(5)

    async def _main(self) -> None:
        self._loop, self._done = asyncio.get_running_loop(), asyncio.Event()
        listener = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = listener.sockets[0].getsockname()[1]
        self._ready.set()
        async with listener:
            await self._done.wait()
        for writer in list(self.writers):  # close every leg still open, before the loop ends
            writer.transport.abort()
        await asyncio.sleep(0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            writer.close()
            return
        line, _, rest = head.decode("latin-1").partition("\r\n")
        self.seen.append(line)
        headers = {k.lower(): v for k, _, v in (h.partition(": ") for h in rest.split("\r\n"))}
        self.auth.append(headers.get("proxy-authorization"))
        method, target, _ = line.split(" ")
        if method == "CONNECT":
            host, port = target.rsplit(":", 1)
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            self.writers.add(up_writer)
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            return
        url = urlsplit(target)
        up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port)
        self.writers.add(up_writer)
        up_writer.write(f"{method} {url.path} HTTP/1.1\r\nConnection: close\r\n{rest}".encode())
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.transport.abort()


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    with ForwardProxy() as running:
        yield running


def test_plain_http_goes_through_http_proxy_with_its_credentials(
    server: FakeOpenAIServer, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url("ci:p%40ss@"))
    out = complete(provider(manifest(server)), "#ok")
    assert out.text == "ok" and out.error is None
    assert proxy.seen == [f"POST {server.base_url}/chat/completions HTTP/1.1"]
    assert proxy.auth == ["Basic " + base64.b64encode(b"ci:p@ss").decode()]


def test_no_proxy_bypasses_the_proxy(
    server: FakeOpenAIServer, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url())
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    assert complete(provider(manifest(server)), "#ok").text == "ok"
    assert proxy.seen == []


def test_a_proxy_that_is_not_http_is_refused_before_any_call(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    with pytest.raises(InputError) as caught:
        provider(manifest(server)).warm(["#ok"])
    assert "only http:// proxies" in str(caught.value)
    assert server.requests == []


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made by the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[FakeOpenAIServer]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    with FakeOpenAIServer(backend="asyncio", tls=context) as running:
        yield running


@pytest.fixture
def trusted(certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    monkeypatch.setattr(transport, "_TLS", None)  # built again from SSL_CERT_FILE


def test_https_to_a_trusted_server(tls_server: FakeOpenAIServer, trusted: None) -> None:
    assert tls_server.base_url.startswith("https://")
    out = complete(provider(manifest(tls_server)), "#ok")
    assert out.text == "ok" and out.error is None


def test_https_goes_through_a_connect_tunnel_end_to_end(
    tls_server: FakeOpenAIServer,
    trusted: None,
    proxy: ForwardProxy,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url())
    out = complete(provider(manifest(tls_server)), "#ok")
    assert out.text == "ok" and out.error is None
    assert proxy.seen == [f"CONNECT {urlsplit(tls_server.base_url).netloc} HTTP/1.1"]
    assert tls_server.requests[-1].headers["authorization"] == f"Bearer {KEY}"


def test_an_untrusted_certificate_is_an_error_without_retrying(
    tls_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.setattr(transport, "_TLS", None)
    out = complete(provider(manifest(tls_server)), "#ok")
    assert out.error == "TLS certificate not trusted after 1 attempt"
    assert tls_server.requests == []


# -- the official client (model.options.client: openai-sdk) ---------------------------------------


@pytest.fixture
def threads_server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(backend="threads") as running:
        yield running


def sdk(server: FakeOpenAIServer, **options: Any) -> OpenAICompatible:
    return provider(manifest(server, client="openai-sdk", **options))


def test_the_official_client_sends_the_same_request_and_reads_the_same_answer(
    threads_server: FakeOpenAIServer,
) -> None:
    m = manifest(threads_server, price_per_1k_input=0.5, price_per_1k_output=2.0)
    parameters = {"type": "object", "properties": {"input": {"type": "string"}}}
    m["tools"] = [{"name": "lookup", "description": "Find an order", "parameters": parameters}]
    builtin = complete(provider(m), "order 42")
    official = complete(
        provider(
            {
                **m,
                "model": {
                    **m["model"],
                    "options": {**m["model"]["options"], "client": "openai-sdk"},
                },
            }
        ),
        "order 42",
    )
    first, second = threads_server.requests
    assert first.body == second.body
    assert second.headers["authorization"] == f"Bearer {KEY}"
    assert official == dataclasses.replace(builtin, latency_ms=official.latency_ms)
    assert official.data is not None and official.data["tool_calls"][0]["name"] == "lookup"
    assert official.cost_usd > 0


@pytest.mark.parametrize(
    ("failure", "options", "statuses", "error"),
    [
        ("server_error", {}, [500, 500, 200], None),
        (
            "server_error",
            {"max_retries": 1},
            [500, 500],
            "HTTP 500 Internal Server Error (server_error) after 2 attempts",
        ),
        ("malformed", {}, [200], "malformed response after 1 attempt"),
        ("hang", {"timeout_s": 0.3, "max_retries": 0}, [None], "timeout after 1 attempt"),
    ],
)
def test_the_official_client_fails_and_retries_as_the_builtin_one_does(
    threads_server: FakeOpenAIServer,
    failure: Any,
    options: dict[str, Any],
    statuses: list[int | None],
    error: str | None,
) -> None:
    threads_server.fail_next(2, failure)
    out = complete(sdk(threads_server, **options), "#ok")
    assert out.error == error
    assert len(threads_server.requests) == len(statuses)
    assert out.text == ("ok" if error is None else "")
    assert_no_key(out)


def test_the_official_client_honours_retry_after(threads_server: FakeOpenAIServer) -> None:
    threads_server.fail_next(1, "rate_limit", retry_after=1)
    out = complete(sdk(threads_server), "#ok")
    first, second = threads_server.requests
    assert second.at - first.at >= 0.95
    assert out.text == "ok" and out.data == {"retries": 1}


def test_an_unknown_client_names_the_field(threads_server: FakeOpenAIServer) -> None:
    with pytest.raises(ManifestError) as caught:
        OpenAICompatible(manifest(threads_server, client="requests"), CONTEXT)
    assert caught.value.field == "model.options.client"
    assert "openai-sdk" in str(caught.value)


def test_without_the_openai_package_the_official_client_says_how_to_get_it(
    threads_server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "openai", None)  # what an install without the extra sees
    with pytest.raises(PrerequisiteError) as caught:
        sdk(threads_server).warm(["#ok"])
    assert "releasegate[openai]" in str(caught.value.hint)
    assert complete(provider(manifest(threads_server)), "#ok").text == "ok"  # builtin needs none
    assert len(threads_server.requests) == 1
