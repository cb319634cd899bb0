"""Prescribing's consumer: patient.events.v1 and clinical.events.v1 into local projections.

Handlers only turn messages into projection updates and commands (a death stops
current repeats); the runner gives each event exactly one effect.
"""

from __future__ import annotations

from gpsoc_kit.consumer import Handler, PermanentFailure
from gpsoc_kit.events import CloudEvent
from gpsoc_kit.sharing import GRANT_HANDLERS
from gpsoc_kit.uow import UnitOfWork

from ..events import CLINICAL_TOPIC, PATIENT_TOPIC
from ..service_layer import projections

TOPICS = (PATIENT_TOPIC, CLINICAL_TOPIC)
GROUP_SUFFIX = "projections"


def _patient(ends_prescribing: str | None) -> Handler:
    async def handle(event: CloudEvent, uow: UnitOfWork) -> None:
        try:
            await projections.apply_patient(uow, event.data, ends_prescribing=ends_prescribing)
        except projections.UnusableEvent as exc:
            raise PermanentFailure(str(exc)) from None

    return handle


async def on_allergy(event: CloudEvent, uow: UnitOfWork) -> None:
    try:
        await projections.apply_allergy(uow, event.data)
    except projections.UnusableEvent as exc:
        raise PermanentFailure(str(exc)) from None


async def on_entered_in_error(event: CloudEvent, uow: UnitOfWork) -> None:
    try:
        await projections.apply_entered_in_error(uow, event.data)
    except projections.UnusableEvent as exc:
        raise PermanentFailure(str(exc)) from None


HANDLERS: dict[str, Handler] = {
    "patient.registered.v1": _patient(None),
    "patient.updated.v1": _patient(None),
    "patient.deceased.v1": _patient(projections.DECEASED_REASON),
    "patient.deregistered.v1": _patient(projections.DEREGISTERED_REASON),
    "clinical.allergy-recorded.v1": on_allergy,
    "clinical.allergy-updated.v1": on_allergy,
    "clinical.entry-entered-in-error.v1": on_entered_in_error,
    # Sharing agreements and break-glass grants, which the row-level security reads.
    **GRANT_HANDLERS,
}
