"""referral care team: who may read a patient's referrals (triage, accept, bookings)

Revision ID: a3c1d2e4f5b6
Revises: 997e7042f40b
Create Date: 2026-12-01 05:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a3c1d2e4f5b6"
down_revision: str | None = "997e7042f40b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "referral_care_team",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("referral_id", sa.String(length=36), nullable=False),
        sa.Column("member_id", sa.String(length=120), nullable=False),
        sa.Column("discipline", sa.String(length=40), nullable=True),
        sa.Column("source", sa.String(length=40), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("left_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["referral_id"], ["referrals.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("referral_id", "member_id", name="uq_referral_care_team_member"),
    )
    op.create_index("ix_referral_care_team_patient_id", "referral_care_team", ["patient_id"])
    op.create_index("ix_referral_care_team_referral_id", "referral_care_team",
                    ["referral_id"])
    op.create_index("ix_referral_care_team_member_id", "referral_care_team", ["member_id"])


def downgrade() -> None:
    op.drop_table("referral_care_team")
