"""Any server that speaks the OpenAI chat-completions protocol: OpenAI, vLLM, LM Studio...

``model: {provider: openai, name, base_url?, api_key_env?, options?}``. The key
is read from ``api_key_env`` (default ``OPENAI_API_KEY``) at call time and never
stored, logged or echoed. Retries are ours: 429, 5xx, timeouts and connection
errors back off exponentially with full jitter (or as long as ``Retry-After``
says), and a case that still fails comes back as a CaseOutput with ``error``
set. Requests and tokens per minute are paced by one meter per provider
instance, shared by every concurrent case. Cost comes from the price table
(``prices.py``) unless ``model.options`` gives prices.

Requests go through a ``Transport`` (``transport.py``): by default aiohttp, one
session per eval with a pool of keep-alive connections, TLS verified, proxies from
the environment. The official ``openai`` package's per-call machinery (httpx's
pool, request and response models) costs 2-5 ms of CPU per call, so an eval
topped out near 200 calls/s on two cores; aiohttp costs a few tenths of a
millisecond and sends the same documented JSON. ``options.client: openai-sdk``
uses the official client instead (``pip install 'releasegate[openai]'``), for
gateways that need what only it does; retries, limits, errors and cost are the
same either way. Error texts pass through ``mask_secrets`` besides having the
key removed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import os
import random
import re
import time
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from importlib import metadata
from typing import Any, ClassVar, NamedTuple
from urllib.parse import urlsplit

from releasegate.domain.masking import mask_secrets
from releasegate.domain.results import CaseOutput
from releasegate.errors import ManifestError, PrerequisiteError
from releasegate.providers import prices
from releasegate.providers.base import ProviderContext, model_section
from releasegate.providers.transport import (
    AiohttpTransport,
    Transport,
    TransportError,
    check_proxy,
)


def _user_agent() -> str:
    """``releasegate/0.1.0``, from the installed distribution (providers never import the
    root package: it is the SDK surface, above them)."""
    try:
        return f"releasegate/{metadata.version('releasegate')}"
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "releasegate"


USER_AGENT = _user_agent()
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
BACKOFF_BASE_S = 0.5
BACKOFF_CAP_S = 20.0
RETRY_AFTER_MAX_S = 60.0
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SAFE_CODE = re.compile(r"[a-z0-9_]{1,64}")
# chat-completions parameters passed through from the manifest's ``generation``
GENERATION_KEYS = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "seed",
        "stop",
        "response_format",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "logprobs",
        "top_logprobs",
        "tool_choice",
        "parallel_tool_calls",
        "reasoning_effort",
        "service_tier",
        "user",
    }
)


CLIENTS = ("builtin", "openai-sdk")


@dataclass(frozen=True)
class Options:
    """``model.options``, validated."""

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    max_retries: int = 4
    timeout_s: float = 60.0
    price_per_1k_input: float | None = None  # either set: the manifest prices the model
    price_per_1k_output: float | None = None
    client: str = "builtin"  # or "openai-sdk": the official client, for what only it does


def _number(options: Mapping[str, Any], key: str, default: Any, *, positive: bool) -> Any:
    value = options.get(key, default)
    if value is None and default is None:
        return None
    field = f"model.options.{key}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ManifestError(f"expected a number, got {type(value).__name__}", field=field)
    if positive and not value > 0:
        raise ManifestError(f"must be greater than 0, got {value}", field=field)
    if not positive and not value >= 0:
        raise ManifestError(f"must be 0 or more, got {value}", field=field)
    return float(value)


def parse_options(raw: Any) -> Options:
    """Validate ``model.options``; a ManifestError names the offending field."""
    if raw is None:
        return Options()
    if not isinstance(raw, Mapping):
        raise ManifestError("expected a mapping", field="model.options")
    known = Options.__dataclass_fields__
    for key in raw:
        if key not in known:
            raise ManifestError(
                f"unknown option '{key}'",
                field=f"model.options.{key}",
                hint=f"known options: {', '.join(known)}",
            )
    client = raw.get("client", "builtin")
    if client not in CLIENTS:
        raise ManifestError(
            f"unknown client {client!r}",
            field="model.options.client",
            hint=f"one of: {', '.join(CLIENTS)}",
        )
    retries = raw.get("max_retries", 4)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ManifestError(
            f"expected a whole number, 0 or more, got {retries!r}",
            field="model.options.max_retries",
        )
    return Options(
        requests_per_minute=_number(raw, "requests_per_minute", None, positive=True),
        tokens_per_minute=_number(raw, "tokens_per_minute", None, positive=True),
        max_retries=retries,
        timeout_s=_number(raw, "timeout_s", 60.0, positive=True),
        price_per_1k_input=_number(raw, "price_per_1k_input", None, positive=False),
        price_per_1k_output=_number(raw, "price_per_1k_output", None, positive=False),
        client=client,
    )


def parse_tools(raw: Any) -> list[dict[str, Any]]:
    """The manifest's ``tools`` in the API's ``{"type": "function", ...}`` shape."""
    if raw is None:
        return []
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        raise ManifestError("expected a list of tools", field="tools")
    tools = []
    for i, tool in enumerate(raw):
        if not isinstance(tool, Mapping):
            raise ManifestError("expected a mapping", field=f"tools[{i}]")
        spec = tool.get("function") if tool.get("type") == "function" else tool
        if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
            raise ManifestError("every tool needs a name", field=f"tools[{i}].name")
        function: dict[str, Any] = {"name": spec["name"]}
        if spec.get("description") is not None:
            function["description"] = str(spec["description"])
        parameters = spec.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(parameters, Mapping):
            raise ManifestError("expected a JSON schema", field=f"tools[{i}].parameters")
        function["parameters"] = dict(parameters)
        tools.append({"type": "function", "function": function})
    return tools


class _Meter:
    """Paces a quantity per minute with no burst: each use pushes the next start back."""

    def __init__(self, per_minute: float) -> None:
        self.per_second = per_minute / 60.0
        self.next_free = 0.0  # time.monotonic() at which the next use may start

    def reserve(self, amount: float, now: float) -> float:
        """Claim ``amount`` no earlier than ``now``; returns when the claim may start."""
        start = max(now, self.next_free)
        self.next_free = start + amount / self.per_second
        return start

    def correct(self, delta: float) -> None:
        self.next_free += delta / self.per_second


class Limiter:
    """Requests and tokens per minute, shared by every case of one provider instance.

    Reservations are made without awaiting, so they are first come, first served on
    any event loop, and the caller sleeps until its slot.
    """

    def __init__(self, rpm: float | None, tpm: float | None) -> None:
        self.requests = _Meter(rpm) if rpm else None
        self.tokens = _Meter(tpm) if tpm else None

    async def acquire(self, tokens: int) -> None:
        now = time.monotonic()
        start = now
        if self.requests is not None:
            start = max(start, self.requests.next_free)
        if self.tokens is not None:
            start = max(start, self.tokens.next_free)
        if self.requests is not None:
            self.requests.reserve(1, start)
        if self.tokens is not None:
            self.tokens.reserve(tokens, start)
        if start > now:
            await asyncio.sleep(start - now)

    def correct_tokens(self, estimated: int, actual: int) -> None:
        if self.tokens is not None:
            self.tokens.correct(actual - estimated)


class Failure(NamedTuple):
    """One failed attempt: what to say about it, whether to retry, how long to wait."""

    reason: str
    is_retryable: bool
    retry_after_s: float | None


TIMEOUT = Failure("timeout", True, None)
CONNECTION_ERROR = Failure("connection error", True, None)
MALFORMED = Failure("malformed response", False, None)


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:  # an HTTP date: fall back to our own backoff
        return None
    if seconds is None or seconds < 0:
        return None
    return min(seconds, RETRY_AFTER_MAX_S)


def status_failure(status: int, headers: Mapping[str, str], body: bytes) -> Failure:
    """An HTTP error as a Failure, never quoting the server's message (it may echo the key)."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "unknown status"
    reason = f"HTTP {status} {phrase}"
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        parsed = None
    error = parsed.get("error", parsed) if isinstance(parsed, Mapping) else None
    code = error.get("code") or error.get("type") if isinstance(error, Mapping) else None
    if isinstance(code, str) and SAFE_CODE.fullmatch(code):
        reason += f" ({code})"
    retryable = status in (408, 429) or status >= 500
    return Failure(reason, retryable, _retry_after(headers))


def classify(exc: Exception, openai: Any) -> Failure:
    """The official client's exception as a Failure, judged as the builtin client judges."""
    if isinstance(exc, openai.APITimeoutError):
        return TIMEOUT
    if isinstance(exc, openai.APIConnectionError):
        return CONNECTION_ERROR
    if isinstance(exc, openai.APIStatusError):
        response = exc.response
        return status_failure(exc.status_code, response.headers, response.content)
    if isinstance(exc, openai.APIResponseValidationError | ValueError):
        return MALFORMED
    return Failure(f"unexpected {type(exc).__name__}", False, None)


def _import_openai() -> Any:
    try:
        import openai
    except ImportError as exc:
        raise PrerequisiteError(
            "model.options.client 'openai-sdk' needs the openai package",
            hint="pip install 'releasegate[openai]'",
        ) from exc
    return openai


def render_user(template: Any, case_input: Any) -> str:
    """The user message: the template filled from the input, or the input itself."""
    if isinstance(template, str):
        fields = dict(case_input) if isinstance(case_input, Mapping) else {}
        fields.setdefault("input", case_input)
        return template.format_map(fields)
    if isinstance(case_input, str):
        return case_input
    return json.dumps(case_input, ensure_ascii=False, sort_keys=True, default=str)


def _tool_calls(message: dict[str, Any]) -> list[dict[str, Any]]:
    calls = []
    for call in message.get("tool_calls") or []:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        arguments: Any = function.get("arguments")
        if isinstance(arguments, str):
            with contextlib.suppress(ValueError):  # not JSON: kept as the model wrote it
                arguments = json.loads(arguments)
        calls.append({"id": call.get("id"), "name": function.get("name"), "arguments": arguments})
    return calls


# -- the provider --------------------------------------------------------------------------------


class OpenAICompatible:
    """Chat completions against OpenAI or any server that speaks its protocol."""

    kind: ClassVar[str] = "openai"

    def __init__(self, manifest: Mapping[str, Any], context: ProviderContext) -> None:
        model = model_section(manifest)
        name = model.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ManifestError("expected the model's name", field="model.name")
        if "api_key" in model:
            raise ManifestError(
                "a key does not belong in a workflow file",
                field="model.api_key",
                hint="put it in an environment variable and name that in model.api_key_env",
            )
        base_url = model.get("base_url")
        if base_url is not None and not _is_http_url(base_url):
            raise ManifestError("expected an http(s) URL", field="model.base_url")
        key_env = model.get("api_key_env", DEFAULT_KEY_ENV)
        if not isinstance(key_env, str) or not ENV_NAME.fullmatch(key_env):
            # never echo the value: it may be a key pasted in by mistake
            raise ManifestError(
                "expected the name of an environment variable, like OPENAI_API_KEY",
                field="model.api_key_env",
            )
        prompts = manifest.get("prompts")
        prompts = prompts if isinstance(prompts, Mapping) else {}
        templates = prompts.get("templates")
        templates = templates if isinstance(templates, Mapping) else {}
        system = prompts.get("system")
        if system is not None and not isinstance(system, str):
            raise ManifestError("expected a string", field="prompts.system")
        user_template = templates.get("user")
        if user_template is not None and not isinstance(user_template, str):
            raise ManifestError("expected a string", field="prompts.templates.user")
        generation = manifest.get("generation")
        generation = generation if isinstance(generation, Mapping) else {}

        self.manifest = manifest
        self.model = name
        self.base_url: str = base_url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL
        self.api_key_env: str = key_env
        self.options = parse_options(model.get("options"))
        self.system: str | None = system
        self.user_template: str | None = user_template
        self.params = {k: v for k, v in generation.items() if k in GENERATION_KEYS}
        self.tools = parse_tools(manifest.get("tools"))
        self.limiter = Limiter(self.options.requests_per_minute, self.options.tokens_per_minute)
        self.backoff_base_s = BACKOFF_BASE_S
        self.backoff_cap_s = BACKOFF_CAP_S
        self._pricing: prices.Pricing | None = None
        self._headers: dict[str, str] = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Accept-Encoding": "gzip, deflate",
            "User-Agent": USER_AGENT,
        }
        for env, header in (
            ("OPENAI_ORG_ID", "OpenAI-Organization"),
            ("OPENAI_PROJECT_ID", "OpenAI-Project"),
        ):
            if os.environ.get(env):
                self._headers[header] = os.environ[env]
        # one transport (or SDK client) per event loop: its connections belong to that loop
        self.transport_factory: Callable[[], Transport] = lambda: AiohttpTransport(
            self.base_url, self._headers, self.options.timeout_s
        )
        self._transports: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Transport] = (
            weakref.WeakKeyDictionary()
        )
        self._sdk_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._closers: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, AsyncGenerator[None, None]
        ] = weakref.WeakKeyDictionary()

    @property
    def pricing(self) -> prices.Pricing:
        """How this model's tokens are priced: the manifest's options, else the price table."""
        if self._pricing is None:
            self._pricing = prices.for_manifest(
                {
                    **self.manifest,
                    "model": {**model_section(self.manifest), "base_url": self.base_url},
                }
            )
        return self._pricing

    def warm(self, inputs: Sequence[Any]) -> None:
        """Read the price table and the proxy settings once, so a bad one stops the eval once."""
        _ = self.pricing
        if self.options.client == "openai-sdk":
            _import_openai()  # a missing package stops the eval once, not once per case
        else:
            check_proxy(self.base_url)

    async def _transport(self) -> Transport:
        loop = asyncio.get_running_loop()
        transport = self._transports.get(loop)
        if transport is None:
            transport = self._transports[loop] = self.transport_factory()
            closer = _close_at_shutdown(transport.aclose)
            self._closers[loop] = closer
            await anext(closer)
        return transport

    async def _sdk_client(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._sdk_clients.get(loop)
        if client is None:
            openai = _import_openai()
            extra = {k: v for k, v in self._headers.items() if k.startswith("OpenAI-")}
            client = self._sdk_clients[loop] = openai.AsyncOpenAI(
                base_url=self.base_url,
                api_key="set-per-request",  # the real key is added per call, never kept
                max_retries=0,  # retries are ours, the same for both clients
                timeout=self.options.timeout_s,
                default_headers=extra or None,
            )
            closer = _close_at_shutdown(client.close)
            self._closers[loop] = closer
            await anext(closer)
        return client

    def messages(self, case_input: Any) -> list[dict[str, str]]:
        messages = [{"role": "system", "content": self.system}] if self.system else []
        messages.append({"role": "user", "content": render_user(self.user_template, case_input)})
        return messages

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        """USD for these tokens; 0 for a model nothing prices (``pricing.warning`` says so)."""
        return self.pricing.cost(tokens_in, tokens_out) or 0.0

    def backoff(self, retry: int, retry_after_s: float | None) -> float:
        """Seconds before retry number ``retry`` (0-based): Retry-After, else full jitter."""
        if retry_after_s is not None:
            return retry_after_s
        return random.uniform(0.0, min(self.backoff_cap_s, self.backoff_base_s * 2**retry))

    async def complete(self, case_input: Any) -> CaseOutput:
        key = os.environ.get(self.api_key_env)
        if not key:
            return CaseOutput(text="", error=f"environment variable {self.api_key_env} is not set")
        if not key.isascii() or not key.isprintable():  # never quote it: say where it is
            return CaseOutput(
                text="", error=f"environment variable {self.api_key_env} is not a valid key"
            )
        try:
            messages = self.messages(case_input)
        except (KeyError, IndexError, ValueError) as exc:
            return CaseOutput(text="", error=f"cannot fill prompts.templates.user: {exc!r}")
        request: dict[str, Any] = {"model": self.model, "messages": messages, **self.params}
        if self.tools:
            request["tools"] = self.tools
        send: Callable[[], Awaitable[dict[str, Any] | Failure]]
        if self.options.client == "openai-sdk":
            send = functools.partial(self._post_sdk, await self._sdk_client(), key, request)
        else:
            body = json.dumps(request, ensure_ascii=False).encode()
            headers = {"Authorization": f"Bearer {key}"}
            send = functools.partial(self._post, await self._transport(), headers, body)
        estimate = sum(len(m["content"]) for m in messages) // 4 + 1
        started: float | None = None
        retries = 0
        while True:
            await self.limiter.acquire(estimate)
            if started is None:
                started = time.perf_counter()
            result = await send()
            if isinstance(result, Failure):
                if result.is_retryable and retries < self.options.max_retries:
                    await asyncio.sleep(self.backoff(retries, result.retry_after_s))
                    retries += 1
                    continue
                attempts = retries + 1
                reason = mask_secrets(result.reason.replace(key, "***"))  # never the key
                return CaseOutput(
                    text="",
                    data={"retries": retries},
                    latency_ms=(time.perf_counter() - started) * 1000.0,
                    error=f"{reason} after {attempts} attempt{'s' * (attempts != 1)}",
                )
            break
        latency_ms = (time.perf_counter() - started) * 1000.0
        return self._output(result, estimate, retries, latency_ms)

    async def _post(
        self, transport: Transport, headers: dict[str, str], body: bytes
    ) -> dict[str, Any] | Failure:
        """One attempt: the parsed completion, or why it failed."""
        try:
            answer = await transport.post("/chat/completions", headers, body)
        except TransportError as exc:
            return Failure(exc.reason, exc.is_retryable, None)
        if answer.status >= 300:
            return status_failure(answer.status, answer.headers, answer.body)
        try:
            parsed: Any = json.loads(answer.body)
        except ValueError:
            return MALFORMED
        return parsed if isinstance(parsed, dict) else MALFORMED

    async def _post_sdk(
        self, client: Any, key: str, request: dict[str, Any]
    ) -> dict[str, Any] | Failure:
        """One attempt through the official client, read back into the same plain JSON."""
        openai = _import_openai()
        try:
            completion = await client.with_options(api_key=key).chat.completions.create(**request)
            parsed = completion.model_dump(mode="json", exclude_unset=True)
        except Exception as exc:  # every failure becomes this case's error
            return classify(exc, openai)
        return parsed if isinstance(parsed, dict) else MALFORMED

    def _output(
        self, response: dict[str, Any], estimate: int, retries: int, latency_ms: float
    ) -> CaseOutput:
        """The CaseOutput of a parsed completion (JSON: plain dicts and lists)."""
        usage = response.get("usage")
        usage = usage if isinstance(usage, dict) else None
        tokens_in = _count(usage, "prompt_tokens")
        tokens_out = _count(usage, "completion_tokens")
        if usage is not None:
            self.limiter.correct_tokens(estimate, tokens_in + tokens_out)
        data: dict[str, Any] = {"retries": retries}
        cost_usd = self.cost(tokens_in, tokens_out)

        def output(text: str, error: str | None = None) -> CaseOutput:
            return CaseOutput(text, data, latency_ms, tokens_in, tokens_out, cost_usd, error)

        choices = response.get("choices")
        if not isinstance(choices, list) or not choices:
            return output("", "malformed response: no choices")
        message = choices[0].get("message") if isinstance(choices[0], dict) else None
        if not isinstance(message, dict):
            return output("", "malformed response: no message")
        if message.get("tool_calls"):
            calls = _tool_calls(message)
            data["tool_calls"] = calls
            return output(json.dumps(calls, ensure_ascii=False, sort_keys=True))
        content = message.get("content")
        return output(content if isinstance(content, str) else "")


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        return False
    try:
        url = urlsplit(value)
        url.port  # noqa: B018  (raises for a port that is not a number)
    except ValueError:
        return False
    return bool(url.hostname)


def _count(usage: dict[str, Any] | None, key: str) -> int:
    value = usage.get(key) if usage is not None else None
    return value if type(value) is int else int(value) if type(value) is float else 0


async def _close_at_shutdown(close: Callable[[], Any]) -> AsyncGenerator[None, None]:
    """Parked at its yield; ``asyncio.run`` finalises it on exit, closing the pool there."""
    try:
        yield
    finally:
        closing = close()
        if inspect.isawaitable(closing):  # the SDK client closes asynchronously
            await closing
        await asyncio.sleep(0)  # let the transports finish closing their sockets
