"""referrals at breach risk in the read model

Revision ID: f61148ecf8ed
Revises: 2d187ca06345
Create Date: 2026-12-01 04:43:00.267769
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f61148ecf8ed"
down_revision: str | None = "2d187ca06345"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Filled from referral.breach_risk as it arrives (no such events existed before).
    op.create_table(
        "dash_breach_risks",
        sa.Column("referral_id", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=30), nullable=False),
        sa.Column("priority", sa.String(length=20), nullable=True),
        sa.Column("due_by", sa.Date(), nullable=False),
        sa.Column("first_visit_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("referral_id"),
    )


def downgrade() -> None:
    op.drop_table("dash_breach_risks")
