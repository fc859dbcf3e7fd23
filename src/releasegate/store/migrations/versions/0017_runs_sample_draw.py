"""runs: each run's review-sample draw, kept beside it and in the window index

The review queue samples a share of each period's runs by a hash of the seed, the run's
ISO week and its id (``domain.review_queue.sample_draw``). ``sample_draw`` keeps that
draw under the default seed, written with the run (``store.runs.with_draws``), and
``ix_runs_window`` now ends with it: a period's sample is then the runs of the period
whose draw is below the share, read from the index, instead of every run of the period
hashed in Python (the runbook's four weeks at a million runs: 260,000 hashes). The
upgrade computes the draw of every stored run (about 15 s per million runs on SQLite)
and builds the index again.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import date, timedelta

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

BATCH = 20_000

# Frozen here, as a migration must be: a copy of ``domain.review_queue.DEFAULT_SEED`` and
# ``sample_draw`` as they were at 0017 (the one place a copy is right: the live ones may
# change, this upgrade must not). tests/store/test_migrations.py checks the two still
# agree, so a change to the live draw fails a test instead of leaving stored draws stale.
_SEED = "releasegate"
_EPOCH_DAY = date(1970, 1, 1)


def _sample_draw(seed: str, workflow: str, run_id: str, started_at: float) -> float:
    iso = (_EPOCH_DAY + timedelta(days=int(started_at // 86400))).isocalendar()
    key = f"{seed}\x1f{workflow}\x1f{iso.year}-W{iso.week:02d}\x1f{run_id}".encode()
    digest = hashlib.blake2b(key, digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def _window_index(columns: Callable[[list[str]], list[str]]) -> None:
    """Build ``ix_runs_window`` again over ``columns`` of the columns it has now."""
    (now,) = [
        i for i in sa.inspect(op.get_bind()).get_indexes("runs") if i["name"] == "ix_runs_window"
    ]
    op.drop_index("ix_runs_window", table_name="runs")
    op.create_index("ix_runs_window", "runs", columns([str(c) for c in now["column_names"]]))


def upgrade() -> None:
    op.add_column("runs", sa.Column("sample_draw", sa.Float(), nullable=True))
    bind = op.get_bind()
    select = sa.text(
        "SELECT seq, run_id, workflow, started_at FROM runs WHERE seq > :after"
        " ORDER BY seq LIMIT :n"
    )
    update = sa.text("UPDATE runs SET sample_draw = :d WHERE seq = :s")
    after = 0
    while True:
        rows = bind.execute(select, {"after": after, "n": BATCH}).all()
        if not rows:
            break
        bind.execute(
            update,
            [
                {"d": _sample_draw(_SEED, wf, run_id, started), "s": seq}
                for seq, run_id, wf, started in rows
            ],
        )
        after = rows[-1][0]
    _window_index(lambda columns: [*columns, "sample_draw"])


def downgrade() -> None:
    _window_index(lambda columns: [c for c in columns if c != "sample_draw"])
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("sample_draw")
