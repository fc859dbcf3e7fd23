"""Any server that speaks the OpenAI chat-completions protocol: OpenAI, vLLM, LM Studio...

``model: {provider: openai, name, base_url?, api_key_env?, options?}``. The key
is read from ``api_key_env`` (default ``OPENAI_API_KEY``) at call time and never
stored, logged or echoed. Retries are ours, not the client's: 429, 5xx,
timeouts and connection errors back off exponentially with full jitter (or as
long as ``Retry-After`` says), and a case that still fails comes back as a
CaseOutput with ``error`` set. Requests and tokens per minute are paced by one
meter per provider instance, shared by every concurrent case.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import time
import weakref
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, ClassVar, NamedTuple

from releasegate.domain.results import CaseOutput
from releasegate.errors import ManifestError, PrerequisiteError
from releasegate.providers.base import ProviderContext, model_section

DEFAULT_KEY_ENV = "OPENAI_API_KEY"
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


@dataclass(frozen=True)
class Options:
    """``model.options``, validated."""

    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    max_retries: int = 4
    timeout_s: float = 60.0
    price_per_1k_input: float = 0.0
    price_per_1k_output: float = 0.0


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
        price_per_1k_input=_number(raw, "price_per_1k_input", 0.0, positive=False),
        price_per_1k_output=_number(raw, "price_per_1k_output", 0.0, positive=False),
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


def _retry_after(headers: Any) -> float | None:
    value = headers.get("retry-after") if headers is not None else None
    try:
        seconds = float(value) if value is not None else None
    except ValueError:  # an HTTP date: fall back to our own backoff
        return None
    if seconds is None or seconds < 0:
        return None
    return min(seconds, RETRY_AFTER_MAX_S)


def classify(exc: Exception, openai: Any) -> Failure:
    """Turn a client exception into a Failure, never quoting the server's message."""
    if isinstance(exc, openai.APITimeoutError):
        return Failure("timeout", True, None)
    if isinstance(exc, openai.APIConnectionError):
        return Failure("connection error", True, None)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "unknown status"
        reason = f"HTTP {status} {phrase}"
        body = exc.body if isinstance(exc.body, Mapping) else {}
        error = body.get("error", body)
        code = error.get("code") or error.get("type") if isinstance(error, Mapping) else None
        if isinstance(code, str) and SAFE_CODE.fullmatch(code):
            reason += f" ({code})"
        retryable = status in (408, 429) or status >= 500
        return Failure(reason, retryable, _retry_after(exc.response.headers))
    if isinstance(exc, openai.APIResponseValidationError | ValueError):
        return Failure("malformed response", False, None)
    return Failure(f"unexpected {type(exc).__name__}", False, None)


def render_user(template: Any, case_input: Any) -> str:
    """The user message: the template filled from the input, or the input itself."""
    if isinstance(template, str):
        fields = dict(case_input) if isinstance(case_input, Mapping) else {}
        fields.setdefault("input", case_input)
        return template.format_map(fields)
    if isinstance(case_input, str):
        return case_input
    return json.dumps(case_input, ensure_ascii=False, sort_keys=True, default=str)


def _tool_calls(message: Any) -> list[dict[str, Any]]:
    calls = []
    for call in message.tool_calls or []:
        function = getattr(call, "function", None)
        if function is None:
            continue
        try:
            arguments: Any = json.loads(function.arguments)
        except (TypeError, ValueError):
            arguments = function.arguments
        calls.append({"id": call.id, "name": function.name, "arguments": arguments})
    return calls


def _import_openai() -> Any:
    try:
        import openai
    except ImportError as exc:
        raise PrerequisiteError(
            "the 'openai' provider needs the openai package", hint="pip install 'openai>=1.40'"
        ) from exc
    return openai


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
        if base_url is not None and (
            not isinstance(base_url, str) or not base_url.startswith(("http://", "https://"))
        ):
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

        self.model = name
        self.base_url: str | None = base_url
        self.api_key_env: str = key_env
        self.options = parse_options(model.get("options"))
        self.system: str | None = system
        self.user_template: str | None = user_template
        self.params = {k: v for k, v in generation.items() if k in GENERATION_KEYS}
        self.tools = parse_tools(manifest.get("tools"))
        self.limiter = Limiter(self.options.requests_per_minute, self.options.tokens_per_minute)
        self.backoff_base_s = BACKOFF_BASE_S
        self.backoff_cap_s = BACKOFF_CAP_S
        # one client per event loop (its connections belong to that loop), closed with it
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._closers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    def warm(self, inputs: Sequence[Any]) -> None:
        """Check the client library is installed, so a missing one stops the eval once."""
        _import_openai()

    async def _client(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            openai = _import_openai()
            client = openai.AsyncOpenAI(
                base_url=self.base_url,
                api_key="set-per-request",  # the real key is added per call, never kept
                max_retries=0,
                timeout=self.options.timeout_s,
            )
            self._clients[loop] = client
            closer = _close_at_shutdown(client)
            self._closers[loop] = closer
            await anext(closer)
        return client

    def messages(self, case_input: Any) -> list[dict[str, str]]:
        messages = [{"role": "system", "content": self.system}] if self.system else []
        messages.append({"role": "user", "content": render_user(self.user_template, case_input)})
        return messages

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        o = self.options
        return (tokens_in * o.price_per_1k_input + tokens_out * o.price_per_1k_output) / 1000.0

    def backoff(self, retry: int, retry_after_s: float | None) -> float:
        """Seconds before retry number ``retry`` (0-based): Retry-After, else full jitter."""
        if retry_after_s is not None:
            return retry_after_s
        return random.uniform(0.0, min(self.backoff_cap_s, self.backoff_base_s * 2**retry))

    async def complete(self, case_input: Any) -> CaseOutput:
        key = os.environ.get(self.api_key_env)
        if not key:
            return CaseOutput(text="", error=f"environment variable {self.api_key_env} is not set")
        try:
            messages = self.messages(case_input)
        except (KeyError, IndexError, ValueError) as exc:
            return CaseOutput(text="", error=f"cannot fill prompts.templates.user: {exc!r}")
        openai = _import_openai()
        client = (await self._client()).with_options(api_key=key)
        request: dict[str, Any] = {"model": self.model, "messages": messages, **self.params}
        if self.tools:
            request["tools"] = self.tools
        estimate = sum(len(m["content"]) for m in messages) // 4 + 1
        started: float | None = None
        retries = 0
        while True:
            await self.limiter.acquire(estimate)
            if started is None:
                started = time.perf_counter()
            try:
                response = await client.chat.completions.create(**request)
            except Exception as exc:  # every failure becomes this case's error
                failure = classify(exc, openai)
                if failure.is_retryable and retries < self.options.max_retries:
                    await asyncio.sleep(self.backoff(retries, failure.retry_after_s))
                    retries += 1
                    continue
                attempts = retries + 1
                reason = failure.reason.replace(key, "***")  # belt and braces: never the key
                return CaseOutput(
                    text="",
                    data={"retries": retries},
                    latency_ms=(time.perf_counter() - started) * 1000.0,
                    error=f"{reason} after {attempts} attempt{'s' * (attempts != 1)}",
                )
            break
        latency_ms = (time.perf_counter() - started) * 1000.0
        return self._output(response, estimate, retries, latency_ms)

    def _output(self, response: Any, estimate: int, retries: int, latency_ms: float) -> CaseOutput:
        usage = getattr(response, "usage", None)
        tokens_in = int(getattr(usage, "prompt_tokens", 0) or 0)
        tokens_out = int(getattr(usage, "completion_tokens", 0) or 0)
        if usage is not None:
            self.limiter.correct_tokens(estimate, tokens_in + tokens_out)
        data: dict[str, Any] = {"retries": retries}
        choices = getattr(response, "choices", None) or []
        if not choices:
            return CaseOutput(
                text="",
                data=data,
                latency_ms=latency_ms,
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                cost_usd=self.cost(tokens_in, tokens_out),
                error="malformed response: no choices",
            )
        message = choices[0].message
        calls = _tool_calls(message)
        if calls:
            data["tool_calls"] = calls
            text = json.dumps(calls, ensure_ascii=False, sort_keys=True)
        else:
            text = message.content or ""
        return CaseOutput(
            text=text,
            data=data,
            latency_ms=latency_ms,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_usd=self.cost(tokens_in, tokens_out),
        )


async def _close_at_shutdown(client: Any) -> AsyncGenerator[None, None]:
    """Parked at its yield; ``asyncio.run`` finalises it on exit, closing the client there."""
    try:
        yield
    finally:
        await client.close()
