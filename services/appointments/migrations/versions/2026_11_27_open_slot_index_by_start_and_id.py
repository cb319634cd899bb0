"""The open-slot index orders by (start, id): a free-slot page comes off it with no sort.

The search orders by start then id (a stable order for paging). With the id in the index
a page stops after its rows; without it PostgreSQL read every open slot of the window to
sort them when its plan is the generic one of a prepared statement.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

OPEN = "WHERE status IN ('free', 'busy-tentative')"


def upgrade() -> None:
    op.execute(f"CREATE INDEX ix_slots_practice_open_start_id ON slots "
               f"(practice_code, start_at, id) {OPEN}")
    op.execute("DROP INDEX ix_slots_practice_open_start")


def downgrade() -> None:
    op.execute(f"CREATE INDEX ix_slots_practice_open_start ON slots (practice_code, start_at) {OPEN}")
    op.execute("DROP INDEX ix_slots_practice_open_start_id")
