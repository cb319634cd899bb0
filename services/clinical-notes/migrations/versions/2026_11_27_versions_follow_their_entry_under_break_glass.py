"""Break-glass opens an entry's earlier versions too: entry_versions' read policy admits a
version whenever its entry is visible (the entry's own policy decides, break-glass
included). Before, a break-glass user could read an entry but not its _history.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op
from gpsoc_kit.sharing import (
    SCOPE_READ_RECORD,
    ThroughParent,
    drop_practice_policies_sql,
    practice_policies_sql,
)

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

RECORD = (SCOPE_READ_RECORD,)


def _policies(patient: ThroughParent | None) -> list[str]:
    return [*drop_practice_policies_sql("entry_versions"),
            *practice_policies_sql("entry_versions", patient_column=patient,
                                   read_scopes=RECORD, replaces=None)]


def upgrade() -> None:
    for statement in _policies(ThroughParent("clinical_entries", "entry_id")):
        op.execute(statement)


def downgrade() -> None:
    for statement in _policies(None):
        op.execute(statement)
