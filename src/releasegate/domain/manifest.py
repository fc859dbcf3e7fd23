"""Workflow files: who owns a workflow, and the manifest whose hash is a version's id.

A workflow file mixes two things. The behaviour (model, prompts, generation,
tools, retrieval, output) is the manifest: it is canonicalised and hashed, so
the same behaviour has the same id everywhere. Everything else (description,
stakes, owners, environments, policy, experiments, data_class) is metadata about
the workflow and never changes a version's id. Files the manifest refers to are read through a
``reader`` callback and inlined (prompts) or pinned by digest (an index); a
GGUF model file is only named here, since it is hashed at register (streamed,
not read whole), as an Ollama tag is resolved to its digest there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from releasegate.domain.data_class import DEFAULT_DATA_CLASS, parse_data_class
from releasegate.domain.document import Document, Fields
from releasegate.domain.experiments import Retention, parse_experiments
from releasegate.domain.identity import content_hash, sha256_bytes
from releasegate.domain.monitoring import parse_monitor
from releasegate.domain.pinning import (
    DECLARED_RUNTIMES,
    LOCAL_RUNTIMES,
    DocumentLoader,
    normalize_digest,
    runtime_of,
)
from releasegate.domain.policy import Policy, parse_policy
from releasegate.errors import ManifestError

Reader = Callable[[str], bytes]
TOP_LEVEL = (
    "workflow",
    "description",
    "stakes",
    "owners",
    "environments",
    "model",
    "prompts",
    "generation",
    "tools",
    "retrieval",
    "output",
    "policy",
    "monitor",
    "experiments",
    "data_class",
)
DEFAULT_ENVIRONMENTS = ("staging", "production")
_SCALARS = (str, int, float, bool)


@dataclass(frozen=True)
class Owners:
    change: str | None = None
    care: str | None = None
    approvers: tuple[str, ...] = ()
    business: tuple[str, ...] = ()
    responders: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "change": self.change,
            "care": self.care,
            "approvers": list(self.approvers),
            "business": list(self.business),
            "responders": list(self.responders),
        }


@dataclass(frozen=True)
class WorkflowSpec:
    """A parsed workflow file: the workflow's metadata and one version's manifest."""

    name: str
    description: str
    stakes: str
    owners: Owners
    environments: tuple[str, ...]
    manifest: Mapping[str, Any]
    policies: Mapping[str, Policy] = field(default_factory=dict)
    blobs: Mapping[str, bytes] = field(
        default_factory=dict
    )  # digest -> content of referenced files
    model_file: str | None = None  # a GGUF file, relative to the workflow file: hashed at register
    monitor: Mapping[str, Any] | None = None  # alert rules and routes: metadata, not hashed
    retention: Retention = Retention()  # how long experiments' eval data is kept: metadata
    data_class: str = DEFAULT_DATA_CLASS  # metadata: where its data may go (domain/data_class)

    @property
    def version_id(self) -> str:
        return version_id(self.manifest)


def version_id(manifest: Mapping[str, Any]) -> str:
    return content_hash(manifest)


def referenced_blobs(manifest: Mapping[str, Any]) -> set[str]:
    """The hex sha256 of every file ``manifest`` was read from: its prompt files (inlined as
    text, so each is the sha256 of its text) and its retrieval index. A blob named by none
    of a store's versions is an orphan ``gc`` collects (inline prompts count too: harmless)."""
    found: set[str] = set()
    prompts = manifest.get("prompts") or {}
    texts = [prompts.get("system"), *(prompts.get("templates") or {}).values()]
    for text in texts:
        if isinstance(text, str):
            found.add(sha256_bytes(text.encode("utf-8")))
    index = ((manifest.get("retrieval") or {}).get("index") or {}).get("digest")
    if isinstance(index, str):
        found.add(index.removeprefix("sha256:").lower())
    return found


def _str_list(f: Fields, key: str) -> tuple[str, ...]:
    items = f.get(key, list, [])
    for i, item in enumerate(items):
        if not isinstance(item, str):
            f.sub_fail(key, i, item)
    return tuple(items)


def _text(
    f: Fields, key: Any, reader: Reader, blobs: dict[str, bytes], *, required: bool = False
) -> str | None:
    """A prompt: inline text, or ``{file: path}`` read and inlined so the hash sees the words."""
    value = f.get(key, (str, dict), required=required)
    if value is None or isinstance(value, str):
        return value
    ref = f.sub(key).only("file")
    path = ref.get("file", str, required=True)
    data = _read(ref, "file", path, reader)
    blobs[sha256_bytes(data)] = data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        ref.fail("file", f"'{path}' is not UTF-8 text")


def _read(f: Fields, key: str, path: str, reader: Reader) -> bytes:
    try:
        return reader(path)
    except FileNotFoundError:
        f.fail(key, f"referenced file '{path}' not found")
    except IsADirectoryError:
        f.fail(key, f"referenced path '{path}' is a directory")


def _model(m: Fields) -> tuple[dict[str, Any], str | None]:
    """The ``model`` section, and the GGUF file it names (not hashed: its digest is)."""
    m.only(
        "provider",
        "name",
        "runtime",
        "revision",
        "digest",
        "file",
        "base_url",
        "api_key_env",
        "options",
    )
    model: dict[str, Any] = {
        "provider": m.get("provider", str, required=True),
        "name": m.get("name", str, required=True),
    }
    if m.has("runtime"):
        stated = m.get("runtime", str)
        if stated not in DECLARED_RUNTIMES:
            m.fail(
                "runtime",
                f"unknown runtime '{stated}'",
                hint="one of: " + ", ".join(DECLARED_RUNTIMES),
            )
        if model["provider"] in ("python", "embedding-router"):
            m.fail(
                "runtime",
                f"the '{model['provider']}' provider's model is pinned by releasegate itself; "
                "'runtime' is for providers that call a model server",
            )
        model["runtime"] = stated
    for key in ("revision", "digest", "base_url", "api_key_env"):
        if m.has(key):
            model[key] = m.get(key, str)
    if m.has("options"):
        model["options"] = dict(m.get("options", dict))
    if "api_key" in str(model.get("options", {})).lower():
        m.fail("options", "never put a key in a workflow file; name its variable in 'api_key_env'")

    runtime = runtime_of(model)
    model_file: str | None = None
    if m.has("file"):
        if runtime != "gguf":
            m.fail("file", "only a GGUF model is pinned by its file", hint="add 'runtime: gguf'")
        model_file = m.get("file", str)
    if runtime in LOCAL_RUNTIMES and "digest" in model:
        full = runtime == "gguf" and model_file is None
        digest = normalize_digest(model["digest"], full=full)
        if digest is None:
            want = "64" if full else "4 to 64"
            m.fail(
                "digest",
                f"'{model['digest']}' is not a sha256 digest (sha256: and {want} hex digits)",
            )
        model["digest"] = digest
    if runtime == "gguf" and model_file is None and "digest" not in model:
        m.fail(
            None,
            "a GGUF model is pinned by its weights: give 'file' (hashed at register) "
            "or the file's full 'digest'",
        )
    return model, model_file


def parse_workflow(
    doc: Document, reader: Reader, loader: DocumentLoader | None = None
) -> WorkflowSpec:
    """Validate a workflow document and build its canonical manifest.

    ``loader`` reads a YAML file the policy names (a blessed-models list) as a Document.
    """
    top = Fields(doc, ManifestError).only(*TOP_LEVEL)
    name = top.get("workflow", str, required=True)
    if not name.strip() or any(c.isspace() for c in name):
        top.fail("workflow", "a workflow name is one word, like 'support-triage'")
    stakes = top.get("stakes", str, "low")
    if stakes not in ("low", "high"):
        top.fail("stakes", f"must be 'low' or 'high', not '{stakes}'")
    owners = Owners()
    if top.has("owners"):
        o = top.sub("owners").only("change", "care", "approvers", "business", "responders")
        owners = Owners(
            o.get("change", str),
            o.get("care", str),
            _str_list(o, "approvers"),
            _str_list(o, "business"),
            _str_list(o, "responders"),
        )
    environments = _str_list(top, "environments") or DEFAULT_ENVIRONMENTS

    blobs: dict[str, bytes] = {}
    manifest: dict[str, Any] = {"workflow": name}
    m = top.sub("model") if top.has("model") else top.fail("model", "is required")
    manifest["model"], model_file = _model(m)

    prompts: dict[str, Any] = {}
    if top.has("prompts"):
        p = top.sub("prompts").only("system", "templates", "labels")
        system = _text(p, "system", reader, blobs)
        if system is not None:
            prompts["system"] = system
        if p.has("templates"):
            t = p.sub("templates")
            prompts["templates"] = {
                str(k): _text(t, k, reader, blobs, required=True) for k in t.value
            }
        if p.has("labels"):
            lab = p.sub("labels")
            labels: dict[str, Any] = {}
            for key, value in lab.value.items():
                if isinstance(value, str):
                    labels[str(key)] = value
                elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
                    labels[str(key)] = list(value)
                else:
                    lab.fail(
                        str(key), "a label is described by a string or a non-empty list of strings"
                    )
            prompts["labels"] = labels
    manifest["prompts"] = prompts

    generation: dict[str, Any] = {}
    if top.has("generation"):
        g = top.sub("generation")
        for key, value in g.value.items():
            ok = isinstance(value, _SCALARS) or (
                isinstance(value, list) and all(isinstance(v, _SCALARS) for v in value)
            )
            if not ok:
                g.fail(
                    str(key), "generation settings are numbers, strings, booleans or lists of them"
                )
            generation[str(key)] = value
    manifest["generation"] = generation

    tools: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, _ in enumerate(top.get("tools", list, [])):
        t = Fields(doc, ManifestError, ("tools", i)).only("name", "description", "parameters")
        tool_name = t.get("name", str, required=True)
        if tool_name in seen:
            t.fail("name", f"tool '{tool_name}' is declared twice")
        seen.add(tool_name)
        tools.append(
            {
                "name": tool_name,
                "description": t.get("description", str, ""),
                "parameters": dict(t.get("parameters", dict, {"type": "object"})),
            }
        )
    manifest["tools"] = tools

    if top.has("retrieval"):
        r = top.sub("retrieval").only("embedding_model", "index")
        retrieval: dict[str, Any] = {
            "embedding_model": r.get("embedding_model", str, required=True)
        }
        if r.has("index"):
            ix = r.sub("index").only("path", "digest")
            digest = ix.get("digest", str)
            if ix.has("path"):
                data = _read(ix, "path", ix.get("path", str), reader)
                actual = "sha256:" + sha256_bytes(data)
                if digest and digest != actual:
                    ix.fail("digest", f"does not match the index file ({actual})")
                blobs[sha256_bytes(data)] = data
                digest = actual
            if not digest:
                ix.fail(None, "an index needs a 'path' or a 'digest'")
            retrieval["index"] = {"digest": digest}
        manifest["retrieval"] = retrieval

    if top.has("output"):
        out = top.sub("output").only("format", "schema")
        manifest["output"] = {
            "format": out.get("format", str, "text"),
            **({"schema": dict(out.get("schema", dict))} if out.has("schema") else {}),
        }

    policies: dict[str, Policy] = {}
    if top.has("policy"):
        pol = top.sub("policy")
        for env in pol.value:
            if env not in environments:
                pol.fail(
                    str(env), f"no environment '{env}' (environments: {', '.join(environments)})"
                )
            policies[str(env)] = parse_policy(
                pol.sub(str(env)), workflow=name, env=str(env), load=loader
            )

    return WorkflowSpec(
        name=name,
        description=top.get("description", str, ""),
        stakes=stakes,
        owners=owners,
        environments=tuple(environments),
        manifest=manifest,
        policies=policies,
        blobs=blobs,
        model_file=model_file,
        monitor=parse_monitor(top.sub("monitor")).as_dict() if top.has("monitor") else None,
        retention=parse_experiments(top.sub("experiments"))
        if top.has("experiments")
        else Retention(),
        data_class=parse_data_class(top),
    )
