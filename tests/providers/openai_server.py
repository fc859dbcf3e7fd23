"""A local server that speaks the OpenAI chat-completions protocol, for provider tests.

``POST /v1/chat/completions`` answers deterministically: the content is the first
``#label`` in the last user message (or an echo of it), or, when the request
offers tools, one call to the first tool. Token counts are word counts. Tests
steer it with ``fail_next`` (429 with Retry-After, 500, a hang past the client's
timeout, malformed JSON, a 401 that quotes the key back, a good answer after which
the connection is dropped without notice, as a keep-alive timeout does) and read what arrived
in ``requests``. Threaded, so 64 concurrent requests each get their own handler;
or ``backend="asyncio"``: one event loop, for thousands of requests a second.

Benchmarks run it in its own process (so it never shares a GIL with the client
under test): ``python -m tests.providers.openai_server --latency 0.05`` prints
its base URL on the first line of stdout and serves until stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import socket
import ssl
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, NamedTuple

Failure = Literal["rate_limit", "server_error", "hang", "malformed", "unauthorized", "close_after"]
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


class Answer(NamedTuple):
    """What to send back: ``payload`` None means hang (send nothing, then close)."""

    status: int
    payload: bytes | None
    extra: dict[str, str]
    close: bool = False  # drop the connection after answering, without saying so


class FakeOpenAIServer:
    """Start with ``start()`` (or ``with``); ``base_url`` is what the provider is given.

    ``backend="threads"`` (the default) is a ``ThreadingHTTPServer``; ``"asyncio"``
    serves every connection from one event loop in one thread, with a minimal
    HTTP/1.1 parser, so thousands of requests a second cost little CPU (benchmarks).
    Both answer through ``answer`` and so behave the same.
    """

    def __init__(
        self,
        latency_s: float = 0.0,
        hang_s: float = 5.0,
        *,
        record: bool = True,
        port: int = 0,
        backend: Literal["threads", "asyncio"] = "threads",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.latency_s = latency_s  # every chat completion waits this long before answering
        self.hang_s = hang_s
        self.record = record  # False: keep no RecordedRequest (long benchmark runs)
        self.backend = backend
        self.tls = tls  # serve HTTPS with this context (asyncio backend only)
        if tls is not None and backend != "asyncio":
            raise ValueError("tls needs backend='asyncio'")
        self.requests: list[RecordedRequest] = []
        self.peers: set[Any] = set()  # the client address of every connection that sent a request
        self._failures: deque[tuple[Failure, float | None]] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ids = itertools.count(1)
        self._httpd: _Server | None = None
        self._aio: _AsyncioBackend | None = None
        if backend == "threads":
            self._httpd = _Server(("127.0.0.1", port), self._handler())
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
            )
        else:
            self._aio = _AsyncioBackend(self, port)
            self._thread = threading.Thread(target=self._aio.run, daemon=True)

    @property
    def base_url(self) -> str:
        if self._httpd is not None:
            host, port = self._httpd.server_address[:2]
        else:
            assert self._aio is not None
            host, port = self._aio.address
        return f"{'https' if self.tls else 'http'}://{host!s}:{port}/v1"

    def start(self) -> FakeOpenAIServer:
        self._thread.start()
        if self._aio is not None:
            self._aio.ready.wait(5)
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        elif self._aio is not None:
            self._aio.stop()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_s(self, arrived: float) -> float:
        """How much longer to wait so the answer leaves ``latency_s`` after the request came.

        The answer is built before the wait, so 64 requests arriving together all leave
        50 ms later, not 50 ms plus the time it took to build the others' answers.
        """
        return max(0.0, arrived + self.latency_s - time.monotonic()) if self.latency_s else 0.0

    def fail_next(self, n: int, kind: Failure, *, retry_after: float | None = None) -> None:
        """The next ``n`` requests fail this way (429 carries ``Retry-After: retry_after``)."""
        with self._lock:
            self._failures.extend([(kind, retry_after)] * n)

    def _next_failure(self) -> tuple[Failure, float | None] | None:
        with self._lock:
            return self._failures.popleft() if self._failures else None

    def _record(self, request: RecordedRequest) -> None:
        if not self.record:
            return
        with self._lock:
            self.requests.append(request)

    def accept(
        self, path: str, headers: dict[str, str], raw: bytes, arrived: float
    ) -> tuple[Any, tuple[Failure, float | None] | None] | Answer:
        """Step one of a POST: a 404 Answer, or (the body, the failure to answer with)."""
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = None
        if path.rstrip("/") != "/v1/chat/completions" or not isinstance(body, dict):
            self._record(RecordedRequest(path, headers, body, raw, arrived, 404))
            return Answer(404, b'{"error": {"message": "not found", "type": "not_found"}}', {})
        return body, self._next_failure()

    def answer(
        self,
        path: str,
        headers: dict[str, str],
        body: dict[str, Any],
        raw: bytes,
        arrived: float,
        failure: tuple[Failure, float | None] | None,
    ) -> Answer:
        """Step two, after the latency: the completion, or the failure asked for."""
        seen = RecordedRequest(path, headers, body, raw, arrived)
        if failure is not None and failure[0] != "close_after":
            return self._fail(failure, seen)
        message, finish = _reply(body)
        prompt = sum(_words(m.get("content")) for m in body.get("messages") or [])
        completion = _words(message.get("content")) or 3 * len(message.get("tool_calls") or [])
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        self._record(RecordedRequest(path, headers, body, raw, arrived, 200, usage))
        reply = {
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", ""),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage,
        }
        return Answer(200, json.dumps(reply).encode(), {}, close=failure is not None)

    def _fail(self, failure: tuple[Failure, float | None], seen: RecordedRequest) -> Answer:
        kind, retry_after = failure
        if kind == "rate_limit":
            self._record(_with_status(seen, 429))
            extra = {} if retry_after is None else {"Retry-After": f"{retry_after:g}"}
            error = b'{"error": {"message": "slow down", "type": "rate_limit_exceeded"}}'
            return Answer(429, error, extra)
        if kind == "server_error":
            self._record(_with_status(seen, 500))
            return Answer(500, b'{"error": {"message": "boom", "type": "server_error"}}', {})
        if kind == "unauthorized":  # like OpenAI, quote the key back
            self._record(_with_status(seen, 401))
            token = seen.headers.get("authorization", "").removeprefix("Bearer ")
            quoted = {"message": f"Incorrect API key provided: {token}", "code": token}
            return Answer(401, json.dumps({"error": quoted}).encode(), {})
        if kind == "hang":
            self._record(_with_status(seen, 0))
            return Answer(0, None, {})
        self._record(seen)
        return Answer(200, b'{"id": "chatcmpl-x", "choices": [{"index": 0, "mess', {})

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                return

            def _send(self, answer: Answer) -> None:
                if answer.payload is None:  # hang: answer nothing until the client gives up
                    server._stopping.wait(server.hang_s)
                    self.close_connection = True
                    return
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer.payload)))
                    for key, value in answer.extra.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(answer.payload)
                    self.close_connection = answer.close
                except OSError:  # the client gave up (a timeout test); nothing to answer
                    self.close_connection = True

            def do_POST(self) -> None:
                arrived = time.monotonic()
                server.peers.add(self.client_address)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                accepted = server.accept(self.path, headers, raw, arrived)
                if isinstance(accepted, Answer):
                    self._send(accepted)
                    return
                body, failure = accepted
                answer = server.answer(self.path, headers, body, raw, arrived, failure)
                time.sleep(server.wait_s(arrived))
                self._send(answer)

        return Handler


class _AsyncioBackend:
    """One event loop serving every connection: keep-alive HTTP/1.1, POST with a body."""

    def __init__(self, server: FakeOpenAIServer, port: int) -> None:
        self.server = server
        self.sock = socket.create_server(("127.0.0.1", port), backlog=1024)
        self.address: tuple[str, int] = self.sock.getsockname()[:2]
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.done: asyncio.Event | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.done = asyncio.Event()
        listener = await asyncio.start_server(self._serve, sock=self.sock, ssl=self.server.tls)
        self.ready.set()
        async with listener:
            await self.done.wait()
        for writer in list(self.writers):  # close what clients left open, before the loop ends
            writer.transport.abort()
        await asyncio.sleep(0)

    def stop(self) -> None:
        if self.loop is not None and self.done is not None:
            self.loop.call_soon_threadsafe(self.done.set)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        server = self.server
        self.writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                arrived = time.monotonic()
                server.peers.add(writer.get_extra_info("peername"))
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                headers = {}
                for line in lines[1:]:
                    if line:
                        key, _, value = line.partition(":")
                        headers[key.strip().lower()] = value.strip()
                raw = await reader.readexactly(int(headers.get("content-length") or 0))
                accepted = server.accept(path, headers, raw, arrived)
                if isinstance(accepted, Answer):
                    answer = accepted
                else:
                    body, failure = accepted
                    answer = server.answer(path, headers, body, raw, arrived, failure)
                if answer.payload is None:  # hang, then drop the connection
                    await asyncio.sleep(server.wait_s(arrived) + server.hang_s)
                    return
                reason = HTTPStatus(answer.status).phrase
                extra = "".join(f"{k}: {v}\r\n" for k, v in answer.extra.items())
                reply = (
                    f"HTTP/1.1 {answer.status} {reason}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(answer.payload)}\r\n{extra}\r\n".encode()
                    + answer.payload
                )
                if not isinstance(accepted, Answer):
                    await asyncio.sleep(server.wait_s(arrived))
                writer.write(reply)
                if answer.close or headers.get("connection", "").lower() == "close":
                    await writer.drain()
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self.writers.discard(writer)
            writer.transport.abort()


def _with_status(request: RecordedRequest, status: int) -> RecordedRequest:
    return RecordedRequest(
        request.path, request.headers, request.body, request.raw, request.at, status
    )


def main(argv: list[str] | None = None) -> None:
    """Serve in this process until stdin closes; the first stdout line is the base URL."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per completion")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--backend", choices=["threads", "asyncio"], default="asyncio")
    args = parser.parse_args(argv)
    with FakeOpenAIServer(
        args.latency, record=False, port=args.port, backend=args.backend
    ) as server:
        print(server.base_url, flush=True)
        sys.stdin.read()  # the parent closes our stdin (or exits) to stop us


if __name__ == "__main__":
    main()
