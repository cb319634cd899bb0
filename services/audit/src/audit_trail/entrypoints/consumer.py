"""The audit store's consumer: every service's audit events, appended to the chain.

It also reads patient.events.v1 for one fact: which practice holds each patient, so an
access from another practice is copied into the holder's trail (see the handler).

Consumer group `audit.store`. The runner records each event id in the inbox in the
same transaction as the append, so a redelivered event is stored once. An event
that cannot be indexed is dead-lettered on `audit.events.v1.dlq` with the reason.
"""

from __future__ import annotations

from gpsoc_kit.audit import AUDIT_EVENT_TYPE, AUDIT_SCHEMA_DIR, AUDIT_TOPIC
from gpsoc_kit.consumer import ConsumerConfig, ConsumerRunner, PermanentFailure
from gpsoc_kit.events import CloudEvent, SchemaRegistry
from gpsoc_kit.uow import UnitOfWork, UnitOfWorkFactory

from ..adapters.tables import inbox
from ..config import Settings
from ..domain.errors import UnreadableAuditEvent
from ..service_layer import handlers

STORE_GROUP = "audit.store"
# The audit event's schema belongs to the chassis, which every producer uses.
SCHEMAS = SchemaRegistry(AUDIT_SCHEMA_DIR)


async def on_audit_recorded(event: CloudEvent, uow: UnitOfWork) -> None:
    try:
        await handlers.store_audit_event(uow, event)
    except UnreadableAuditEvent as exc:
        raise PermanentFailure(str(exc)) from None


async def on_patient_event(event: CloudEvent, uow: UnitOfWork) -> None:
    try:
        await handlers.record_patient_practice(uow, event)
    except UnreadableAuditEvent as exc:
        raise PermanentFailure(str(exc)) from None


PATIENT_TOPIC = "patient.events.v1"
HANDLERS = {
    AUDIT_EVENT_TYPE: on_audit_recorded,
    **{event_type: on_patient_event for event_type in (
        "patient.registered.v1", "patient.updated.v1", "patient.deceased.v1",
        "patient.deregistered.v1")},
}


def store_consumer(settings: Settings, unit_of_work: UnitOfWorkFactory, *,
                   group_id: str = STORE_GROUP) -> ConsumerRunner:
    return ConsumerRunner(
        ConsumerConfig(settings.service_name, group_id, (AUDIT_TOPIC, PATIENT_TOPIC),
                       settings.kafka_bootstrap_servers),
        unit_of_work=unit_of_work, inbox=inbox, handlers=HANDLERS, schemas=SCHEMAS,
    )
