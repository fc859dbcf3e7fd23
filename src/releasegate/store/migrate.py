"""Running Alembic from inside releasegate, without an alembic.ini on the user's disk."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).parent / "migrations"


def upgrade(engine: Engine, revision: str = "head") -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.connect() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)
        conn.commit()


def _scripts() -> ScriptDirectory:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config)


def heads() -> list[str]:
    return list(_scripts().get_heads())


def revisions() -> list[str]:
    """Every revision of the migrations, oldest first, as Alembic walks them (base to head):
    a store at a revision not in this list was written by a newer releasegate."""
    walked = _scripts().walk_revisions(base="base", head="heads")
    return [script.revision for script in reversed(list(walked))]


def upgrade_url(url: str) -> None:
    """``releasegate db upgrade`` for a shared database: the one place a migration runs."""
    from releasegate.store.engine import make_engine

    engine = make_engine(url, migrating=True)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
