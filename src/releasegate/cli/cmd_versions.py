"""Versions: ``register`` a workflow file, list ``versions``, ``show`` one, ``diff`` two,
and ``gc`` the eval data of expired experiments and the blobs no version refers to.

A version's id is a content hash; tables show its first 12 characters, which every
command accepts as the version (a unique prefix), and never wrap or cut them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from releasegate.cli._common import JsonOpt, VersionArg, WorkflowArg, app, command, console, emit
from releasegate.cli._common import open_store as store
from releasegate.cli._remote import server


@command(app, served=True)
def register(
    files: Annotated[
        list[Path],
        typer.Argument(metavar="FILE", help="Workflow YAML file (several with --check)."),
    ],
    reason: Annotated[str, typer.Option(help="Why this change.")] = "",
    owner: Annotated[str | None, typer.Option(metavar="NAME", help="Owner of the change.")] = None,
    parent: Annotated[
        str | None, typer.Option(metavar="VERSION", help="Parent version (default: what runs).")
    ] = None,
    experiment: Annotated[
        bool, typer.Option("--experiment", help="Track as an experiment.")
    ] = False,
    check: Annotated[
        bool, typer.Option("--check", help="Only validate and print the id; write nothing.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Register a workflow file's behaviour as an immutable, content-hashed version."""
    from releasegate.errors import InputError
    from releasegate.release.register import Registered, git_commit, read_workflow

    srv = server()
    if check:  # pre-commit passes every changed file at once
        if srv is not None:  # the file and what it names, sent; the server pins and checks
            found = [
                srv.post("v1", "versions", body=_sent(f), check=True) for f in files
            ]  # the first bad file stops it
        else:
            import dataclasses

            from releasegate.release.register import check_spec

            specs = [(f, read_workflow(f)) for f in files]  # the first bad file stops it
            found = [dataclasses.asdict(check_spec(s, str(f))) for f, s in specs]
        for doc in found:  # stderr: --json stays one document
            for warning in doc["data_warnings"]:
                console(stderr=True).print(f"warning: {doc['file']}: {warning}", markup=False)
        if as_json:
            emit(found[0] if len(found) == 1 else found)
        else:
            for doc in found:
                console().print(
                    f"{doc['file']}: valid; version id [bold]{doc['version_id'][:12]}[/] "
                    f"of {doc['workflow']} (nothing written)"
                )
        return
    if len(files) != 1:
        raise InputError(
            f"register takes one workflow file, got {len(files)}",
            field="FILE",
            hint="register them one at a time, or validate several with --check",
        )
    file = files[0]
    options: dict[str, Any] = {
        "reason": reason,
        "owner": owner,
        "parent": parent,
        "experiment": experiment,
    }
    if srv is not None:
        sent = {**_sent(file), **options, "source_commit": git_commit(file.parent)}
        doc = srv.post("v1", "versions", body=sent)
        fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in doc.items()}
        result = Registered(**fields)
    else:
        from releasegate.release.register import register_spec

        spec = read_workflow(file)  # parse before touching the store: bad input writes nothing
        where: dict[str, Any] = {"source_dir": file.parent, "source_file": file}
        result = register_spec(store(), spec, **options, **where)
    for warning in result.data_warnings:  # stderr: --json stays one document
        console(stderr=True).print(f"warning: {warning}", markup=False)
    if as_json:
        emit(result)
        return
    c = console()
    short = result.version_id[:12]
    if result.is_new:
        parent_s = result.parent_id[:12] if result.parent_id else "none"
        c.print(
            f"registered [bold]{short}[/] of {result.workflow} "
            f"(track {result.track}, parent {parent_s})"
        )
    elif result.graduated:
        c.print(
            f"graduated [bold]{short}[/] of {result.workflow}: the experiment with this "
            "content is now on the release track (same content, same id; its evals and "
            "gate decisions stand)"
        )
    else:
        c.print(
            f"already registered: [bold]{short}[/] of {result.workflow} (same content, same "
            f"id, track {result.track})"
        )
    for env in result.policies_changed:
        c.print(f"policy for {env} updated")
    for line in result.policies_kept:
        console(stderr=True).print(f"warning: {line}", markup=False, soft_wrap=True)


def _sent(file: Path) -> dict[str, object]:
    """A workflow file as a server takes it: its text, its name as typed, and the files it
    names (read from beside it, as a local run reads them), and a GGUF model file's sha256
    (hashed here: the server never reads it)."""
    from releasegate.release.register import named_files, sent_model

    files = named_files(file)  # a missing or unreadable file: the local message, exit 2
    sent: dict[str, object] = {
        "document": file.read_text(encoding="utf-8"),
        "source": str(file),
        "files": files,
    }
    model = sent_model(file)  # a GGUF file is hashed here, as locally: the same version id
    if model is not None:
        sent.update(model_digest=model.digest, model_file=model.path)
    return sent


@command(app, served=True)
def versions(
    workflow: WorkflowArg,
    track: Annotated[
        str | None,
        typer.Option(metavar="TRACK", help="Only this track: release or experiment."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """List a workflow's versions, newest last, with their track and where each runs."""
    if (srv := server()) is not None:
        rows = srv.get("v1", "workflows", workflow, "versions", track=track)
    else:
        from releasegate.release.inspect import list_versions

        rows = list_versions(store(create=False), workflow, track)
    if as_json:
        emit(rows)
        return
    from releasegate.cli.render import versions_table

    out = console()
    out.print(versions_table(workflow, rows, width=out.width))


@command(app, served=True)
def show(version: VersionArg, as_json: JsonOpt = False) -> None:
    """Show one version: its manifest, metadata, evals and gate decisions."""
    if (srv := server()) is not None:
        info = srv.get("v1", "versions", version)
    else:
        from releasegate.release.inspect import show_version

        info = show_version(store(create=False), version)
    if as_json:
        emit(info)
        return
    import yaml

    c = console()
    c.print(f"[bold]{info['version_id']}[/]  {info['workflow']}")
    for key in ("owner", "reason", "track", "parent_id", "source_commit", "created_at"):
        c.print(f"  {key}: {info[key]}", markup=False)  # the users' words, never markup
    c.print(f"  running in: {', '.join(info['environments']) or 'nowhere'}")
    c.print("\n[bold]manifest[/]")
    c.print(
        yaml.safe_dump(info["manifest"], sort_keys=True, allow_unicode=True).rstrip(),
        markup=False,
    )
    if info["evals"]:
        c.print("\n[bold]evals[/]")
        for e in info["evals"]:
            c.print(
                f"  {e['started_at'][:19]}  suite {e['suite_id'][:12]}  {e['status']}  "
                + "  ".join(f"{k}={v:.3f}" for k, v in e["metrics"].items())
            )
    if info["decisions"]:
        c.print("\n[bold]gate decisions[/]")
        for d in info["decisions"]:
            c.print(f"  {d['created_at'][:19]}  {d['env']}: {d['verdict']}")


@command(app, served=True)
def diff(
    a: Annotated[str, typer.Argument(metavar="A")],
    b: Annotated[str, typer.Argument(metavar="B")],
    as_json: JsonOpt = False,
) -> None:
    """Show what changed from version A to version B, and the change class."""
    if (srv := server()) is not None:
        info = srv.get("v1", "versions", a, "diff", b)
    else:
        from releasegate.release.inspect import diff_versions

        info = diff_versions(store(create=False), a, b)
    if as_json:
        emit(info)
        return
    c = console()
    c.print(
        f"{info['a'][:12]} -> {info['b'][:12]}: change class "
        f"[bold]{info['change_class'] or 'none'}[/]"
    )
    for line in info["lines"]:
        style = "green" if line.startswith("+") else "red" if line.startswith("-") else ""
        c.print(line, style=style, markup=False)


@command(app)
def gc(
    workflow: Annotated[
        str | None, typer.Argument(metavar="[WORKFLOW]", help="One workflow (default: all).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only list what would be collected.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Collect expired experiments' eval outputs and scores (version, manifest, audit kept),
    and, of the whole store, the blobs no version refers to and the server's jobs that
    ended more than 30 days ago."""
    from releasegate.release.experiments import collect_expired
    from releasegate.release.jobs import KEEP_DAYS, collect_old_jobs
    from releasegate.release.orphans import collect_orphan_blobs

    opened = store(create=False)
    result = collect_expired(opened, workflow, dry_run=dry_run)
    orphans = None if workflow is not None else collect_orphan_blobs(opened, dry_run=dry_run)
    jobs = None if workflow is not None else collect_old_jobs(opened, dry_run=dry_run)
    if as_json:
        emit(
            {
                **result.to_dict(),
                "blobs": None if orphans is None else orphans.to_dict(),
                "jobs": None
                if jobs is None
                else {"dry_run": dry_run, "ended_before_days": KEEP_DAYS, "jobs": jobs},
            }
        )
        return
    c = console()
    verb = "would collect" if dry_run else "collected"
    for e in result.experiments:
        what = f"{e.outputs:,} outputs, {e.scores:,} scores"
        if e.is_collected:
            c.print(
                f"{verb} {e.version_id[:12]} of {e.workflow} (expired "
                f"{e.expired_at:%Y-%m-%d}, {e.retention_days}-day retention): {what}"
            )
        else:
            c.print(f"kept {e.version_id[:12]} of {e.workflow}: it {e.kept_because} ({what})")
    n = len(result.collected)
    c.print(
        f"{verb} {n} expired experiment{'s' if n != 1 else ''}: "
        f"{result.outputs:,} outputs, {result.scores:,} scores"
        + ("; nothing was deleted" if dry_run else "")
    )
    if orphans is not None:
        b = len(orphans.digests)
        c.print(
            f"{verb} {b} blob{'s' if b != 1 else ''} no version refers to "
            f"({orphans.size:,} bytes)" + ("; nothing was deleted" if dry_run else "")
        )
    if jobs is not None:
        c.print(
            f"{verb} {jobs} job{'s' if jobs != 1 else ''} that ended more than {KEEP_DAYS} "
            "days ago" + ("; nothing was deleted" if dry_run else "")
        )
