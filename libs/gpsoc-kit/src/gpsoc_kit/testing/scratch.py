"""A scratch schema for testing chassis mechanisms: an outbox, an inbox and an RLS'd effects table."""

from sqlalchemy import Column, String, Table

from gpsoc_kit.db import new_metadata
from gpsoc_kit.messaging import inbox_table, outbox_table

SERVICE = "kit-test"
metadata = new_metadata()
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
effects = Table(
    "effects",
    metadata,
    Column("event_id", String(100), primary_key=True),
    Column("practice_code", String(10), nullable=False),
    Column("note", String(200), nullable=False),
)
