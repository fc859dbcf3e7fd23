"""Shared fixtures: a real store on SQLite and on PostgreSQL, and small workflow projects.

PostgreSQL tests clone a per-session template database that already has the
schema, so each test gets an empty, migrated database in a few milliseconds.
Where PostgreSQL is unreachable they skip locally but fail under CI=true, so a
green CI always means both dialects ran.
"""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings

from releasegate.store.engine import Location, Store
from releasegate.store.migrate import upgrade

# CI shares two cores with other jobs: a slow draw or example there is the machine, not a
# bug, and a health check that fails on it would make the suite flaky, not stricter.
settings.register_profile(
    "shared-cores", deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("shared-cores")

# Ctrl-C as a terminal delivers it, however pytest was started: a shell without job
# control starts a background job with SIGINT ignored, and every command a test starts
# would inherit that, so the tests of what Ctrl-C keeps would see nothing interrupted.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True, scope="session")
def _private_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The price cache goes to a temp dir, never the user's ~/.cache (subprocesses inherit it)."""
    before = os.environ.get("RELEASEGATE_CACHE_DIR")
    os.environ["RELEASEGATE_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if before is None:
        os.environ.pop("RELEASEGATE_CACHE_DIR", None)
    else:
        os.environ["RELEASEGATE_CACHE_DIR"] = before


PG_ADMIN = os.environ.get("RELEASEGATE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")


_ADMIN: sa.Engine | None = None


def _admin() -> sa.Engine:
    """One admin engine for the session, so no connection is left for the GC to close."""
    global _ADMIN
    if _ADMIN is None:
        _ADMIN = sa.create_engine(
            f"{PG_ADMIN}/postgres", isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
        )
    return _ADMIN


def pg_available() -> bool:
    try:
        with _admin().connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    if not pg_available():
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN}")
        pytest.skip("PostgreSQL not reachable")
    name = f"rg_tpl_{uuid.uuid4().hex[:10]}"
    admin = _admin()
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine = sa.create_engine(f"{PG_ADMIN}/{name}")
    upgrade(engine)
    engine.dispose()
    yield name
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def pg_database(template: str | None) -> str:
    name = f"rg_{uuid.uuid4().hex[:12]}"
    with _admin().connect() as conn:
        tpl = f' TEMPLATE "{template}"' if template else ""
        conn.execute(sa.text(f'CREATE DATABASE "{name}"{tpl}'))
    return name


def drop_pg_database(name: str) -> None:
    with _admin().connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextlib.contextmanager
def dialect_store(
    request: pytest.FixtureRequest, root: Path
) -> Iterator[tuple[str, dict[str, str]]]:
    """(store URL, environment for the CLI) of a module-scoped store parametrized by
    ``request.param`` (``sqlite``: under ``root``; ``postgresql``: a fresh database from the
    template, dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{root / '.releasegate' / 'releasegate.db'}", {}
        return
    name = pg_database(request.getfixturevalue("pg_template"))
    url = f"{PG_ADMIN}/{name}"
    try:
        yield url, {"RELEASEGATE_DATABASE_URL": url}
    finally:
        drop_pg_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_url(dialect: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    if dialect == "sqlite":
        yield f"sqlite:///{tmp_path / '.releasegate' / 'releasegate.db'}"
        return
    template = request.getfixturevalue("pg_template")
    name = pg_database(template)
    yield f"{PG_ADMIN}/{name}"
    drop_pg_database(name)


@pytest.fixture
def store(store_url: str, tmp_path: Path) -> Iterator[Store]:
    home = tmp_path / ".releasegate"
    home.mkdir(exist_ok=True)
    loc = Location(
        url=store_url,
        blob_root=home / "blobs",
        is_embedded=store_url.startswith("sqlite"),
        home=home,
    )
    s = Store.open(location=loc)
    yield s
    s.close()
