"""patient links: a linked patient's records are read with the surviving patient's

The table shared.patient_links maps, fed by patient.linked / patient.unlinked
(patients.events). Nothing else changes: rows keep the patient id they arrived with.

Revision ID: f5a9d3c7b812
Revises: e7c3b9a1f4d2
Create Date: 2026-12-01 19:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

from shared import patient_links

revision: str = "f5a9d3c7b812"
down_revision: str | None = "e7c3b9a1f4d2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    patient_links.create_table(op)


def downgrade() -> None:
    op.drop_table(patient_links.TABLE)
