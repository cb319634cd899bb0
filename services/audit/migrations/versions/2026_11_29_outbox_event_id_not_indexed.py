"""The outbox's event id loses its unique index (gpsoc_kit.messaging.outbox_table says why).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op
from gpsoc_kit.messaging import DROP_OUTBOX_ID_INDEX, RESTORE_OUTBOX_ID_INDEX

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(DROP_OUTBOX_ID_INDEX)


def downgrade() -> None:
    op.execute(RESTORE_OUTBOX_ID_INDEX)
