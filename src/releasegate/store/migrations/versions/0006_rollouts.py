"""rollouts, and the arm that served each run

A progressive rollout (``promote --canary``) is one ``rollouts`` row: the stable and the
canary version, the ramp, the step it is at, its state and the evidence its checks have
gathered. ``active`` holds ``workflow@env`` while it runs and NULL once it ended; being
unique, it lets one rollout run per environment, whoever starts it. ``runs.arm`` records
whether the stable or the canary arm of a rollout served a run; runs stored before (and
runs outside a rollout) have NULL, and nothing about them changes.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "rollouts",
        sa.Column("rollout_id", sa.String(32), nullable=False),
        sa.Column("workflow", sa.String(200), nullable=False),
        sa.Column("env", sa.String(100), nullable=False),
        sa.Column("stable_id", sa.String(64), nullable=False),
        sa.Column("canary_id", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(10), nullable=False),
        sa.Column("steps_json", sa.Text(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("active", sa.String(320), nullable=True),
        sa.Column("policy_json", sa.Text(), nullable=False),
        sa.Column("evidence_json", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("started_at", ts, nullable=False),
        sa.Column("updated_at", ts, nullable=False),
        sa.Column("step_started_at", ts, nullable=False),
        sa.PrimaryKeyConstraint("rollout_id", name=op.f("pk_rollouts")),
        sa.UniqueConstraint("active", name=op.f("uq_rollouts_active")),
    )
    op.create_index(
        "ix_rollouts_workflow_env_started", "rollouts", ["workflow", "env", "started_at"]
    )
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("arm", sa.String(10), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("arm")
    op.drop_index("ix_rollouts_workflow_env_started", table_name="rollouts")
    op.drop_table("rollouts")
