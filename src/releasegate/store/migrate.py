"""Running Alembic from inside releasegate, without an alembic.ini on the user's disk."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

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


def heads() -> list[str]:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return list(ScriptDirectory.from_config(config).get_heads())


def upgrade_url(url: str) -> None:
    """``releasegate db upgrade`` for a shared database: the one place a migration runs."""
    from releasegate.store.engine import make_engine

    engine = make_engine(url, migrating=True)
    try:
        upgrade(engine)
    finally:
        engine.dispose()
