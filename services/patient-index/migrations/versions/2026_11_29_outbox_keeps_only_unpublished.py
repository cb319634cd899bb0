"""The outbox keeps only events still to publish: the relay deletes what it published, and
the unique index on the event id, the index of unpublished rows and published_at go
(gpsoc_kit.messaging and gpsoc_kit.relay say why).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op
from gpsoc_kit.messaging import (
    OUTBOX_KEEPS_ONLY_UNPUBLISHED,
    OUTBOX_KEEPS_ONLY_UNPUBLISHED_UNDONE,
)

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in OUTBOX_KEEPS_ONLY_UNPUBLISHED:
        op.execute(statement)


def downgrade() -> None:
    for statement in OUTBOX_KEEPS_ONLY_UNPUBLISHED_UNDONE:
        op.execute(statement)
