"""patient links: a search by patient finds the linked patients' resources too

The table shared.patient_links maps, fed by patient.linked / patient.unlinked
(patients.events). Nothing else changes: resources keep the patient id they came with.

Revision ID: 2c7d5e9a1b40
Revises: 1ea993316f57
Create Date: 2026-12-01 19:40:00.000000
"""

from collections.abc import Sequence

from alembic import op

from shared import patient_links

revision: str = "2c7d5e9a1b40"
down_revision: str | None = "1ea993316f57"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    patient_links.create_table(op)


def downgrade() -> None:
    op.drop_table(patient_links.TABLE)
