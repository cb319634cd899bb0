"""Searches that row-level security lets use an index.

Under FORCE'd RLS only leakproof operators may drive an index scan: LIKE and pg_trgm's
% are not, so family/postcode prefixes and fuzzy names scanned a practice's whole list.
Prefix columns become COLLATE "C" (prefixes are then exact byte ranges), the first given
name gets a Soundex key of its own, and the trigram index that could never be used goes.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute('ALTER TABLE patients ALTER COLUMN family_normalised TYPE TEXT COLLATE "C"')
    op.execute('ALTER TABLE patients ALTER COLUMN given_normalised TYPE TEXT COLLATE "C"')
    op.execute('ALTER TABLE patients ALTER COLUMN postal_code TYPE VARCHAR(10) COLLATE "C"')
    op.execute("ALTER TABLE patients ADD COLUMN given_soundex VARCHAR(4) NOT NULL DEFAULT ''")
    op.execute("ALTER TABLE patients ALTER COLUMN given_soundex DROP DEFAULT")
    # Existing rows: the same key as the domain computes (first given name), via the
    # fuzzystrmatch Soundex, which agrees with ours for plain ASCII names.
    op.execute("CREATE EXTENSION IF NOT EXISTS fuzzystrmatch")
    op.execute(
        "UPDATE patients SET given_soundex = coalesce(soundex(split_part(given_normalised, ' ', 1)), '')"
    )
    op.execute(
        "CREATE INDEX ix_patients_practice_given_soundex ON patients (practice_code, given_soundex)"
    )
    op.execute("DROP INDEX IF EXISTS ix_patients_name_trgm")


def downgrade() -> None:
    op.execute(
        "CREATE INDEX ix_patients_name_trgm ON patients USING gin (name_text gin_trgm_ops)"
    )
    op.execute("DROP INDEX IF EXISTS ix_patients_practice_given_soundex")
    op.execute("ALTER TABLE patients DROP COLUMN given_soundex")
