"""The store's one translation point: URLs as users write them, timeouts, faults as StoreError."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from releasegate.domain.masking import mask_url
from releasegate.errors import InputError, StoreError
from releasegate.store import faults
from releasegate.store.engine import make_engine
from tests.conftest import PG_ADMIN, drop_pg_database, pg_database


@pytest.mark.parametrize(
    ("raw", "driver"),
    [
        ("postgres://u@h/db", "postgresql+psycopg"),
        ("postgresql://u@h/db", "postgresql+psycopg"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg"),
        ("  sqlite:////tmp/x.db ", "sqlite"),
    ],
)
def test_urls_as_users_write_them(raw: str, driver: str) -> None:
    assert faults.parse_url(raw).drivername == driver


def test_timeouts_from_the_url_then_the_environment_then_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RELEASEGATE_LOCK_TIMEOUT", "3")
    monkeypatch.delenv("RELEASEGATE_CONNECT_TIMEOUT", raising=False)
    monkeypatch.delenv("RELEASEGATE_STATEMENT_TIMEOUT", raising=False)
    url, timeouts = faults.split_timeouts(
        faults.parse_url("postgres://u:pw@h/db?statement_timeout=7&sslmode=require")
    )
    assert timeouts == faults.Timeouts(connect=5.0, statement=7.0, lock=3.0)
    assert dict(url.query) == {"sslmode": "require"}  # ours are taken out, libpq's stay
    args = faults.connect_args(url, timeouts)
    assert args == {
        "connect_timeout": 5,
        "options": "-c statement_timeout=7000 -c lock_timeout=3000",
    }
    monkeypatch.delenv("RELEASEGATE_LOCK_TIMEOUT")
    _, sqlite = faults.split_timeouts(faults.parse_url("sqlite:////tmp/x.db"))
    assert sqlite.lock == faults.DEFAULT_SQLITE_BUSY_TIMEOUT == 30.0


def test_a_bad_timeout_is_input_error() -> None:
    with pytest.raises(InputError, match="lock_timeout must be a positive number"):
        faults.split_timeouts(faults.parse_url("postgres://h/db?lock_timeout=-1"))


def test_the_password_never_shows() -> None:
    url = faults.parse_url("postgresql://rg:hunter2@db:5432/releasegate")
    assert faults.display_url(url) == "postgresql+psycopg://rg:***@db:5432/releasegate"
    assert mask_url("weird://rg:hunter2@db/x y") == "weird://rg:***@db/x y"
    assert mask_url("weird://rg:p@ss@db/x") == "weird://rg:***@db/x"  # a secret holding @


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    name = pg_database(None)
    yield f"{PG_ADMIN}/{name}"
    drop_pg_database(name)


def test_postgresql_statement_timeout_is_an_answer(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELEASEGATE_STATEMENT_TIMEOUT", "0.2")
    engine = make_engine(pg_url)
    try:
        with (
            pytest.raises(StoreError, match="store timed out: a statement ran past"),
            engine.connect() as conn,
        ):
            conn.execute(sa.text("SELECT pg_sleep(5)"))
    finally:
        engine.dispose()
