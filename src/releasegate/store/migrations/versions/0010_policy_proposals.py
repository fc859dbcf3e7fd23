"""policy proposals: floor changes proposed, then approved by another person

``releasegate policy propose`` stores a proposal naming the policy it changes and the
policy it makes; ``policy approve`` (a workflow approver, not the proposer) records
who approved it and makes the new policy current. Existing stores get an empty table.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_proposals",
        sa.Column("proposal_id", sa.String(32), nullable=False),
        sa.Column("workflow", sa.String(200), nullable=False),
        sa.Column("env", sa.String(100), nullable=False),
        sa.Column("base_policy_id", sa.String(64), nullable=False),
        sa.Column("policy_id", sa.String(64), nullable=False),
        sa.Column("content_json", sa.Text(), nullable=False),
        sa.Column("changes_json", sa.Text(), nullable=False),
        sa.Column("proposer", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("approver", sa.String(200), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("proposal_id", name=op.f("pk_policy_proposals")),
    )
    op.create_index("ix_policy_proposals_workflow_env", "policy_proposals", ["workflow", "env"])


def downgrade() -> None:
    op.drop_index("ix_policy_proposals_workflow_env", table_name="policy_proposals")
    op.drop_table("policy_proposals")
