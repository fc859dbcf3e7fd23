"""Transient write conflicts are retried; real refusals and lasting faults are not."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa

from releasegate.errors import (
    StaleAliasError,
    StoreConflictError,
    StoreError,
    WriteConflictError,
)
from releasegate.release import retry
from releasegate.store.engine import make_engine
from tests.conftest import PG_ADMIN, drop_pg_database, pg_database


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry, "BASE_DELAY", 0.0)


def flaky(failures: list[Exception]) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if failures:
            raise failures.pop(0)
        return "done"

    return calls, fn


def test_a_conflict_is_retried_until_it_goes_away() -> None:
    calls, fn = flaky([StoreConflictError("deadlock"), WriteConflictError("same row")])
    assert retry.retrying(fn) == "done"
    assert len(calls) == 3


def test_a_lasting_conflict_surfaces_after_four_tries() -> None:
    calls, fn = flaky([StoreConflictError(f"busy {i}") for i in range(10)])
    with pytest.raises(StoreConflictError, match="busy 3"):
        retry.retrying(fn)
    assert len(calls) == retry.TRIES == 4


@pytest.mark.parametrize(
    "answer", [StaleAliasError("moved since the gate"), StoreError("store is read-only")]
)
def test_a_refusal_or_a_store_fault_is_an_answer_at_once(answer: Exception) -> None:
    calls, fn = flaky([answer])
    with pytest.raises(type(answer)):
        retry.retrying(fn)
    assert len(calls) == 1


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    name = pg_database(None)
    yield f"{PG_ADMIN}/{name}"
    drop_pg_database(name)


def test_a_real_postgresql_deadlock_is_a_conflict_to_retry(pg_url: str) -> None:
    engine = make_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (id int PRIMARY KEY, n int)"))
        conn.execute(sa.text("INSERT INTO t VALUES (1, 0), (2, 0)"))
    errors: list[BaseException] = []
    first_locked = threading.Event()
    second_locked = threading.Event()

    def writer(mine: int, other: int, locked: threading.Event, wait: threading.Event) -> None:
        try:
            with engine.begin() as conn:
                conn.execute(sa.text("UPDATE t SET n = n + 1 WHERE id = :i"), {"i": mine})
                locked.set()
                wait.wait(30)
                conn.execute(sa.text("UPDATE t SET n = n + 1 WHERE id = :i"), {"i": other})
        except BaseException as exc:  # noqa: BLE001 (asserted below)
            errors.append(exc)

    threads = [
        threading.Thread(target=writer, args=(1, 2, first_locked, second_locked)),
        threading.Thread(target=writer, args=(2, 1, second_locked, first_locked)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    engine.dispose()
    assert len(errors) == 1 and isinstance(errors[0], StoreConflictError), errors
    assert errors[0].message.startswith("store busy: deadlock with another writer")
