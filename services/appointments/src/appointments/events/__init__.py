"""The appointments service's published events and their JSON Schemas (schemas/ beside this file)."""

from pathlib import Path

APPOINTMENT_TOPIC = "appointment.events.v1"
SCHEMA_DIR = Path(__file__).parent / "schemas"
