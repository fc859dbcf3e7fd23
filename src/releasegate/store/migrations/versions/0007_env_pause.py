"""environments can be paused: who paused one, when and why

``pause WORKFLOW --env ENV --reason R`` sets ``paused_reason``, ``paused_by`` and
``paused_at`` on the environment's row; ``resume`` clears them. While ``paused_reason``
is set, ``resolve`` says so and the application sends every request to its human
fallback. Existing environments get NULL: not paused, nothing about them changes.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("environments") as batch:
        batch.add_column(sa.Column("paused_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("paused_by", sa.String(200), nullable=True))
        batch.add_column(sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("environments") as batch:
        batch.drop_column("paused_at")
        batch.drop_column("paused_by")
        batch.drop_column("paused_reason")
