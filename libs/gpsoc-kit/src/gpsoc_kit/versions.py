"""Version history: every write of a resource keeps the version it made, never overwritten."""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, MetaData, String, Table, Text
from sqlalchemy.dialects.postgresql import JSONB, UUID


def versions_table(metadata: MetaData, name: str, id_column: str) -> Table:
    """`<name>`: one row per (resource id, version) with who wrote it and when (for _history)."""
    return Table(
        name,
        metadata,
        Column(id_column, UUID(as_uuid=False), primary_key=True),
        Column("version_id", Integer, primary_key=True),
        Column("practice_code", String(10), nullable=False),
        Column("recorded_at", DateTime(timezone=True), nullable=False),
        Column("recorded_by", Text, nullable=False),
        Column("resource", JSONB, nullable=False),
    )
