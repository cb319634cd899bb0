"""Outbox and inbox tables: events leave and arrive in the same transaction as the change."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Identity,
    MetaData,
    String,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID


def outbox_table(metadata: MetaData) -> Table:
    """Events waiting to be published. `seq` gives the publish order.

    The relay deletes a row in the round that publishes it (gpsoc_kit.relay says why), so
    every row here is still to go.
    """
    return Table(
        "outbox",
        metadata,
        Column("seq", BigInteger, Identity(always=True), primary_key=True),
        # The CloudEvent id (a random UUID). Not indexed: nothing looks an event up by it
        # here (consumers de-duplicate on it in their inbox), and a unique index on random
        # keys cost every write of an event a b-tree insert at a random page.
        Column("id", UUID(as_uuid=False), nullable=False),
        Column("topic", String(200), nullable=False),
        Column("message_key", Text, nullable=False),
        Column("payload", JSONB, nullable=False),
        Column("practice_code", String(10), nullable=False),
        Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


# Every service's migration of 2026-11-29: the outbox as outbox_table describes it. The
# unique index on the event id and the index of unpublished rows go (each event paid an
# insert into both), and so does published_at (published rows are deleted).
OUTBOX_KEEPS_ONLY_UNPUBLISHED = (
    "ALTER TABLE outbox DROP CONSTRAINT uq_outbox_id",
    "DELETE FROM outbox WHERE published_at IS NOT NULL",
    "DROP INDEX ix_outbox_unpublished",
    "ALTER TABLE outbox DROP COLUMN published_at",
)
OUTBOX_KEEPS_ONLY_UNPUBLISHED_UNDONE = (
    "ALTER TABLE outbox ADD COLUMN published_at timestamptz",
    "CREATE INDEX ix_outbox_unpublished ON outbox (seq) WHERE published_at IS NULL",
    "ALTER TABLE outbox ADD CONSTRAINT uq_outbox_id UNIQUE (id)",
)


def inbox_table(metadata: MetaData) -> Table:
    """Events a consumer group has applied; the primary key makes a redelivery a no-op."""
    return Table(
        "inbox",
        metadata,
        Column("consumer_group", String(200), primary_key=True),
        Column("event_id", String(200), primary_key=True),
        Column("event_type", String(200), nullable=False),
        Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    )


def notify_channel(service_name: str) -> str:
    """The LISTEN/NOTIFY channel a service's relay wakes on."""
    return "outbox_" + "".join(c if c.isalnum() else "_" for c in service_name)
