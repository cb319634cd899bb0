"""The record's consumer: patients (patient.events.v1), arrivals (appointment.events.v1) and
issued prescriptions (prescription.events.v1), each turned into one use case.

Topics that do not exist yet are waited for by the chassis runner, so the consumer
may start before the services that produce them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from gpsoc_kit.consumer import ConsumerConfig, ConsumerRunner, Handler, PermanentFailure
from gpsoc_kit.errors import DomainError
from gpsoc_kit.events import CloudEvent
from gpsoc_kit.sharing import GRANT_HANDLERS
from gpsoc_kit.uow import UnitOfWork

from ..events import APPOINTMENT_TOPIC, PATIENT_TOPIC, PRESCRIPTION_TOPIC
from ..service_layer import projections

TOPICS = (PATIENT_TOPIC, APPOINTMENT_TOPIC, PRESCRIPTION_TOPIC)
CONSUMER_GROUP = "clinical-notes.record"


def _applying(use_case: Callable[[CloudEvent, UnitOfWork], Awaitable[object]]) -> Handler:
    """A handler for which an event the rules refuse is permanent: retrying cannot help."""

    async def handle(event: CloudEvent, uow: UnitOfWork) -> None:
        try:
            await use_case(event, uow)
        except DomainError as exc:
            raise PermanentFailure(f"{type(exc).__name__}: {exc}") from None

    return handle


on_patient_event = _applying(lambda event, uow: projections.apply_patient_event(uow, event.data))
on_appointment_arrived = _applying(
    lambda event, uow: projections.open_consultation(uow, event.data, arrived_at=event.time)
)
on_prescription_issued = _applying(
    lambda event, uow: projections.record_issue(uow, event.data, event_time=event.time)
)

HANDLERS: dict[str, Handler] = {
    "patient.registered.v1": on_patient_event,
    "patient.updated.v1": on_patient_event,
    "patient.deceased.v1": on_patient_event,
    "patient.deregistered.v1": on_patient_event,
    "appointment.arrived.v1": on_appointment_arrived,
    "prescription.issued.v1": on_prescription_issued,
    # Sharing agreements and break-glass grants, which the row-level security reads.
    **GRANT_HANDLERS,
}


def build_runner(engine, settings) -> ConsumerRunner:  # noqa: ANN001
    """The runner the `consumer` process runs (and the integration tests, unchanged)."""
    from ..adapters.tables import inbox
    from .api.app import unit_of_work_factory

    return ConsumerRunner(
        ConsumerConfig(
            settings.service_name, CONSUMER_GROUP, TOPICS, settings.kafka_bootstrap_servers
        ),
        unit_of_work=unit_of_work_factory(engine, settings),
        inbox=inbox,
        handlers=HANDLERS,
    )
