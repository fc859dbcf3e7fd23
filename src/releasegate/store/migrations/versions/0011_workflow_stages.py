"""workflow stages: experiment, pilot, routine, each from a handover date

``releasegate stage set WORKFLOW STAGE --date D`` appends a row: the stage, the date it
takes effect, the change and care owners named then, who set it and why, and (when
``--force`` set ``routine`` past a failing readiness checklist) which checks failed.
Existing workflows get no row: their stage reads as ``experiment``.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workflow_stages",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("workflow", sa.String(200), nullable=False),
        sa.Column("stage", sa.String(20), nullable=False),
        sa.Column("handover_date", sa.Date(), nullable=False),
        sa.Column("change_owner", sa.String(200), nullable=True),
        sa.Column("care_owner", sa.String(200), nullable=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("forced", sa.Boolean(), nullable=False),
        sa.Column("failing_json", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["workflow"],
            ["workflows.name"],
            name=op.f("fk_workflow_stages_workflow_workflows"),
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_workflow_stages")),
    )
    op.create_index(
        "ix_workflow_stages_workflow_seq", "workflow_stages", ["workflow", "seq"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_workflow_stages_workflow_seq", table_name="workflow_stages")
    op.drop_table("workflow_stages")
