"""The patient index's consumer: death notifications from the (simulated) PDS feed.

In England a death registered with PDS reaches the patient's GP system as a
NEMS "PDS Death Notification". Spine is out of reach here, so the feed is a
Kafka topic a simulator (or a real NEMS subscriber adapter) writes to; the
handler below is what would run either way.
"""

from __future__ import annotations

from gpsoc_kit.auth import Principal
from gpsoc_kit.consumer import PermanentFailure
from gpsoc_kit.events import CloudEvent
from gpsoc_kit.uow import UnitOfWork

from ..adapters.repository import PatientRepository
from ..domain.nhs_number import is_valid_nhs_number
from ..service_layer import handlers

PDS_TOPIC = "pds.notifications.v1"
DEATH_NOTIFIED = "pds.death-notified.v1"
DEATH_NOTIFICATION_STATUS_URL = (
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-DeathNotificationStatus"
)


def system_principal(practice: str) -> Principal:
    return Principal(
        user_id="system-pds-feed",
        practice=practice,
        roles=frozenset({"system"}),
        name="PDS death notification feed",
    )


async def on_death_notified(event: CloudEvent, uow: UnitOfWork) -> None:
    nhs_number = str(event.data.get("nhsNumber", ""))
    deceased_at = event.data.get("deceasedDateTime")
    if not is_valid_nhs_number(nhs_number) or not isinstance(deceased_at, str):
        raise PermanentFailure("death notification without a valid NHS number and date")
    patients = PatientRepository(uow.conn)
    patient_id = await patients.ids_by_nhs_number(nhs_number)
    if patient_id is None:
        return  # not registered at this practice: nothing to do here
    current = await patients.get(patient_id, for_update=True)
    assert current is not None
    if "deceasedDateTime" in current.resource:
        return
    updated = dict(current.resource)
    updated["deceasedDateTime"] = deceased_at
    updated["extension"] = [
        e for e in updated.get("extension", []) if e.get("url") != DEATH_NOTIFICATION_STATUS_URL
    ] + [
        {
            "url": DEATH_NOTIFICATION_STATUS_URL,
            "extension": [
                {
                    "url": "deathNotificationStatus",
                    "valueCodeableConcept": {
                        "coding": [
                            {
                                "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-DeathNotificationStatus",
                                "code": str(event.data.get("deathNotificationStatus", "2")),
                                "display": "Formal - death notice received from Registrar of Deaths",
                            }
                        ]
                    },
                }
            ],
        }
    ]
    await handlers.update_patient(
        uow, system_principal(uow.practice), patient_id, updated, if_match=current.version_id
    )


HANDLERS = {DEATH_NOTIFIED: on_death_notified}
