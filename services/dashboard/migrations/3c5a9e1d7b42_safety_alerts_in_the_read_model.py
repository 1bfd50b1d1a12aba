"""safety alerts in the read model

Revision ID: 3c5a9e1d7b42
Revises: f61148ecf8ed
Create Date: 2026-12-01 05:25:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "3c5a9e1d7b42"
down_revision: str | None = "f61148ecf8ed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Filled from notes.events, a topic the read model did not read before: its consumer
    # group has no offset there yet, so it reads the topic from the beginning and the
    # alerts raised before this release arrive too.
    op.create_table(
        "dash_safety_alerts",
        sa.Column("alert_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalations", sa.Integer(), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("alert_id"),
    )


def downgrade() -> None:
    op.drop_table("dash_safety_alerts")
