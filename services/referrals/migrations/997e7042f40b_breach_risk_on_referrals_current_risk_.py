"""breach risk on referrals: current risk, the near-due warning claim, and each risk raised

Revision ID: 997e7042f40b
Revises: 898ac3fb92be
Create Date: 2026-12-01 04:36:08.180599
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "997e7042f40b"
down_revision: str | None = "898ac3fb92be"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "referral_breach_risks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("referral_id", sa.String(length=36), nullable=False),
        sa.Column("occasion", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=30), nullable=False),
        sa.Column("due_by", sa.Date(), nullable=False),
        sa.Column("first_visit_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["referral_id"], ["referrals.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("referral_id", "occasion", name="uq_referral_breach_risks_occasion"),
    )
    with op.batch_alter_table("referral_breach_risks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_referral_breach_risks_referral_id"),
                              ["referral_id"], unique=False)

    # New columns are nullable: existing referrals carry no risk until one is detected.
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("breach_reason", sa.String(length=30), nullable=True))
        batch_op.add_column(sa.Column("breach_detected_at", sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column("breach_first_visit_at", sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column("near_due_warned_at", sa.DateTime(timezone=True),
                                      nullable=True))
        batch_op.create_index(batch_op.f("ix_referrals_breach_reason"), ["breach_reason"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("referrals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_referrals_breach_reason"))
        batch_op.drop_column("near_due_warned_at")
        batch_op.drop_column("breach_first_visit_at")
        batch_op.drop_column("breach_detected_at")
        batch_op.drop_column("breach_reason")

    with op.batch_alter_table("referral_breach_risks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_referral_breach_risks_referral_id"))

    op.drop_table("referral_breach_risks")
