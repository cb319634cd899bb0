"""Schedule keeps what UK Core marks must-support: specialty, the Location actor, planningHorizon.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

STATEMENTS = [
    "ALTER TABLE schedules ADD COLUMN location_reference TEXT",
    "ALTER TABLE schedules ADD COLUMN specialty JSONB",
    "ALTER TABLE schedules ADD COLUMN planning_horizon JSONB",
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    for column in ("planning_horizon", "specialty", "location_reference"):
        op.execute(f"ALTER TABLE schedules DROP COLUMN IF EXISTS {column}")
