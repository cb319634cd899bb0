"""The appointments consumer: patient.events.v1 into the local patient projection.

Booking checks the projection (an unknown or deceased patient cannot be booked); a
death or a deregistration cancels the patient's future appointments, with the reason
recorded, and each cancellation is published like any other.
"""

from __future__ import annotations

from typing import Any

from gpsoc_kit.consumer import PermanentFailure
from gpsoc_kit.events import CloudEvent
from gpsoc_kit.sharing import GRANT_HANDLERS
from gpsoc_kit.uow import UnitOfWork

from ..domain.appointment import is_uuid
from ..service_layer import handlers

PATIENT_TOPIC = "patient.events.v1"
CONSUMER_GROUP = "appointments.patients"
CANCELLATION_REASONS = {
    "patient.deceased.v1": "Patient deceased",
    "patient.deregistered.v1": "Patient deregistered from the practice",
}


async def on_patient_event(event: CloudEvent, uow: UnitOfWork) -> None:
    patient = event.data.get("patient")
    version_id = event.data.get("versionId")
    if not isinstance(patient, dict) or not is_uuid(str(patient.get("id"))) \
            or not isinstance(version_id, int):
        raise PermanentFailure("patient event without a patient id and version")
    await handlers.record_patient(
        uow, patient_id=patient["id"], nhs_number=patient.get("nhsNumber"),
        display=_display(patient), active=bool(patient.get("active", True)),
        deceased=bool(patient.get("deceased", False)), version_id=version_id,
        cancellation_reason=CANCELLATION_REASONS.get(event.type))


def _display(patient: dict[str, Any]) -> str:
    return " ".join(str(part) for part in (patient.get("given"), patient.get("family")) if part)


HANDLERS = {
    "patient.registered.v1": on_patient_event,
    "patient.updated.v1": on_patient_event,
    "patient.deceased.v1": on_patient_event,
    "patient.deregistered.v1": on_patient_event,
    # Sharing agreements and break-glass grants, which the row-level security reads.
    **GRANT_HANDLERS,
}
