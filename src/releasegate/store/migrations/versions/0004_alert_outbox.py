"""alerts as an outbox: pending, then routed or failed, with a lease and an attempt count

An alert used to be stored and then sent; a process killed in between left it unsent
for good, and the cool-down then kept it quiet. Now each alert carries its delivery
state: ``pending`` until a monitor holding its lease has sent it, ``routed`` once every
route took it, ``failed`` (with the error and the attempt count) when a route did not.
The next ``monitor`` re-sends pending and failed alerts whose lease has run out.
Alerts stored before this migration were sent, or tried, when they were raised: they
are ``routed``.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.add_column(
            sa.Column("status", sa.String(10), nullable=False, server_default="routed")
        )
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("last_error", sa.Text(), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("routed_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_alerts_status_seq", ["status", "seq"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_index("ix_alerts_status_seq")
        for name in ("routed_at", "lease_until", "last_error", "attempts", "status"):
            batch.drop_column(name)
