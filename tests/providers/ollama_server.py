"""A loopback server that answers like Ollama, for pinning and `models check` tests.

It speaks the parts of Ollama's API releasegate touches, with Ollama's response
shapes: ``GET /api/tags`` (installed models with the sha256 digest of their
manifest, bare hex as Ollama sends it), ``POST /api/show`` (details, 404
``{"error": ...}`` for an unknown model), ``GET /api/version``, ``GET /``
("Ollama is running") and the OpenAI-compatible ``POST /v1/chat/completions``
(content: the first ``#label`` in the last user message; 404 for a model that is
not pulled). ``pull`` installs or re-pulls a tag: new weights, new digest.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

LABEL = re.compile(r"#([\w-]+)")


def tag_of(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


@dataclass(frozen=True)
class FakeModel:
    name: str
    digest: str  # bare hex, as /api/tags sends it
    size: int
    modified_at: str
    weights_digest: str


class _Server(ThreadingHTTPServer):
    daemon_threads = True


class FakeOllamaServer:
    """``with FakeOllamaServer() as ollama: ollama.pull("llama3.2")``; ``host`` for the API,
    ``openai_base_url`` for the chat endpoint."""

    def __init__(self) -> None:
        self.models: dict[str, FakeModel] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._clock = itertools.count(1)
        self._httpd = _Server(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def host(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_base_url(self) -> str:
        return self.host + "/v1"

    def start(self) -> FakeOllamaServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeOllamaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def pull(self, name: str, weights: bytes = b"weights v1") -> str:
        """Install (or re-pull) ``name`` with these weights; returns ``sha256:<manifest>``."""
        tag = tag_of(name)
        layer = hashlib.sha256(weights).hexdigest()
        manifest = {  # the digest Ollama lists is the sha256 of the model's manifest
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "layers": [
                {
                    "mediaType": "application/vnd.ollama.image.model",
                    "digest": f"sha256:{layer}",
                    "size": len(weights),
                }
            ],
        }
        digest = hashlib.sha256(json.dumps(manifest).encode()).hexdigest()
        stamp = f"2025-01-{next(self._clock) % 28 + 1:02d}T10:00:00.000000000Z"
        with self._lock:
            self.models[tag] = FakeModel(tag, digest, len(weights), stamp, layer)
        return f"sha256:{digest}"

    def remove(self, name: str) -> None:
        with self._lock:
            self.models.pop(tag_of(name), None)

    def _find(self, name: Any) -> FakeModel | None:
        if not isinstance(name, str):
            return None
        with self._lock:
            return self.models.get(tag_of(name))

    def _tags(self) -> dict[str, Any]:
        with self._lock:
            models = sorted(self.models.values(), key=lambda m: m.modified_at, reverse=True)
        return {
            "models": [
                {
                    "name": m.name,
                    "model": m.name,
                    "modified_at": m.modified_at,
                    "size": m.size,
                    "digest": m.digest,
                    "details": _details(),
                }
                for m in models
            ]
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _send(self, status: int, payload: Any, content_type: str = "") -> None:
                body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type or "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _body(self) -> Any:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    return json.loads(raw)
                except ValueError:
                    return None

            def _not_found(self) -> None:  # Go's default mux answer
                self._send(404, b"404 page not found", "text/plain; charset=utf-8")

            def do_GET(self) -> None:
                with server._lock:
                    server.requests.append(("GET", self.path))
                if self.path == "/":
                    self._send(200, b"Ollama is running", "text/plain; charset=utf-8")
                elif self.path == "/api/tags":
                    self._send(200, server._tags())
                elif self.path == "/api/version":
                    self._send(200, {"version": "0.6.5"})
                else:
                    self._not_found()

            def do_POST(self) -> None:
                with server._lock:
                    server.requests.append(("POST", self.path))
                body = self._body()
                if not isinstance(body, dict):
                    self._send(400, {"error": "invalid character in request body"})
                elif self.path == "/api/show":
                    self._show(body)
                elif self.path == "/v1/chat/completions":
                    self._chat(body)
                else:
                    self._not_found()

            def _show(self, body: dict[str, Any]) -> None:
                name = body.get("model") or body.get("name")
                model = server._find(name)
                if model is None:
                    self._send(404, {"error": f"model '{name}' not found"})
                    return
                self._send(
                    200,
                    {
                        "modelfile": "FROM /root/.ollama/models/blobs/sha256-"
                        + model.weights_digest,
                        "parameters": 'stop                           "<|eot_id|>"',
                        "template": "{{ .Prompt }}",
                        "details": _details(),
                        "model_info": {"general.architecture": "llama"},
                        "capabilities": ["completion", "tools"],
                        "modified_at": model.modified_at,
                    },
                )

            def _chat(self, body: dict[str, Any]) -> None:
                name = body.get("model")
                if server._find(name) is None:
                    error = {
                        "message": f'model "{name}" not found, try pulling it first',
                        "type": "api_error",
                        "param": None,
                        "code": None,
                    }
                    self._send(404, {"error": error})
                    return
                messages = body.get("messages") or []
                user = next(
                    (m.get("content", "") for m in reversed(messages) if m.get("role") == "user"),
                    "",
                )
                found = LABEL.search(str(user))
                content = found.group(1) if found else str(user)
                prompt = sum(len(str(m.get("content", "")).split()) for m in messages)
                self._send(
                    200,
                    {
                        "id": f"chatcmpl-{next(server._ids)}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": name,
                        "system_fingerprint": "fp_ollama",
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": content},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {
                            "prompt_tokens": prompt,
                            "completion_tokens": 1,
                            "total_tokens": prompt + 1,
                        },
                    },
                )

        return Handler


def _details() -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "gguf",
        "family": "llama",
        "families": ["llama"],
        "parameter_size": "3.2B",
        "quantization_level": "Q4_K_M",
    }
