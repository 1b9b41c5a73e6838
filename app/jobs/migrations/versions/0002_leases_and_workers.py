"""Job leases (which worker runs a job, when it last said so) and the workers table (each
worker's heartbeat and load, so any replica can describe the whole deployment).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.add_column("jobs", sa.Column("worker_id", sa.String(64)))
    op.add_column("jobs", sa.Column("heartbeat_at", sa.Float))
    op.create_table(
        "workers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("heartbeat_at", sa.Float, nullable=False, index=True),
        sa.Column("stats", sa.Text, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("workers")
    op.drop_column("jobs", "heartbeat_at")
    op.drop_column("jobs", "worker_id")
