"""Initial schema: rotas, slots, appointments (with versions), projections, idempotency, outbox, inbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
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
CREATE TABLE appointment_slots (
    appointment_id UUID NOT NULL,
    slot_id UUID NOT NULL,
    practice_code VARCHAR(10) NOT NULL,
    active BOOLEAN NOT NULL,
    CONSTRAINT pk_appointment_slots PRIMARY KEY (appointment_id, slot_id)
)
    """,
    """
CREATE UNIQUE INDEX uq_appointment_slots_active_slot ON appointment_slots (slot_id) WHERE active
    """,
    """
CREATE TABLE appointment_versions (
    appointment_id UUID NOT NULL,
    version_id INTEGER NOT NULL,
    practice_code VARCHAR(10) NOT NULL,
    recorded_at TIMESTAMP WITH TIME ZONE NOT NULL,
    recorded_by TEXT NOT NULL,
    resource JSONB NOT NULL,
    CONSTRAINT pk_appointment_versions PRIMARY KEY (appointment_id, version_id)
)
    """,
    """
CREATE TABLE appointments (
    id UUID NOT NULL,
    practice_code VARCHAR(10) NOT NULL,
    patient_id UUID NOT NULL,
    practitioner_id UUID NOT NULL,
    status VARCHAR(20) NOT NULL,
    start_at TIMESTAMP WITH TIME ZONE NOT NULL,
    end_at TIMESTAMP WITH TIME ZONE NOT NULL,
    slot_ids UUID[] NOT NULL,
    slot_type VARCHAR(40) NOT NULL,
    national_category VARCHAR(80) NOT NULL,
    delivery_channel VARCHAR(20) NOT NULL,
    cancellation_reason TEXT,
    version_id INTEGER NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    last_updated TIMESTAMP WITH TIME ZONE NOT NULL,
    resource JSONB NOT NULL,
    CONSTRAINT pk_appointments PRIMARY KEY (id),
    CONSTRAINT ck_appointments_status CHECK (status IN ('booked', 'arrived', 'fulfilled', 'cancelled', 'noshow'))
)
    """,
    """
CREATE INDEX ix_appointments_practice_patient_start ON appointments (practice_code, patient_id, start_at)
    """,
    """
CREATE INDEX ix_appointments_practice_practitioner_start ON appointments (practice_code, practitioner_id, start_at)
    """,
    """
CREATE TABLE idempotency_keys (
    practice_code VARCHAR(10) NOT NULL,
    idempotency_key VARCHAR(200) NOT NULL,
    request_hash VARCHAR(64) NOT NULL,
    status_code INTEGER,
    response JSONB,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_idempotency_keys PRIMARY KEY (practice_code, idempotency_key)
)
    """,
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
    """
CREATE INDEX ix_outbox_unpublished ON outbox (seq) WHERE published_at IS NULL
    """,
    """
CREATE TABLE patients (
    id UUID NOT NULL,
    practice_code VARCHAR(10) NOT NULL,
    nhs_number VARCHAR(10),
    display TEXT NOT NULL,
    active BOOLEAN NOT NULL,
    deceased BOOLEAN NOT NULL,
    version_id INTEGER NOT NULL,
    last_updated TIMESTAMP WITH TIME ZONE NOT NULL,
    CONSTRAINT pk_patients PRIMARY KEY (id)
)
    """,
    """
CREATE TABLE practices (
    practice_code VARCHAR(10) NOT NULL,
    added_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_practices PRIMARY KEY (practice_code)
)
    """,
    """
CREATE TABLE rota_sessions (
    id UUID NOT NULL,
    practice_code VARCHAR(10) NOT NULL,
    schedule_id UUID NOT NULL,
    weekdays INTEGER[] NOT NULL,
    start_time TIME WITHOUT TIME ZONE NOT NULL,
    end_time TIME WITHOUT TIME ZONE NOT NULL,
    slot_minutes INTEGER NOT NULL,
    slot_type VARCHAR(40) NOT NULL,
    delivery_channel VARCHAR(20) NOT NULL,
    national_category VARCHAR(80) NOT NULL,
    release_hours INTEGER NOT NULL,
    bookable_by TEXT[] NOT NULL,
    effective_from DATE NOT NULL,
    effective_to DATE,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT now() NOT NULL,
    CONSTRAINT pk_rota_sessions PRIMARY KEY (id)
)
    """,
    """
CREATE INDEX ix_rota_sessions_practice_schedule ON rota_sessions (practice_code, schedule_id)
    """,
    """
CREATE TABLE schedules (
    id UUID NOT NULL,
    practice_code VARCHAR(10) NOT NULL,
    practitioner_id UUID NOT NULL,
    practitioner_display TEXT NOT NULL,
    location TEXT NOT NULL,
    active BOOLEAN NOT NULL,
    comment TEXT,
    version_id INTEGER NOT NULL,
    last_updated TIMESTAMP WITH TIME ZONE NOT NULL,
    CONSTRAINT pk_schedules PRIMARY KEY (id)
)
    """,
    """
CREATE INDEX ix_schedules_practice_practitioner ON schedules (practice_code, practitioner_id)
    """,
    """
CREATE TABLE slots (
    id UUID NOT NULL,
    practice_code VARCHAR(10) NOT NULL,
    schedule_id UUID NOT NULL,
    session_id UUID,
    practitioner_id UUID NOT NULL,
    start_at TIMESTAMP WITH TIME ZONE NOT NULL,
    end_at TIMESTAMP WITH TIME ZONE NOT NULL,
    status VARCHAR(20) NOT NULL,
    slot_type VARCHAR(40) NOT NULL,
    delivery_channel VARCHAR(20) NOT NULL,
    national_category VARCHAR(80) NOT NULL,
    bookable_from TIMESTAMP WITH TIME ZONE NOT NULL,
    bookable_by TEXT[] NOT NULL,
    hold_token UUID,
    hold_expires_at TIMESTAMP WITH TIME ZONE,
    comment TEXT,
    version_id INTEGER NOT NULL,
    last_updated TIMESTAMP WITH TIME ZONE NOT NULL,
    CONSTRAINT pk_slots PRIMARY KEY (id),
    CONSTRAINT uq_slots_schedule_start UNIQUE (schedule_id, start_at),
    CONSTRAINT ck_slots_status CHECK (status IN ('free', 'busy', 'busy-unavailable', 'busy-tentative'))
)
    """,
    """
CREATE INDEX ix_slots_practice_hold_expiry ON slots (practice_code, hold_expires_at) WHERE status = 'busy-tentative'
    """,
    """
CREATE INDEX ix_slots_practice_open_start ON slots (practice_code, start_at) WHERE status IN ('free', 'busy-tentative')
    """,
    """
CREATE INDEX ix_slots_practice_practitioner_start ON slots (practice_code, practitioner_id, start_at)
    """,
    """
CREATE TABLE staff (
    id UUID NOT NULL,
    practice_code VARCHAR(10) NOT NULL,
    role VARCHAR(40) NOT NULL,
    display TEXT NOT NULL,
    last_updated TIMESTAMP WITH TIME ZONE NOT NULL,
    resource JSONB NOT NULL,
    CONSTRAINT pk_staff PRIMARY KEY (id)
)
    """,
]

TENANT_TABLES = ("staff", "patients", "schedules", "rota_sessions", "slots", "appointments",
                 "appointment_versions", "appointment_slots", "idempotency_keys")


def upgrade() -> None:
    for statement in STATEMENTS:
        op.execute(statement)
    for table in TENANT_TABLES:
        for statement in tenant_rls_sql(table):
            op.execute(statement)


def downgrade() -> None:
    for table in ("inbox", "outbox", "idempotency_keys", "appointment_slots",
                  "appointment_versions", "appointments", "slots", "rota_sessions", "schedules",
                  "patients", "staff", "practices"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
