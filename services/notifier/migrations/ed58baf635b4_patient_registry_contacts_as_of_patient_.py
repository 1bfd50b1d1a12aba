"""patient registry: contacts as of, patient links

A patient's contacts carry the registry's as_of (an older change never overwrites a
newer one), and patient_links (fed by patient.linked / patient.unlinked) lets a linked
patient be reached at the group's current contacts.

Revision ID: ed58baf635b4
Revises: c2a4f1d7e9b3
Create Date: 2026-12-01 19:17:24.447651
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared import patient_links

revision: str = "ed58baf635b4"
down_revision: str | None = "c2a4f1d7e9b3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    patient_links.create_table(op)
    with op.batch_alter_table("recipients") as batch_op:
        batch_op.add_column(sa.Column("contacts_as_of", sa.DateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("recipients") as batch_op:
        batch_op.drop_column("contacts_as_of")
    op.drop_table(patient_links.TABLE)
