"""rollback rehearsals: one row per ``rehearse`` run, with what a crash left to undo

A rehearsal deploys a deliberately degraded variant to an environment, detects the
regression, rolls back and checks the original serves again. Its row records the
version the environment served before (``original_id``), the variant deployed, its
``state`` (``running``, ``deployed``, ``finished``, ``undone``) and result, the times to
detect and revert, and each mutation with the gate's verdict. ``active`` holds
``workflow@env`` while it runs; being unique, one rehearsal runs per environment. A
rehearsal found ``deployed`` by a later run whose process died is undone: the
environment goes back to ``original_id``. Existing stores get an empty table.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "rehearsals",
        sa.Column("rehearsal_id", sa.String(32), nullable=False),
        sa.Column("workflow", sa.String(200), nullable=False),
        sa.Column("env", sa.String(100), nullable=False),
        sa.Column("original_id", sa.String(64), nullable=False),
        sa.Column("deployed_id", sa.String(64), nullable=True),
        sa.Column("suite_id", sa.String(64), nullable=True),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("result", sa.String(20), nullable=True),
        sa.Column("active", sa.String(320), nullable=True),
        sa.Column("mutation_score", sa.Float(), nullable=True),
        sa.Column("time_to_detect_s", sa.Float(), nullable=True),
        sa.Column("time_to_revert_s", sa.Float(), nullable=True),
        sa.Column("is_restored", sa.Boolean(), nullable=True),
        sa.Column("mutations_json", sa.Text(), nullable=False),
        sa.Column("runner_json", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("started_at", ts, nullable=False),
        sa.Column("updated_at", ts, nullable=False),
        sa.Column("finished_at", ts, nullable=True),
        sa.PrimaryKeyConstraint("rehearsal_id", name=op.f("pk_rehearsals")),
        sa.UniqueConstraint("active", name=op.f("uq_rehearsals_active")),
    )
    op.create_index(
        "ix_rehearsals_workflow_env_started", "rehearsals", ["workflow", "env", "started_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_rehearsals_workflow_env_started", table_name="rehearsals")
    op.drop_table("rehearsals")
