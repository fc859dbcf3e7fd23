"""Register: give a workflow file's behaviour an immutable identity and a place in history.

Registering the same content again is a no-op that says so, except that registering
an experiment's content on the release track graduates it (same content, same id:
the track changes, audited as ``version.graduated``). Metadata that is
not behaviour (owners, stakes, policy) is updated in place and audited; a
policy whose content changed becomes the environment's new current policy.
Reading a file pins its model (``release.models.pin_model``): an Ollama tag is
resolved to its digest, a GGUF file hashed, code and the embedded model named
by content, so the id says which weights ran.
"""

from __future__ import annotations

import contextlib
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

from releasegate.domain import untrusted
from releasegate.domain.document import Document, undotted
from releasegate.domain.experiments import EXPERIMENT, RELEASE
from releasegate.domain.manifest import WorkflowSpec, parse_workflow
from releasegate.domain.policy import Policy
from releasegate.domain.sent_code import SentCodePolicy
from releasegate.errors import ManifestError, NotFoundError, PolicyError, WriteConflictError
from releasegate.providers import build_provider
from releasegate.providers.base import ProviderContext
from releasegate.providers.embeddings import Embedder
from releasegate.providers.python_callable import load_function, revision_of
from releasegate.release.data_rules import version_violations
from releasegate.release.loaders import check_sent, load_yaml, max_input_bytes, parse_yaml
from releasegate.release.models import gguf_digest, pin_model
from releasegate.release.policy_changes import approved_over_file, change_policy
from releasegate.release.refs import actor as default_actor
from releasegate.release.refs import find_version
from releasegate.release.retry import retried
from releasegate.store.audit import AuditRepo
from releasegate.store.engine import Conn, Store
from releasegate.store.environments import EnvironmentRepo
from releasegate.store.policies import PolicyRepo
from releasegate.store.rows import now
from releasegate.store.versions import VersionRecord, VersionRepo
from releasegate.store.workflows import WorkflowRepo


@dataclass(frozen=True)
class Registered:
    version_id: str
    workflow: str
    is_new: bool
    parent_id: str | None
    track: str
    source_commit: str | None
    policies_changed: tuple[str, ...]
    graduated: bool = False  # an experiment registered again without --experiment
    data_warnings: tuple[str, ...] = ()  # where its data would go that its class forbids
    policies_kept: tuple[str, ...] = ()
    """Approved policy changes the file's (older) policy did not undo, one line each."""


@dataclass(frozen=True)
class Checked:
    """``register --check``'s answer for one file: the id it would get, nothing written."""

    file: str
    version_id: str
    workflow: str
    valid: bool
    data_warnings: tuple[str, ...]
    """Where its data would go that its class forbids (the rules in force where checked)."""


def check_spec(spec: WorkflowSpec, file: str) -> Checked:
    """``register --check`` of a read workflow: its id and its data-class warnings."""
    warnings = tuple(v.message() for v in version_violations(spec.manifest, spec.data_class))
    return Checked(file, spec.version_id, spec.name, True, warnings)


def parse_file(path: Path) -> tuple[WorkflowSpec, Document]:
    """Parse a workflow file, nothing pinned yet; files it names are relative to it."""
    doc = load_yaml(path, ManifestError)
    base = path.parent

    def reader(rel: str) -> bytes:
        return (base / rel).read_bytes()

    def loader(rel: str) -> Document:
        target = base / rel
        return parse_yaml(target.read_bytes().decode("utf-8"), str(target), PolicyError)

    return parse_workflow(doc, reader, loader), doc


def parse_text(
    text: str, source: str, files: Mapping[str, str], policy: SentCodePolicy
) -> tuple[WorkflowSpec, Document]:
    """Parse a workflow document sent as text (over the server), under the same limits as a
    file; the files it names (prompts, an index, a blessed-models list) come from ``files``
    (relative path -> text), never from this machine's disk."""
    untrusted.check_size(len(text.encode("utf-8")), max_input_bytes(), source, ManifestError)
    doc = parse_yaml(text, source, ManifestError)
    check_sent(doc, policy)  # before any of it is imported, pinned or called
    given = {posixpath.normpath(k): v for k, v in files.items()}

    def read(rel: str) -> str:
        found = given.get(posixpath.normpath(rel))
        if found is None:
            raise FileNotFoundError(rel)
        return found

    def loader(rel: str) -> Document:
        return parse_yaml(read(rel), rel, PolicyError)

    return parse_workflow(doc, lambda rel: read(rel).encode("utf-8"), loader), doc


def named_files(path: Path) -> dict[str, str]:
    """The files a workflow file names (prompts, a retrieval index, a blessed-models list),
    by the relative path it names them with -> their text, read from beside it as
    ``parse_file`` reads them: what ``parse_text`` takes as ``files`` (the CLI sends them
    to a server). A document that does not parse gives the files read up to its first
    fault: the server it is sent to answers that fault, as a local run would."""
    doc = load_yaml(path, ManifestError)
    base = path.parent
    found: dict[str, str] = {}
    binary: list[str] = []

    def reader(rel: str) -> bytes:
        data = (base / rel).read_bytes()
        try:
            found[rel] = data.decode("utf-8")
        except UnicodeDecodeError:
            binary.append(rel)
        return data

    def loader(rel: str) -> Document:
        return parse_yaml(reader(rel).decode("utf-8", "replace"), rel, PolicyError)

    with contextlib.suppress(ManifestError, PolicyError):  # the server says what is wrong
        parse_workflow(doc, reader, loader)
    if binary:
        raise ManifestError(
            f"'{binary[0]}' is not UTF-8 text: a server takes the files a workflow names as text",
            source=str(path),
            hint="unset RELEASEGATE_URL to register it locally",
        )
    return found


def read_workflow(path: Path) -> WorkflowSpec:
    """Parse a workflow file and pin its model: code and weights by content."""
    spec, doc = parse_file(path)
    return pinned(spec, doc, str(path), path.parent)


def read_workflow_text(
    text: str,
    source: str,
    files: Mapping[str, str],
    *,
    policy: SentCodePolicy,
    model_digest: str | None = None,
) -> WorkflowSpec:
    """``read_workflow`` of a document sent as text: a GGUF ``model.file`` is on the
    sender's disk, never read here, so it is pinned by ``model_digest``, the sha256 the
    sender hashed it to (``releasegate register`` sends it), else by the full ``digest`` the
    document states. What it may make this server run is ``policy``'s to say
    (``domain/sent_code``)."""
    spec, doc = parse_text(text, source, files, policy)
    return pinned(spec, doc, source, None, model_digest=model_digest)


def pinned(
    spec: WorkflowSpec,
    doc: Document,
    source: str,
    base: Path | None,
    *,
    model_digest: str | None = None,
) -> WorkflowSpec:
    """Pin ``spec``'s code and model; ``base`` is the folder a GGUF ``file`` is read from,
    ``model_digest`` its sha256 as hashed by a sender (then nothing is read)."""
    try:
        if model_digest is not None and spec.model_file is None:
            raise ManifestError(
                "a model digest was sent, and the document names no GGUF 'file' to pin by it",
                field="model",
            )
        if base is None and spec.model_file is not None and model_digest is None:
            raise ManifestError(
                f"the model file '{spec.model_file}' cannot be read here",
                field="model.file",
                hint="send it with `releasegate register` (it hashes the file and sends its "
                "digest), or remove 'file' and state the file's full 'digest' (sha256:...)",
            )
        spec = pin_code(spec)
        # the provider validates its own part of the manifest (labels, settings) now, not at eval
        build_provider(spec.manifest, ProviderContext(embedder=Embedder()))
        # last: it may ask a runtime over the network
        spec = pin_model(spec, base or Path(), model_digest=model_digest)
    except ManifestError as exc:
        raise _located(exc, doc, source) from None
    return spec


def _located(exc: ManifestError, doc: Document, source: str) -> ManifestError:
    where = undotted(exc.field) if exc.field else ("model",)
    return ManifestError(
        exc.reason, source=source, line=doc.line_of(where), field=exc.field, hint=exc.hint
    )


class SentModel(NamedTuple):
    """A GGUF ``model.file`` hashed where it is, for a server that cannot read it."""

    path: str
    """The file, absolute, on the sender's machine (named in messages, never read there)."""
    digest: str


def sent_model(path: Path) -> SentModel | None:
    """The GGUF file a workflow file names, hashed here as ``register`` would hash it (a
    missing file: the local message, naming its line), so a server registers the same id;
    None when it names none, or when the document does not parse (the server says why)."""
    try:
        spec, doc = parse_file(path)
    except (ManifestError, PolicyError):
        return None
    if spec.model_file is None:
        return None
    try:
        digest = gguf_digest(spec.model_file, path.parent)
    except ManifestError as exc:
        raise _located(exc, doc, str(path)) from None
    return SentModel(str((path.parent / spec.model_file).resolve()), digest)


def pin_code(spec: WorkflowSpec) -> WorkflowSpec:
    """A workflow that is code is pinned by its module's sha256, so editing it is a new version.

    The function must resolve now (module importable, attribute there, callable): a
    version that cannot run is refused here, not found out at its first eval.
    """
    model = spec.manifest.get("model", {})
    if model.get("provider") != "python":
        return spec
    load_function(str(model.get("name")))
    pinned = {**model, "source_sha256": revision_of(str(model.get("name")))}
    return replace(spec, manifest={**spec.manifest, "model": pinned})


def git_commit(start: Path) -> str | None:
    """HEAD's commit of the repository holding ``start``, read from .git without a subprocess."""
    for folder in [start.resolve(), *start.resolve().parents]:
        git = folder / ".git"
        if git.is_file():  # a worktree: "gitdir: <path>"
            content = git.read_text().strip()
            if content.startswith("gitdir:"):
                git = (folder / content.split(":", 1)[1].strip()).resolve()
        if not git.is_dir():
            continue
        try:
            head = (git / "HEAD").read_text().strip()
            if not head.startswith("ref:"):
                return head or None
            ref = head.split(":", 1)[1].strip()
            common = git
            if (git / "commondir").exists():
                common = (git / (git / "commondir").read_text().strip()).resolve()
            for base in (git, common):
                if (base / ref).exists():
                    return (base / ref).read_text().strip()
            packed = common / "packed-refs"
            if packed.exists():
                for line in packed.read_text().splitlines():
                    if line.endswith(" " + ref):
                        return line.split(" ", 1)[0]
        except OSError:
            return None
        return None
    return None


def _default_parent(conn: Conn, spec: WorkflowSpec) -> str | None:
    """What runs in the most downstream environment, else the latest version."""
    for env in reversed(spec.environments):
        current = EnvironmentRepo(conn).current(spec.name, env)
        if current is not None:
            return current[0]
    latest = VersionRepo(conn).latest(spec.name)
    return latest.version_id if latest else None


def sync_policies(conn: Conn, spec_name: str, policies: dict[str, Policy], who: str) -> list[str]:
    changed = []
    for env, policy in sorted(policies.items()):
        current = PolicyRepo(conn).current(spec_name, env)
        if current is not None and current[0] == policy.policy_id:
            continue
        change_policy(
            conn,
            spec_name,
            env,
            policy.content(),
            previous=current[0] if current else None,
            who=who,
        )
        changed.append(env)
    return changed


def register(
    store: Store,
    path: Path,
    *,
    reason: str = "",
    owner: str | None = None,
    parent: str | None = None,
    experiment: bool = False,
    who: str | None = None,
) -> Registered:
    spec = read_workflow(path)
    return register_spec(
        store,
        spec,
        reason=reason,
        owner=owner,
        parent=parent,
        experiment=experiment,
        who=who,
        source_dir=path.parent,
        source_file=path,
    )


@retried
def register_spec(
    store: Store,
    spec: WorkflowSpec,
    *,
    reason: str = "",
    owner: str | None = None,
    parent: str | None = None,
    experiment: bool = False,
    who: str | None = None,
    source_dir: Path | None = None,
    source_file: Path | None = None,
    source_commit: str | None = None,
    sent_model_file: str | None = None,
) -> Registered:
    """Register ``spec``; two writers registering the same content both get its id.

    ``source_file`` is recorded in the registration event, with a GGUF model's file, so
    a pin that no longer holds can name the command that registers the change. The
    source commit is read from ``source_dir``'s git repository, or stated
    (``source_commit``: a document sent over the server has no folder here).
    ``sent_model_file`` is where a sent document's GGUF file is on its sender's machine:
    recorded (``model_file_sent``) for messages, never read here.
    """
    who = who or default_actor()
    # read before anything is written: a bad rules file is exit 2 with nothing stored
    warnings = tuple(v.message() for v in version_violations(spec.manifest, spec.data_class))
    commit = git_commit(source_dir) if source_dir is not None else source_commit
    origin: dict[str, str] = {}
    if source_file is not None:
        origin["file"] = str(source_file.resolve())
        if spec.model_file is not None:
            origin["model_file"] = str((source_file.parent / spec.model_file).resolve())
    if sent_model_file is not None:
        origin["model_file_sent"] = sent_model_file
    track = EXPERIMENT if experiment else RELEASE
    owner = owner or spec.owners.change or who
    for attempt in (1, 2):
        try:
            with store.write() as conn:
                done = _record(
                    conn,
                    spec,
                    reason=reason,
                    owner=owner,
                    parent=parent,
                    track=track,
                    commit=commit,
                    who=who,
                    origin=origin,
                )
                # in the version's transaction: a registration that fails leaves no blob
                for data in spec.blobs.values():
                    store.blobs.put_in(conn, data)
            return replace(done, data_warnings=warnings)
        except WriteConflictError:  # the other writer's row is there now: same id, not new
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _record(
    conn: Conn,
    spec: WorkflowSpec,
    *,
    reason: str,
    owner: str,
    parent: str | None,
    track: str,
    commit: str | None,
    who: str,
    origin: Mapping[str, str] | None = None,
) -> Registered:
    """The writes of one registration, inside the caller's transaction."""
    version_id = spec.version_id
    WorkflowRepo(conn).upsert(
        name=spec.name,
        description=spec.description,
        stakes=spec.stakes,
        owners=spec.owners.as_dict(),
        environments=spec.environments,
        monitor=spec.monitor,
        experiments_retention_days=spec.retention.days,
        data_class=spec.data_class,
    )
    kept = approved_over_file(conn, spec.name, spec.policies)
    files = {env: p for env, p in spec.policies.items() if env not in kept}
    changed = sync_policies(conn, spec.name, files, who)
    existing = VersionRepo(conn).find(version_id)
    if existing is not None:
        graduated = existing.track == EXPERIMENT and track == RELEASE
        if graduated:  # same content, same id: the experiment itself becomes the release
            VersionRepo(conn).set_track(version_id, RELEASE)
            AuditRepo(conn).append(
                kind="version.graduated",
                actor=who,
                workflow=spec.name,
                subject=version_id,
                payload={"from_track": EXPERIMENT, "to_track": RELEASE, "reason": reason},
            )
        return Registered(
            version_id,
            spec.name,
            False,
            existing.parent_id,
            RELEASE if graduated else existing.track,
            existing.source_commit,
            tuple(changed),
            graduated,
            policies_kept=tuple(kept.values()),
        )
    if parent is not None:
        try:
            parent_id: str | None = find_version(conn, parent).version_id
        except NotFoundError as exc:
            raise NotFoundError(f"parent: {exc.reason}", field="--parent") from None
    else:
        parent_id = _default_parent(conn, spec)
    VersionRepo(conn).add(
        VersionRecord(
            version_id=version_id,
            workflow=spec.name,
            manifest=spec.manifest,
            owner=owner,
            parent_id=parent_id,
            reason=reason,
            track=track,
            source_commit=commit,
            created_at=now(),
        ),
    )
    AuditRepo(conn).append(
        kind="version.registered",
        actor=who,
        workflow=spec.name,
        subject=version_id,
        payload={
            "parent_id": parent_id,
            "reason": reason,
            "track": track,
            "owner": owner,
            "source_commit": commit,
            **(origin or {}),
        },
    )
    return Registered(
        version_id,
        spec.name,
        True,
        parent_id,
        track,
        commit,
        tuple(changed),
        policies_kept=tuple(kept.values()),
    )
