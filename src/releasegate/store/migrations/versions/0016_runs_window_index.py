"""runs: the (workflow, env, started_at) index also carries what windows of runs are read for

``ix_runs_window`` replaces ``ix_runs_workflow_env_started`` (the same leading columns,
so every range read it served it still serves) and adds the columns the monitor's
signals, the runbook's numbers and the review queue read of a window of runs: whether
the run served (``arm``), its facts (``status``, ``escalated``, ``edited``,
``feedback``), ``latency_ms``, ``cost_usd``, ``output_chars``, ``label`` and
``version_id``. Such a read then walks the index in time order instead of fetching each
run's row from wherever it was stored (the signals page at a million runs: 4 s to a
fraction of one). The upgrade builds it in one pass over the runs (about 4 s per
million on SQLite); the index is about half the size of the runs it covers.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

# frozen here, as a migration must be (tables.py holds the live definition)
WINDOW = [
    "workflow", "env", "started_at", "arm", "status", "escalated", "edited", "feedback",
    "latency_ms", "cost_usd", "output_chars", "label", "version_id",
]  # fmt: skip


def upgrade() -> None:
    op.create_index("ix_runs_window", "runs", WINDOW, unique=False)
    op.drop_index("ix_runs_workflow_env_started", table_name="runs")


def downgrade() -> None:
    op.create_index(
        "ix_runs_workflow_env_started", "runs", ["workflow", "env", "started_at"], unique=False
    )
    op.drop_index("ix_runs_window", table_name="runs")
