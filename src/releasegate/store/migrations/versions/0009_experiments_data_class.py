"""workflows: experiment retention and data class; experiments' collected eval data

``experiments_retention_days`` (NULL: experiments never expire) and ``data_class``
(``internal`` unless the workflow file says otherwise) are workflow metadata, never in a
version id. ``eval_runs.status`` may now read ``collected``: ``releasegate gc`` removed
an expired experiment's outputs and scores, and kept the eval's summary row.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("workflows") as batch:
        batch.add_column(sa.Column("experiments_retention_days", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("data_class", sa.String(20), nullable=False, server_default="internal")
        )


def downgrade() -> None:
    with op.batch_alter_table("workflows") as batch:
        batch.drop_column("data_class")
        batch.drop_column("experiments_retention_days")
