"""provider capacity from scheduling's events

Revision ID: 2d187ca06345
Revises: 807b22869597
Create Date: 2026-11-25 15:26:00.044019
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2d187ca06345"
down_revision: str | None = "807b22869597"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Filled by provider.capacity_changed; until one arrives for a provider the figures
    # fall back to DASHBOARD_PROVIDER_WEEKLY_HOURS and say "capacity unknown".
    op.create_table(
        "dash_provider_capacity",
        sa.Column("provider_id", sa.String(length=64), nullable=False),
        sa.Column("discipline", sa.String(length=40), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("blocks", sa.JSON(), nullable=False),
        sa.Column("closed", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("provider_id"),
    )


def downgrade() -> None:
    op.drop_table("dash_provider_capacity")
