"""What a document sent to the server may make the server do.

A workflow or suite registered from a builder's own machine runs with the builder's own
rights. Sent to ``releasegate serve`` as text, the same document would run with the
*server's*: a ``provider: python`` workflow or a ``python`` scorer imports and calls any
function the server can import (``subprocess:getoutput`` included), and a model's
``base_url`` with ``api_key_env`` sends any of the server's environment variables, as a
bearer key, to any host. So a sent document is checked against what the server's operator
allows before anything in it is imported, pinned or called:

- python code (``model.name`` of a ``python`` model, a scorer's ``function``) only from
  the module prefixes allowed (``serve --allow-python``; none unless given);
- a model's ``base_url`` only on the hosts allowed (``--allow-model-host``; none unless
  given: without ``base_url`` a provider calls its own public API);
- ``api_key_env`` only a name the patterns allow (``--allow-key-env``; ``*_API_KEY``).

``*`` allows everything of its kind. Pure: the server supplies the policy, the service
raises the refusal (403, audited).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

DEFAULT_KEY_ENVS = ("*_API_KEY",)


@dataclass(frozen=True)
class SentCodePolicy:
    """What documents sent to this server may name (each a tuple of allowed entries)."""

    python_modules: tuple[str, ...] = ()
    model_hosts: tuple[str, ...] = ()
    key_envs: tuple[str, ...] = DEFAULT_KEY_ENVS

    @classmethod
    def parse(
        cls, python: str = "", hosts: str = "", key_envs: str = "*_API_KEY"
    ) -> SentCodePolicy:
        """From the comma-separated option values ``serve`` takes."""
        return cls(_items(python), tuple(h.lower() for h in _items(hosts)), _items(key_envs))


@dataclass(frozen=True)
class SentRefusal:
    path: tuple[str | int, ...]
    """Where in the document (``model.name``, ``scorers[1].params.function``)."""
    message: str
    hint: str

    @property
    def field(self) -> str:
        out = ""
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
        return out


def refusals(document: Any, policy: SentCodePolicy) -> list[SentRefusal]:
    """Every place ``document`` names code, a host or a key variable ``policy`` does not
    allow; empty when the server may run it."""
    found: list[SentRefusal] = []
    for path, node in _mappings(document, ()):
        if node.get("provider") == "python" and isinstance(node.get("name"), str):
            found.extend(_code(path + ("name",), node["name"], policy))
        spec = node.get("function")
        if isinstance(spec, str):  # a python scorer's function (a tool's is a mapping)
            found.extend(_code(path + ("function",), spec, policy))
        base_url = node.get("base_url")
        if isinstance(base_url, str) and base_url.strip():
            host = _host(base_url)
            if not _allowed_host(host, policy.model_hosts):
                found.append(
                    SentRefusal(
                        path + ("base_url",),
                        f"this server calls no model at '{host or base_url}' for a document "
                        "sent to it",
                        "its operator allows hosts with `serve --allow-model-host HOST`; or "
                        "register and evaluate it from your own machine",
                    )
                )
        key_env = node.get("api_key_env")
        if isinstance(key_env, str) and not any(
            fnmatch.fnmatchcase(key_env, p) for p in policy.key_envs
        ):
            found.append(
                SentRefusal(
                    path + ("api_key_env",),
                    f"this server reads no key from '{key_env}' for a document sent to it "
                    f"(allowed: {', '.join(policy.key_envs) or 'none'})",
                    "its operator allows names with `serve --allow-key-env NAME`",
                )
            )
    return found


def _code(path: tuple[str | int, ...], spec: str, policy: SentCodePolicy) -> list[SentRefusal]:
    module = spec.partition(":")[0].strip()
    if any(p == "*" or module == p or module.startswith(p + ".") for p in policy.python_modules):
        return []
    return [
        SentRefusal(
            path,
            f"this server runs no python code sent to it ('{spec}': module '{module}' is "
            "not allowed here)",
            "its operator allows modules with `serve --allow-python PACKAGE`; or register "
            "and evaluate it from a machine where the code is yours to run",
        )
    ]


def _mappings(
    node: Any, path: tuple[str | int, ...], depth: int = 0
) -> Iterator[tuple[tuple[str | int, ...], Mapping[str, Any]]]:
    if depth > 200:  # documents are depth-limited when parsed; this is a second guard
        return
    if isinstance(node, Mapping):
        yield path, node
        for key, value in node.items():
            yield from _mappings(value, path + (str(key),), depth + 1)
    elif isinstance(node, list | tuple):
        for i, value in enumerate(node):
            yield from _mappings(value, path + (i,), depth + 1)


def _host(url: str) -> str:
    text = url.strip()
    parsed = urlsplit(text if "//" in text else f"//{text}")
    try:
        return (parsed.hostname or "").lower()
    except ValueError:
        return ""


def _allowed_host(host: str, allowed: tuple[str, ...]) -> bool:
    return bool(host) and any(a == "*" or a == host for a in allowed)


def _items(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())
