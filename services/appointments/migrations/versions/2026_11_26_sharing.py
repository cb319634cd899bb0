"""Sharing: the access_grants projection, and policies that open the appointment book
to linked practices (see and book into shared slots) and appointments to read-record
agreements and break-glass grants.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op
from gpsoc_kit.sharing import (
    SCOPE_BOOK,
    SCOPE_READ_RECORD,
    TablePlan,
    sharing_downgrade_sql,
    sharing_upgrade_sql,
)

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BOTH = (SCOPE_READ_RECORD, SCOPE_BOOK)
RECORD = (SCOPE_READ_RECORD,)
BOOK = (SCOPE_BOOK,)

# table: (patient column for break-glass, scopes that open reads, scopes that open writes)
TABLES: TablePlan = {
    "staff": (None, BOOK, ()),
    "patients": ("id", BOTH, ()),
    "schedules": (None, BOOK, ()),
    "rota_sessions": (None, BOOK, ()),
    "slots": (None, BOOK, BOOK),
    "appointments": ("patient_id", BOTH, BOOK),
    "appointment_versions": (None, BOTH, BOOK),
    "appointment_slots": (None, BOOK, BOOK),
    "idempotency_keys": (None, BOOK, BOOK),
}


def upgrade() -> None:
    for statement in sharing_upgrade_sql(TABLES):
        op.execute(statement)


def downgrade() -> None:
    for statement in sharing_downgrade_sql(TABLES):
        op.execute(statement)
