"""jobs: when a running job's process last said it was alive, read from any replica

The process running a job writes ``alive_at`` every 30 s; a job still ``running``
whose ``alive_at`` is older than two minutes is interrupted, whichever host reads it
(before, only a reader on the host that ran it could tell its process had died).

Revision ID: 0019
Revises: 0018
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("alive_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("alive_at")
