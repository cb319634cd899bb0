"""The clinical record's published events and their JSON Schemas (schemas/ beside this file),
and the topics it consumes."""

from pathlib import Path

CLINICAL_TOPIC = "clinical.events.v1"
PATIENT_TOPIC = "patient.events.v1"
APPOINTMENT_TOPIC = "appointment.events.v1"
PRESCRIPTION_TOPIC = "prescription.events.v1"
SCHEMA_DIR = Path(__file__).parent / "schemas"
