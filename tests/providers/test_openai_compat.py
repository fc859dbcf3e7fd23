from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from releasegate.domain.results import CaseOutput
from releasegate.errors import ManifestError
from releasegate.providers import build_provider
from releasegate.providers.base import ProviderContext
from releasegate.providers.embeddings import Embedder
from releasegate.providers.openai_compat import OpenAICompatible
from tests.providers.openai_server import FakeOpenAIServer

KEY_ENV = "RG_TEST_OPENAI_KEY"
KEY = "sk-test-5f1c9a0b7e2d4c68"
CONTEXT = ProviderContext(embedder=Embedder())


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as running:
        yield running


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)


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

    outs = asyncio.run(three())
    assert sorted(o.text for o in outs) == ["c0", "c1", "c2"]
    arrivals = sorted(r.at for r in server.requests)
    assert arrivals[-1] - arrivals[0] >= 0.95


def test_tokens_per_minute_spaces_out_requests(server: FakeOpenAIServer) -> None:
    # ~34 estimated tokens a request (characters / 4) at 1200 tokens/minute: ~1.7 s apart
    p = provider(manifest(server, tokens_per_minute=1200))

    async def two() -> list[CaseOutput]:
        return await asyncio.gather(*(p.complete("x" * 60) for _ in range(2)))

    asyncio.run(two())
    first, second = sorted(r.at for r in server.requests)
    assert second - first >= 0.8


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


def test_the_client_is_closed_when_the_event_loop_ends(server: FakeOpenAIServer) -> None:
    p = provider(manifest(server))
    seen: list[Any] = []

    async def one() -> None:
        await p.complete("#ok")
        seen.extend(p._clients.values())

    asyncio.run(one())
    assert len(seen) == 1 and seen[0].is_closed()
