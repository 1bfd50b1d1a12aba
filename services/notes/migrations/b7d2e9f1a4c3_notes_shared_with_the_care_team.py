"""notes shared with the care team: a sensitive note's author shares it (when, by whom)

Revision ID: b7d2e9f1a4c3
Revises: 86574e97202d
Create Date: 2026-12-01 06:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b7d2e9f1a4c3"
down_revision: str | None = "86574e97202d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # plain ADD COLUMN (SQLite has it): a batch copy of `notes` would trip the foreign
    # keys that point at it
    op.add_column("notes", sa.Column("shared_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("notes", sa.Column("shared_by", sa.String(length=64), nullable=True))


def downgrade() -> None:
    # plain DROP COLUMN (SQLite 3.35+, PostgreSQL), not a batch copy of `notes`
    op.execute("ALTER TABLE notes DROP COLUMN shared_by")
    op.execute("ALTER TABLE notes DROP COLUMN shared_at")
