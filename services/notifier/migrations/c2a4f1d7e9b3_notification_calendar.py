"""notifications.calendar: the RFC 5545 invitation an email about visits carries

Revision ID: c2a4f1d7e9b3
Revises: 87feac166d91
Create Date: 2026-12-01 06:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = 'c2a4f1d7e9b3'
down_revision: str | None = '87feac166d91'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.add_column(sa.Column('calendar', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('notifications', schema=None) as batch_op:
        batch_op.drop_column('calendar')
