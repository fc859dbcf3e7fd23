"""run_reviews: the human review queue's reviews, one per run and reviewer

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_reviews",
        sa.Column("review_id", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(256), nullable=False),
        sa.Column("workflow", sa.String(256), nullable=False),
        sa.Column("env", sa.String(256), nullable=False),
        sa.Column("version_id", sa.String(100), nullable=False),
        sa.Column("run_started_at", sa.Float(), nullable=False),
        sa.Column("reviewer", sa.String(200), nullable=False),
        sa.Column("verdict", sa.String(10), nullable=False),
        sa.Column("expected", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("reasons_json", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("case_id", sa.String(200), nullable=True),
        sa.Column("case_suite_id", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("review_id", name=op.f("pk_run_reviews")),
        sa.UniqueConstraint("run_id", "reviewer", name=op.f("uq_run_reviews_run_id")),
    )
    op.create_index(
        "ix_run_reviews_workflow_env_started",
        "run_reviews",
        ["workflow", "env", "run_started_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_run_reviews_workflow_env_started", table_name="run_reviews")
    op.drop_table("run_reviews")
