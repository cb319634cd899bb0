"""Break-glass opens an appointment's earlier versions too: appointment_versions' read
policy admits a version whenever its appointment is visible (the appointment's own policy
decides, break-glass included). Before, a break-glass user could read an appointment but
not its _history.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op
from gpsoc_kit.sharing import (
    SCOPE_BOOK,
    SCOPE_READ_RECORD,
    ThroughParent,
    drop_practice_policies_sql,
    practice_policies_sql,
)

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _policies(patient: ThroughParent | None) -> list[str]:
    return [*drop_practice_policies_sql("appointment_versions"),
            *practice_policies_sql("appointment_versions", patient_column=patient,
                                   read_scopes=(SCOPE_READ_RECORD, SCOPE_BOOK),
                                   write_scopes=(SCOPE_BOOK,), replaces=None)]


def upgrade() -> None:
    for statement in _policies(ThroughParent("appointments", "appointment_id")):
        op.execute(statement)


def downgrade() -> None:
    for statement in _policies(None):
        op.execute(statement)
