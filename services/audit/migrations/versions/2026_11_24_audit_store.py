"""The audit store: hash-chained, append-only audit records, the chain head, outbox, inbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from alembic import op
from gpsoc_kit.migrations import tenant_rls_sql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen DDL: later changes to adapters/tables.py need a new migration, not an edit here.
STATEMENTS = [
    """
CREATE TABLE audit_records (
    seq BIGINT NOT NULL,
    id UUID NOT NULL,
    event_id VARCHAR(200) NOT NULL,
    source TEXT NOT NULL,
    practice_code VARCHAR(10) NOT NULL,
    agent_id TEXT,
    role_code VARCHAR(20),
    patient_ids TEXT[] NOT NULL,
    resource_refs TEXT[] NOT NULL,
    action VARCHAR(1) NOT NULL,
    outcome VARCHAR(2) NOT NULL,
    recorded_at TIMESTAMP WITH TIME ZONE NOT NULL,
    request_id TEXT,
    trace_id TEXT,
    break_glass_reason TEXT,
    stored_at TIMESTAMP WITH TIME ZONE NOT NULL,
    audit_event TEXT NOT NULL,
    previous_hash VARCHAR(64) NOT NULL,
    hash VARCHAR(64) NOT NULL,
    CONSTRAINT pk_audit_records PRIMARY KEY (seq),
    CONSTRAINT uq_audit_records_id UNIQUE (id),
    CONSTRAINT uq_audit_records_event_id UNIQUE (event_id)
)
    """,
    "CREATE INDEX ix_audit_records_practice_recorded ON audit_records (practice_code, recorded_at)",
    "CREATE INDEX ix_audit_records_practice_agent ON audit_records (practice_code, agent_id, recorded_at)",
    "CREATE INDEX ix_audit_records_patient_ids ON audit_records USING gin (patient_ids)",
    """
CREATE TABLE chain_head (
    id SMALLINT NOT NULL,
    seq BIGINT NOT NULL,
    hash VARCHAR(64) NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL,
    CONSTRAINT pk_chain_head PRIMARY KEY (id),
    CONSTRAINT ck_chain_head_single_row CHECK (id = 1)
)
    """,
    "INSERT INTO chain_head (id, seq, hash, updated_at) VALUES (1, 0, repeat('0', 64), now())",
    """
CREATE TABLE inbox (
    consumer_group VARCHAR(200) NOT NULL,
    event_id VARCHAR(200) NOT NULL,
    event_type VARCHAR(200) NOT NULL,
    received_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_inbox PRIMARY KEY (consumer_group, event_id)
)
    """,
    """
CREATE TABLE outbox (
    seq BIGINT GENERATED ALWAYS AS IDENTITY,
    id UUID NOT NULL,
    topic VARCHAR(200) NOT NULL,
    message_key TEXT NOT NULL,
    payload JSONB NOT NULL,
    practice_code VARCHAR(10) NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    published_at TIMESTAMP WITH TIME ZONE,
    CONSTRAINT pk_outbox PRIMARY KEY (seq),
    CONSTRAINT uq_outbox_id UNIQUE (id)
)
    """,
    "CREATE INDEX ix_outbox_unpublished ON outbox (seq) WHERE published_at IS NULL",
]

# Append-only, enforced by the database whoever connects: privileges stop the app
# role, and the triggers stop everyone else short of a superuser who disables them
# (which the hash chain then exposes).
APPEND_ONLY = [
    """
CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % refused: the audit trail is append-only', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$
    """,
    """
CREATE TRIGGER audit_records_append_only BEFORE UPDATE OR DELETE ON audit_records
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()
    """,
    """
CREATE TRIGGER audit_records_no_truncate BEFORE TRUNCATE ON audit_records
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()
    """,
    """
CREATE TRIGGER chain_head_kept BEFORE DELETE ON chain_head
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()
    """,
    """
CREATE TRIGGER chain_head_no_truncate BEFORE TRUNCATE ON chain_head
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()
    """,
    # A record may only be appended right after the chain head...
    """
CREATE FUNCTION audit_records_follow_head() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    head chain_head%ROWTYPE;
BEGIN
    SELECT * INTO head FROM chain_head WHERE id = 1;
    IF NEW.seq <> head.seq + 1 OR NEW.previous_hash <> head.hash THEN
        RAISE EXCEPTION 'audit record % does not follow the chain head (seq %)', NEW.seq, head.seq
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$
    """,
    """
CREATE TRIGGER audit_records_follow_head BEFORE INSERT ON audit_records
    FOR EACH ROW EXECUTE FUNCTION audit_records_follow_head()
    """,
    # ...and the head may only move one step, onto the record just appended. It runs
    # as the owner (SECURITY DEFINER) so it sees that record whatever practice is set.
    """
CREATE FUNCTION chain_head_advance_by_one() RETURNS trigger LANGUAGE plpgsql
    SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF NEW.id <> OLD.id OR NEW.seq <> OLD.seq + 1 OR NOT EXISTS (
        SELECT 1 FROM audit_records WHERE seq = NEW.seq AND hash = NEW.hash
    ) THEN
        RAISE EXCEPTION 'the chain head only advances onto the record appended after it'
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$
    """,
    """
CREATE TRIGGER chain_head_advance_by_one BEFORE UPDATE ON chain_head
    FOR EACH ROW EXECUTE FUNCTION chain_head_advance_by_one()
    """,
    # Deployments grant the app role SELECT, INSERT, UPDATE, DELETE on new tables by
    # default privileges; take back everything but SELECT and INSERT on the records,
    # and everything but SELECT and UPDATE (needed by SELECT ... FOR UPDATE) on the head,
    # from every role but the owner, whatever it is called.
    """
DO $$
DECLARE
    grantee_name TEXT;
BEGIN
    REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON audit_records FROM PUBLIC;
    REVOKE INSERT, DELETE, TRUNCATE, REFERENCES, TRIGGER ON chain_head FROM PUBLIC;
    FOR grantee_name IN
        SELECT DISTINCT pg_get_userbyid(acl.grantee)
        FROM pg_class AS c, aclexplode(c.relacl) AS acl
        WHERE c.oid IN ('audit_records'::regclass, 'chain_head'::regclass)
          AND acl.grantee <> c.relowner AND acl.grantee <> 0
    LOOP
        EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER '
                       'ON audit_records FROM %I', grantee_name);
        EXECUTE format('REVOKE INSERT, DELETE, TRUNCATE, REFERENCES, TRIGGER '
                       'ON chain_head FROM %I', grantee_name);
    END LOOP;
END
$$
    """,
    # The verifier runs as the owner and must read every practice's records; FORCE'd
    # row-level security would otherwise hide them from the owner too.
    """
CREATE POLICY audit_records_owner_reads_all ON audit_records FOR SELECT TO CURRENT_USER
    USING (true)
    """,
]


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)
    for statement in tenant_rls_sql("audit_records"):
        op.execute(statement)
    for statement in APPEND_ONLY:
        op.execute(statement)


def downgrade() -> None:
    for table in ("inbox", "outbox", "audit_records", "chain_head"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
    op.execute("DROP FUNCTION IF EXISTS audit_refuse_change()")
    op.execute("DROP FUNCTION IF EXISTS audit_records_follow_head()")
    op.execute("DROP FUNCTION IF EXISTS chain_head_advance_by_one()")
