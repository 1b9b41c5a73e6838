"""Jobs belong to the API key that made them (its id, a digest); NULL = made on a server
without keys, or before jobs had owners: such jobs are seen by admin keys only once keys
are on. A webhook being sent records when it was claimed, so that a claim whose sender
died expires and any worker sends it again (the outbox).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.add_column("jobs", sa.Column("owner", sa.String(32)))
    op.add_column("jobs", sa.Column("webhook_claimed_at", sa.Float))
    op.create_index("ix_jobs_owner_created", "jobs", ["owner", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_owner_created", "jobs")
    op.drop_column("jobs", "webhook_claimed_at")
    op.drop_column("jobs", "owner")
