"""The project itself: ``init`` its store, ``db upgrade`` its schema, run the ``demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from releasegate.cli._common import JsonOpt, app, command, console, db_app, emit


@command(app)
def init(as_json: JsonOpt = False) -> None:
    """Create the store (.releasegate/ here, or RELEASEGATE_DATABASE_URL)."""
    from releasegate.release.store_access import init_store

    ready = init_store()
    if as_json:
        emit(ready)
        return
    console().print(
        f"store ready: [bold]{ready.database}[/]\nblobs: {ready.blobs}\n"
        f"audit key: {ready.audit_key} ({ready.audit_key_id}; keep it secret and backed up)"
    )


@command(app)
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

    upgrade_store()
    console().print("schema is up to date")
