"""The patient index's published events and their JSON Schemas (schemas/ beside this file)."""

from pathlib import Path

PATIENT_TOPIC = "patient.events.v1"
SCHEMA_DIR = Path(__file__).parent / "schemas"
