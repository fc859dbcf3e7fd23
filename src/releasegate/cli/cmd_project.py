"""The project itself: ``init`` its store, ``db upgrade`` its schema, run the ``demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from releasegate.cli._common import (
    JsonOpt,
    app,
    command,
    console,
    db_app,
    emit,
    plural,
    writable,
)


@command(app)
def init(as_json: JsonOpt = False) -> None:
    """Create the store (.releasegate/ here, or RELEASEGATE_DATABASE_URL)."""
    from releasegate.release.store_access import init_store

    ready = init_store()
    if as_json:
        emit(ready)
        return
    console().print(
        f"store ready: [bold]{ready.database}[/]\n"
        f"audit key: {ready.audit_key} ({ready.audit_key_id}; keep it secret and backed up)"
    )


@command(app, served=None)
def demo(
    dir: Annotated[
        Path, typer.Option("--dir", metavar="DIR", help="Where to put the demo project.")
    ] = Path("releasegate-demo"),
) -> None:
    """The whole loop on the embedded model, end to end, in under a minute."""
    from releasegate.cli.demo import run_demo

    run_demo(dir)


@command(db_app, "upgrade")
def db_upgrade() -> None:
    """Upgrade the store's schema to this release (back up first)."""
    from releasegate.release.store_access import upgrade_store

    moved = upgrade_store()
    console().print("schema is up to date")
    if moved is not None:
        console().print(moved, markup=False, highlight=False, soft_wrap=True)


@command(db_app, "backup")
def db_backup(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="The new backup file.")],
    as_json: JsonOpt = False,
) -> None:
    """Copy the SQLite store to FILE while it stays in use (PostgreSQL: pg_dump)."""
    from releasegate.release.store_access import backup_store

    done = backup_store(file)
    if as_json:
        emit(done)
        return
    console().print(
        f"backed up {done.source} to {done.target} ({done.size:,} bytes, schema "
        f"{done.schema}, {plural(done.blobs, 'blob')})\n"
        f"the audit key is not in it: back up {done.audit_key} apart",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@command(db_app, "restore")
def db_restore(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A file `db backup` wrote.")],
    replace: Annotated[
        bool, typer.Option("--replace", help="Replace a store that already holds data.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Restore the SQLite store from FILE (PostgreSQL: pg_restore)."""
    from releasegate.release.store_access import restore_store

    done = restore_store(file, replace=replace)
    if as_json:
        emit(done)
        return
    console().print(
        f"restored {done.target} from {done.source} (schema {done.schema}, "
        f"{plural(done.blobs, 'blob')})\n"
        f"the audit key is read from {done.audit_key}; check the log with "
        "`releasegate audit verify`",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


@command(db_app, "blob")
def db_blob(
    digest: Annotated[str, typer.Argument(metavar="DIGEST", help="sha256:... or its hex.")],
    out: Annotated[
        Path | None, typer.Option("--out", metavar="FILE", help="Write it here (default: stdout).")
    ] = None,
) -> None:
    """Write a stored blob (a version's prompt or index file), checked against its digest."""
    import os
    import sys
    import tempfile

    from releasegate.cli._common import open_store
    from releasegate.release.inspect import blob, blob_chunks

    store = open_store(create=False)
    if out is None:
        sys.stdout.buffer.write(blob(store, digest))
        sys.stdout.buffer.flush()
        return
    writable(out, "--out")
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            for chunk in blob_chunks(store, digest):  # checked before the last chunk
                fh.write(chunk)
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
