"""The outbox's event id loses its unique index (gpsoc_kit.messaging.outbox_table says why).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op
from gpsoc_kit.messaging import DROP_OUTBOX_ID_INDEX, RESTORE_OUTBOX_ID_INDEX

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(DROP_OUTBOX_ID_INDEX)


def downgrade() -> None:
    op.execute(RESTORE_OUTBOX_ID_INDEX)
