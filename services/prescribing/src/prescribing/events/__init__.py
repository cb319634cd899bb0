"""What prescribing publishes (prescription.events.v1) and consumes; schemas/ holds the producer's schemas."""

from enum import StrEnum
from pathlib import Path

PRESCRIPTION_TOPIC = "prescription.events.v1"
PATIENT_TOPIC = "patient.events.v1"
CLINICAL_TOPIC = "clinical.events.v1"
SCHEMA_DIR = Path(__file__).parent / "schemas"


class EventType(StrEnum):
    AUTHORISED = "prescription.authorised.v1"
    ISSUED = "prescription.issued.v1"
    STOPPED = "prescription.stopped.v1"
    OVERRIDE_RECORDED = "prescription.override-recorded.v1"
