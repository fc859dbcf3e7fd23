"""run_days: served runs per workflow, environment and day, for the dashboard's numbers

One row per workflow, environment and UTC day (days since 1970-01-01): how many served
runs started that day, failed, were escalated or edited, had a cost, and the sums of
cost and latency. The runs' inserts and deletes keep it from here on; the upgrade fills
it from the runs stored now, one pass over them (about 10 s per million runs on a loaded
2-core machine, measured by benchmarks/bench_web.py).

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_days",
        sa.Column("workflow", sa.String(256), nullable=False),
        sa.Column("env", sa.String(256), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("runs", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("escalated", sa.BigInteger(), nullable=False),
        sa.Column("edited", sa.BigInteger(), nullable=False),
        sa.Column("costed", sa.BigInteger(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("workflow", "env", "day", name=op.f("pk_run_days")),
    )
    op.create_index("ix_run_days_day", "run_days", ["day"], unique=False)
    sqlite = op.get_bind().dialect.name == "sqlite"
    day = (
        "CAST(started_at / 86400 AS INTEGER)"
        if sqlite
        else ("CAST(FLOOR(started_at / 86400) AS INTEGER)")
    )
    # the facts as domain/runs.py states them (frozen here, as a migration must be)
    op.execute(
        "INSERT INTO run_days (workflow, env, day, runs, errors, escalated, edited, costed,"
        " cost_usd, latency_ms)"
        f" SELECT workflow, env, {day}, COUNT(*),"
        " COALESCE(SUM(CASE WHEN status = 'error' THEN 1 ELSE 0 END), 0),"
        " COALESCE(SUM(CASE WHEN escalated THEN 1 ELSE 0 END), 0),"
        " COALESCE(SUM(CASE WHEN edited THEN 1 ELSE 0 END), 0),"
        " COUNT(cost_usd), COALESCE(SUM(cost_usd), 0), COALESCE(SUM(latency_ms), 0)"
        " FROM runs WHERE (arm IS NULL OR arm <> 'shadow') GROUP BY 1, 2, 3"
    )


def downgrade() -> None:
    op.drop_index("ix_run_days_day", table_name="run_days")
    op.drop_table("run_days")
