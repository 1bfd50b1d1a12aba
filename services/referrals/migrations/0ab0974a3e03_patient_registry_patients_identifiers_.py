"""patient registry: patients, identifiers, possible-same tasks

PainCare's own patient id with the identifiers others know the patient by (each in its
system), demographics and contacts in one place with provenance and as_of, and the
possible-same tasks a scheduler settles; each referral keeps the identifiers it named.
Referrals received before this revision keep their patient_id as it was (the referrer's
string); they have no registry row.

Revision ID: 0ab0974a3e03
Revises: a3c1d2e4f5b6
Create Date: 2026-12-01 18:45:08.339890
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0ab0974a3e03"
down_revision: str | None = "a3c1d2e4f5b6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "patients",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("date_of_birth", sa.Date(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("phone", sa.String(length=40), nullable=True),
        sa.Column("postcode", sa.String(length=12), nullable=True),
        sa.Column("preferred_channel", sa.String(length=10), nullable=False),
        sa.Column("language", sa.String(length=10), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("linked_to", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_patients_date_of_birth", "patients", ["date_of_birth"])
    op.create_index("ix_patients_linked_to", "patients", ["linked_to"])
    op.create_table(
        "patient_identifiers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("system", sa.String(length=260), nullable=False),
        sa.Column("value", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("system", "value", name="uq_patient_identifiers"),
    )
    op.create_index("ix_patient_identifiers_patient_id", "patient_identifiers", ["patient_id"])
    op.create_table(
        "possible_same_patients",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("other_patient_id", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_by", sa.String(length=120), nullable=True),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["other_patient_id"], ["patients.id"]),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("patient_id", "other_patient_id", name="uq_possible_same_pair"),
    )
    for column in ("other_patient_id", "patient_id", "status"):
        op.create_index(f"ix_possible_same_patients_{column}", "possible_same_patients",
                        [column])
    with op.batch_alter_table("referrals") as batch_op:
        batch_op.add_column(sa.Column("patient_identifiers", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("referrals") as batch_op:
        batch_op.drop_column("patient_identifiers")
    op.drop_table("possible_same_patients")
    op.drop_table("patient_identifiers")
    op.drop_table("patients")
