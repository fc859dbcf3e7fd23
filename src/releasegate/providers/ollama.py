"""Ollama's native API, read for pinning: which tags are installed, with their digests.

Generation goes through Ollama's OpenAI-compatible endpoint (provider ``openai``
with ``base_url: http://HOST:11434/v1``). This module only reads ``GET /api/tags``
(every installed model and the sha256 digest of its manifest, which changes
whenever a tag is re-pulled with other weights). It uses the stdlib, so pinning
needs no extra package. A server that cannot be reached, or does not answer
like Ollama, is a PrerequisiteError naming the host.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from releasegate.domain.pinning import normalize_digest, ollama_tag
from releasegate.errors import InputError, PrerequisiteError

DEFAULT_PORT = "11434"
DEFAULT_HOST = f"http://127.0.0.1:{DEFAULT_PORT}"
TIMEOUT_S = 10.0
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
HINT = (
    "start it with `ollama serve`, or point model.base_url, OLLAMA_HOST or "
    "--ollama-host at the server that has the model"
)


@dataclass(frozen=True)
class OllamaModel:
    """One installed tag, as ``/api/tags`` lists it."""

    name: str  # canonical: "llama3.2:latest"
    digest: str  # "sha256:<64 hex>"
    size: int = 0
    modified_at: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)


def normalize_host(raw: str, *, what: str = "OLLAMA_HOST") -> str:
    """``scheme://host:port[/path]`` from what Ollama itself accepts in OLLAMA_HOST.

    As in Ollama: no scheme means http on port 11434; an explicit http:// or https://
    without a port means 80 or 443; an empty host is 127.0.0.1.
    """
    text = raw.strip()
    scheme, sep, rest = text.partition("://")
    default_port = DEFAULT_PORT
    if not sep:
        scheme, rest = "http", text
    elif scheme == "http":
        default_port = "80"
    elif scheme == "https":
        default_port = "443"
    else:
        raise InputError(f"'{raw}' is not an http(s) address", field=what)
    hostport, _, path = rest.partition("/")
    try:
        parts = urllib.parse.urlsplit(f"{scheme}://{hostport}")
        port = parts.port
    except ValueError:
        raise InputError(f"'{raw}' is not a host[:port]", field=what) from None
    host = parts.hostname or "127.0.0.1"
    shown = f"[{host}]" if ":" in host else host
    base = f"{scheme}://{shown}:{port if port is not None else default_port}"
    return base + ("/" + path.rstrip("/") if path.strip("/") else "")


def host_for(model: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> str:
    """Where a manifest's Ollama model lives: its ``base_url`` without ``/v1``, else
    OLLAMA_HOST, else 127.0.0.1:11434."""
    environ = os.environ if environ is None else environ
    base_url = model.get("base_url")
    if isinstance(base_url, str) and base_url.strip():
        trimmed = base_url.strip().rstrip("/")
        trimmed = trimmed.removesuffix("/v1")
        return normalize_host(trimmed, what="model.base_url")
    if environ.get("OLLAMA_HOST", "").strip():
        return normalize_host(environ["OLLAMA_HOST"])
    return DEFAULT_HOST


class OllamaClient:
    """A few read-only calls to one Ollama server."""

    def __init__(self, host: str, *, timeout: float = TIMEOUT_S) -> None:
        import urllib.request  # here: whoever imports the module without a client (the pin
        # checks of every eval, the monitor's quality sample) skips http.client and email

        self.host = host.rstrip("/")
        self.timeout = timeout
        hostname = urllib.parse.urlsplit(self.host).hostname or ""
        # a proxy from the environment must never see a loopback request
        handlers = [urllib.request.ProxyHandler({})] if hostname in _LOOPBACK else []
        self._opener = urllib.request.build_opener(*handlers)

    def _get(self, path: str) -> Any:
        import urllib.error
        import urllib.request

        request = urllib.request.Request(self.host + path, headers={"Accept": "application/json"})
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            exc.close()
            raise PrerequisiteError(
                f"the server at {self.host} does not answer like Ollama "
                f"(HTTP {exc.code} on {path})",
                hint=HINT,
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PrerequisiteError(
                f"Ollama is not reachable at {self.host} ({reason})", hint=HINT
            ) from None
        try:
            return json.loads(raw)
        except ValueError:
            raise PrerequisiteError(
                f"the server at {self.host} does not answer like Ollama (no JSON from {path})",
                hint=HINT,
            ) from None

    def tags(self) -> list[OllamaModel]:
        """Every installed model, with its digest; ``GET /api/tags``."""
        payload = self._get("/api/tags")
        items = payload.get("models") if isinstance(payload, Mapping) else None
        if not isinstance(items, list):
            raise PrerequisiteError(
                f"the server at {self.host} does not answer like Ollama (no 'models' list)",
                hint=HINT,
            )
        out = []
        for item in items:
            name = item.get("model") or item.get("name") if isinstance(item, Mapping) else None
            raw_digest = item.get("digest") if isinstance(item, Mapping) else None
            digest = normalize_digest(raw_digest) if isinstance(raw_digest, str) else None
            if not isinstance(name, str) or digest is None:
                raise PrerequisiteError(
                    f"the server at {self.host} listed a model without a name or a sha256 "
                    f"digest: {str(item)[:120]}",
                    hint=HINT,
                )
            size = item.get("size")
            details = item.get("details")
            out.append(
                OllamaModel(
                    name=ollama_tag(name),
                    digest=digest,
                    size=size if isinstance(size, int) else 0,
                    modified_at=str(item.get("modified_at") or ""),
                    details=details if isinstance(details, Mapping) else {},
                )
            )
        return sorted(out, key=lambda m: m.name)

    def find(self, name: str) -> OllamaModel | None:
        """The installed model a tag names (``llama3.2`` is ``llama3.2:latest``), or None."""
        wanted = ollama_tag(name)
        return next((m for m in self.tags() if m.name == wanted), None)
