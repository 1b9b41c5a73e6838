"""Jobs belong to the API key that made them (its id, a digest); NULL = made on a server
without keys, or before jobs had owners: such jobs are seen by admin keys only once keys
are on.

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
    op.create_index("ix_jobs_owner_created", "jobs", ["owner", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_owner_created", "jobs")
    op.drop_column("jobs", "owner")
