"""runs and alerts: columns as wide as what the run parser accepts

A run may carry names of up to 256 characters and counts up to 2**53
(``domain/runs.py``). PostgreSQL enforced the narrower 0002 columns and failed the
whole import with a driver error instead of landing the run; SQLite never enforced them.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

NAMES = {"run_id": 100, "workflow": 200, "env": 100, "model": 200, "operation": 100, "label": 200}
COUNTS = ("tokens_in", "tokens_out", "retries")
ALERT_NAMES = {"workflow": 200, "env": 100}  # an alert names the run's workflow and env


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        for name, before in NAMES.items():
            batch.alter_column(name, type_=sa.String(256), existing_type=sa.String(before))
        for name in COUNTS:
            batch.alter_column(name, type_=sa.BigInteger(), existing_type=sa.Integer())
    with op.batch_alter_table("alerts") as batch:
        for name, before in ALERT_NAMES.items():
            batch.alter_column(name, type_=sa.String(256), existing_type=sa.String(before))


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        for name, before in ALERT_NAMES.items():
            batch.alter_column(name, type_=sa.String(before), existing_type=sa.String(256))
    with op.batch_alter_table("runs") as batch:
        for name in COUNTS:
            batch.alter_column(name, type_=sa.Integer(), existing_type=sa.BigInteger())
        for name, before in NAMES.items():
            batch.alter_column(name, type_=sa.String(before), existing_type=sa.String(256))
