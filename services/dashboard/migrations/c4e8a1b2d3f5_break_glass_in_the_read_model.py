"""break-glass uses in the read model (ids, who, when; no reason)

Revision ID: c4e8a1b2d3f5
Revises: 3c5a9e1d7b42
Create Date: 2026-12-01 06:05:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c4e8a1b2d3f5"
down_revision: str | None = "3c5a9e1d7b42"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Filled from patient.break_glass on notes.events (a rebuild reads them again).
    op.create_table(
        "dash_break_glass",
        sa.Column("access_id", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("actor_id", sa.String(length=120), nullable=False),
        sa.Column("discipline", sa.String(length=40), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("access_id"),
    )
    op.create_index("ix_dash_break_glass_opened_at", "dash_break_glass", ["opened_at"])


def downgrade() -> None:
    op.drop_table("dash_break_glass")
