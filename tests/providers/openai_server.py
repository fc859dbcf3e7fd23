"""A local server that speaks the OpenAI chat-completions protocol, for provider tests.

``POST /v1/chat/completions`` answers deterministically: the content is the first
``#label`` in the last user message (or an echo of it), or, when the request
offers tools, one call to the first tool. Token counts are word counts. Tests
steer it with ``fail_next`` (429 with Retry-After, 500, a hang past the client's
timeout, malformed JSON, a 401 that quotes the key back) and read what arrived
in ``requests``. Threaded, so 64 concurrent requests each get their own handler.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Failure = Literal["rate_limit", "server_error", "hang", "malformed", "unauthorized"]
LABEL = re.compile(r"#([\w-]+)")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the listen backlog: 64 concurrent connects must not wait


@dataclass(frozen=True)
class RecordedRequest:
    """One request as it arrived, and the usage the server answered with (if any)."""

    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes
    at: float  # time.monotonic() on arrival
    status: int = 200
    usage: dict[str, int] = field(default_factory=dict)


def _words(text: Any) -> int:
    return len(str(text).split()) if text else 0


def _reply(body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The chat-completion answer to one request body, and its finish_reason."""
    messages = body.get("messages") or []
    user = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
    tools = body.get("tools") or []
    if tools:
        name = tools[0]["function"]["name"]
        call = {
            "id": "call_1",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps({"input": user})},
        }
        return {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"
    found = LABEL.search(str(user))
    content = found.group(1) if found else f"echo: {user}"
    return {"role": "assistant", "content": content}, "stop"


class FakeOpenAIServer:
    """Start with ``start()`` (or ``with``); ``base_url`` is what the provider is given."""

    def __init__(self, latency_s: float = 0.0, hang_s: float = 5.0) -> None:
        self.latency_s = latency_s
        self.hang_s = hang_s
        self.requests: list[RecordedRequest] = []
        self._failures: deque[tuple[Failure, float | None]] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ids = itertools.count(1)
        self._httpd = _Server(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fail_next(self, n: int, kind: Failure, *, retry_after: float | None = None) -> None:
        """The next ``n`` requests fail this way (429 carries ``Retry-After: retry_after``)."""
        with self._lock:
            self._failures.extend([(kind, retry_after)] * n)

    def _next_failure(self) -> tuple[Failure, float | None] | None:
        with self._lock:
            return self._failures.popleft() if self._failures else None

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                return

            def _send(
                self, status: int, payload: bytes, extra: dict[str, str] | None = None
            ) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for key, value in (extra or {}).items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:  # the client gave up (a timeout test); nothing to answer
                    self.close_connection = True

            def do_POST(self) -> None:
                arrived = time.monotonic()
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body: Any = json.loads(raw)
                except ValueError:
                    body = None
                headers = {k.lower(): v for k, v in self.headers.items()}
                if self.path.rstrip("/") != "/v1/chat/completions" or not isinstance(body, dict):
                    server._record(RecordedRequest(self.path, headers, body, raw, arrived, 404))
                    self._send(404, b'{"error": {"message": "not found", "type": "not_found"}}')
                    return
                failure = server._next_failure()
                if server.latency_s:
                    time.sleep(server.latency_s)
                if failure is not None:
                    self._fail(failure, RecordedRequest(self.path, headers, body, raw, arrived))
                    return
                message, finish = _reply(body)
                prompt = sum(_words(m.get("content")) for m in body.get("messages") or [])
                completion = _words(message.get("content")) or 3 * len(
                    message.get("tool_calls") or []
                )
                usage = {
                    "prompt_tokens": prompt,
                    "completion_tokens": completion,
                    "total_tokens": prompt + completion,
                }
                server._record(RecordedRequest(self.path, headers, body, raw, arrived, 200, usage))
                answer = {
                    "id": f"chatcmpl-{next(server._ids)}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", ""),
                    "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                    "usage": usage,
                }
                self._send(200, json.dumps(answer).encode())

            def _fail(self, failure: tuple[Failure, float | None], seen: RecordedRequest) -> None:
                kind, retry_after = failure
                if kind == "rate_limit":
                    server._record(_with_status(seen, 429))
                    extra = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
                    error = b'{"error": {"message": "slow down", "type": "rate_limit_exceeded"}}'
                    self._send(429, error, extra)
                elif kind == "server_error":
                    server._record(_with_status(seen, 500))
                    self._send(500, b'{"error": {"message": "boom", "type": "server_error"}}')
                elif kind == "unauthorized":  # like OpenAI, quote the key back
                    server._record(_with_status(seen, 401))
                    token = seen.headers.get("authorization", "").removeprefix("Bearer ")
                    quoted = {"message": f"Incorrect API key provided: {token}", "code": token}
                    self._send(401, json.dumps({"error": quoted}).encode())
                elif kind == "hang":
                    server._record(_with_status(seen, 0))
                    server._stopping.wait(server.hang_s)
                    self.close_connection = True
                else:
                    server._record(seen)
                    self._send(200, b'{"id": "chatcmpl-x", "choices": [{"index": 0, "mess')

        return Handler


def _with_status(request: RecordedRequest, status: int) -> RecordedRequest:
    return RecordedRequest(
        request.path, request.headers, request.body, request.raw, request.at, status
    )
