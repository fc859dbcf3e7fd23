"""Schema discipline: one head, migrations equal the metadata, snapshots per dialect, refusals."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from releasegate.errors import SchemaOutdatedError
from releasegate.store.engine import SCHEMA_HEAD, Location, Store
from releasegate.store.migrate import heads, revisions, upgrade
from releasegate.store.tables import metadata
from tests.conftest import PG_ADMIN, drop_pg_database, pg_database

SNAPSHOTS = Path(__file__).parent / "schemas"


def schema_text(engine: sa.Engine) -> str:
    """A stable, reviewable rendering of what the migrations built."""
    insp = sa.inspect(engine)
    lines = []
    for table in sorted(insp.get_table_names()):
        lines.append(f"TABLE {table}")
        for col in insp.get_columns(table):
            null = "NULL" if col["nullable"] else "NOT NULL"
            lines.append(f"  {col['name']} {str(col['type']).upper()} {null}")
        pk = insp.get_pk_constraint(table)
        lines.append(f"  PRIMARY KEY ({', '.join(pk['constrained_columns'])})")
        for ix in sorted(insp.get_indexes(table), key=lambda i: str(i["name"])):
            unique = "UNIQUE " if ix.get("unique") else ""
            lines.append(
                f"  {unique}INDEX {ix['name']} ({', '.join(map(str, ix['column_names']))})"
            )
        for fk in sorted(insp.get_foreign_keys(table), key=lambda f: str(f["name"])):
            lines.append(
                f"  FOREIGN KEY ({', '.join(fk['constrained_columns'])}) -> "
                f"{fk['referred_table']}({', '.join(fk['referred_columns'])})"
            )
    return "\n".join(lines) + "\n"


def test_single_head_and_code_agree() -> None:
    assert heads() == [SCHEMA_HEAD]


def test_revisions_come_from_alembic_in_sequence() -> None:
    walked = revisions()
    assert walked == [f"{n:04d}" for n in range(1, len(walked) + 1)]
    assert walked[-1] == SCHEMA_HEAD


def test_migrations_build_exactly_the_metadata(store: Store, dialect: str) -> None:
    with store.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diffs == [], f"the migrations and tables.py disagree: {diffs}"


def test_schema_snapshot(store: Store, dialect: str) -> None:
    """A missing snapshot fails like a changed one: CI never writes its own expectation.
    ``RELEASEGATE_WRITE_SNAPSHOTS=1`` writes it, for a developer to review and commit."""
    snapshot = SNAPSHOTS / f"{dialect}.txt"
    actual = schema_text(store.engine)
    how_to_fix = (
        f"HOW TO FIX: if this is intended, add a migration (alembic revision --rev-id NNNN), "
        "then run RELEASEGATE_WRITE_SNAPSHOTS=1 pytest tests/store/test_migrations.py -k snapshot "
        f"to write {snapshot}, review its diff and commit both."
    )
    if os.environ.get("RELEASEGATE_WRITE_SNAPSHOTS") == "1":
        snapshot.write_text(actual)
    assert snapshot.exists(), f"the {dialect} schema has no snapshot. {how_to_fix}"
    assert actual == snapshot.read_text(), f"the {dialect} schema changed. {how_to_fix}"


def test_postgres_refuses_an_outdated_schema_until_upgraded(
    pg_template: str,
    tmp_path: Path,
) -> None:
    name = pg_database(None)
    try:
        loc = Location(
            url=f"{PG_ADMIN}/{name}", blob_root=tmp_path / "blobs", is_embedded=False, home=tmp_path
        )
        with pytest.raises(SchemaOutdatedError) as err:
            Store.open(location=loc)
        assert "releasegate db upgrade" in str(err.value)
        engine = sa.create_engine(loc.url)
        upgrade(engine)
        engine.dispose()
        Store.open(location=loc).close()
    finally:
        drop_pg_database(name)


def test_a_store_newer_than_the_code_says_upgrade_releasegate(tmp_path: Path) -> None:
    loc = Location(
        url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        blob_root=tmp_path / "b",
        is_embedded=True,
        home=tmp_path,
    )
    Store.open(location=loc).close()
    engine = sa.create_engine(loc.url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0999'"))
    engine.dispose()
    with pytest.raises(SchemaOutdatedError, match="newer than this releasegate"):
        Store.open(location=loc)


def test_the_embedded_store_creates_itself_in_wal_mode(tmp_path: Path) -> None:
    loc = Location(
        url=f"sqlite:///{tmp_path / 'rg' / 'db.sqlite'}",
        blob_root=tmp_path / "b",
        is_embedded=True,
        home=tmp_path / "rg",
    )
    store = Store.open(location=loc)
    with store.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    assert store.schema_revision() == SCHEMA_HEAD
    store.close()


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"], indirect=True)
def test_an_older_store_upgrades_with_its_data(dialect: str, tmp_path: Path) -> None:
    """A 0001 store holding a workflow opens after 0002 with the workflow intact."""
    name = None
    if dialect == "postgresql":
        name = pg_database(None)
        url = f"{PG_ADMIN}/{name}"
    else:
        url = f"sqlite:///{tmp_path / 'old.sqlite'}"
    try:
        engine = sa.create_engine(url)
        upgrade(engine, "0001")
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO workflows (name, description, stakes, owners_json,"
                    " environments_json, created_at, updated_at) VALUES ('triage', '', 'low',"
                    " '{}', '[]', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
        upgrade(engine)
        with engine.connect() as conn:
            row = conn.execute(sa.text("SELECT name, monitor_json FROM workflows")).one()
            runs = conn.execute(sa.text("SELECT count(*) FROM runs")).scalar()
        engine.dispose()
        assert tuple(row) == ("triage", None)
        assert runs == 0
    finally:
        if name:
            drop_pg_database(name)


def test_0017_gives_every_stored_run_its_draw_and_goes_back(store: Store) -> None:
    """Runs stored before 0017 get the draw a run stored now gets (a run without one would
    never be in the review queue's sample), and its downgrade drops it again."""
    from alembic import command
    from alembic.config import Config

    from releasegate.domain.review_queue import DEFAULT_SEED, sample_draw
    from releasegate.store.migrate import MIGRATIONS
    from releasegate.store.runs import RunRepo
    from tests.store.test_run_days import runs

    with store.write() as conn:
        assert RunRepo(conn).add(runs(30), received_at=1.0).landed == 30
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with store.engine.connect() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0016")
        conn.commit()
        columns = {c["name"] for c in sa.inspect(conn).get_columns("runs")}
    assert "sample_draw" not in columns
    upgrade(store.engine)
    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT run_id, workflow, started_at, sample_draw FROM runs")
        ).all()
        (window,) = [
            i for i in sa.inspect(conn).get_indexes("runs") if i["name"] == "ix_runs_window"
        ]
    assert len(rows) == 30
    assert all(d == sample_draw(DEFAULT_SEED, wf, run, at) for run, wf, at, d in rows)
    assert window["column_names"][-1] == "sample_draw"


def test_0017_froze_the_draw_it_fills_and_it_is_still_the_live_one() -> None:
    """0017 keeps its own copy of the sample draw (a migration must not change when the
    domain does), and that copy still gives what ``sample_draw`` gives a run stored now:
    were the live draw changed, old runs' stored draws would disagree with new ones and
    drop out of the review sample without a word; this fails first."""
    import ast
    import importlib.util
    from datetime import UTC, datetime

    from releasegate.domain.review_queue import DEFAULT_SEED, sample_draw
    from releasegate.store.migrate import MIGRATIONS

    path = MIGRATIONS / "versions" / "0017_runs_sample_draw.py"
    imported = {
        n.module or ""
        for n in ast.walk(ast.parse(path.read_text()))
        if isinstance(n, ast.ImportFrom)
    }
    assert not [m for m in imported if m.startswith("releasegate")]
    spec = importlib.util.spec_from_file_location("migration_0017", path)
    assert spec and spec.loader
    frozen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(frozen)
    assert frozen._SEED == DEFAULT_SEED
    days = [datetime(y, m, d, tzinfo=UTC).timestamp() for y, m, d in [
        (1970, 1, 1), (2020, 12, 31), (2021, 1, 3), (2021, 1, 4), (2024, 12, 30),
        (2026, 12, 4), (2027, 1, 1), (2038, 1, 19),
    ]]  # fmt: skip
    times = [t + s for t in days for s in (0.0, 0.5, 86399.999, 3 * 86400 + 7)]
    for seed in (DEFAULT_SEED, "other", ""):
        for workflow in ("router", "billing", "é-flow"):
            for i, at in enumerate(times):
                run = f"run-{i:04d}" if i % 2 else f"{i:x}" * 8
                assert frozen._sample_draw(seed, workflow, run, at) == sample_draw(
                    seed, workflow, run, at
                ), (seed, workflow, run, at)
