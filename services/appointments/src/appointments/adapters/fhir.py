"""Stored rows as FHIR R4 resources following UK Core (Schedule, Slot) and GP Connect usage."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..domain.appointment import UK_CORE_SCHEDULE_PROFILE, UK_CORE_SLOT_PROFILE
from ..domain.rota import (
    DELIVERY_CHANNELS,
    NATIONAL_CATEGORIES,
    NATIONAL_CATEGORY_SYSTEM,
    SLOT_TYPE_SYSTEM,
    SLOT_TYPES,
    UK_CORE_DELIVERY_CHANNEL_URL,
)

GENERAL_PRACTICE_SERVICE = {"coding": [{"system": "http://snomed.info/sct", "code": "788007007",
                                        "display": "General practice service"}]}
HOLD_EXPIRED_IS_FREE = "busy-tentative"


def instant(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def meta(version_id: int, last_updated: dt.datetime, profile: str) -> dict[str, Any]:
    return {"versionId": str(version_id), "lastUpdated": instant(last_updated), "profile": [profile]}


def delivery_channel_extension(code: str) -> dict[str, Any]:
    display, system = DELIVERY_CHANNELS[code]
    return {"url": UK_CORE_DELIVERY_CHANNEL_URL,
            "valueCodeableConcept": {"coding": [{"system": system, "code": code,
                                                 "display": display}]}}


def national_category_concept(code: str) -> dict[str, Any]:
    """The national appointment category, as a Slot/Appointment.serviceCategory entry."""
    return {"coding": [{"system": NATIONAL_CATEGORY_SYSTEM, "code": code,
                        "display": NATIONAL_CATEGORIES.get(code, code)}]}


def service_categories(national_category: str) -> list[dict[str, Any]]:
    return [GENERAL_PRACTICE_SERVICE, national_category_concept(national_category)]


def slot_type_concept(code: str) -> dict[str, Any]:
    slot_type = SLOT_TYPES.get(code)
    return {"coding": [{"system": SLOT_TYPE_SYSTEM, "code": code,
                        "display": slot_type.display if slot_type else code}]}


def effective_slot_status(status: str, hold_expires_at: dt.datetime | None,
                          now: dt.datetime) -> str:
    """A hold that has run out is free, whether or not the sweeper has been round yet."""
    if status == HOLD_EXPIRED_IS_FREE and hold_expires_at is not None and hold_expires_at <= now:
        return "free"
    return status


def slot_resource(row: Any, now: dt.datetime) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Slot",
        "id": row.id,
        "meta": meta(row.version_id, row.last_updated, UK_CORE_SLOT_PROFILE),
        "extension": [delivery_channel_extension(row.delivery_channel)],
        "serviceCategory": service_categories(row.national_category),
        "serviceType": [slot_type_concept(row.slot_type)],
        "schedule": {"reference": f"Schedule/{row.schedule_id}"},
        "status": effective_slot_status(row.status, row.hold_expires_at, now),
        "start": instant(row.start_at),
        "end": instant(row.end_at),
    }
    if row.comment:
        resource["comment"] = row.comment
    return resource


def schedule_resource(row: Any, *, horizon_start: dt.date, horizon_end: dt.date) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Schedule",
        "id": row.id,
        "meta": meta(row.version_id, row.last_updated, UK_CORE_SCHEDULE_PROFILE),
        "active": row.active,
        "serviceCategory": [GENERAL_PRACTICE_SERVICE],
        "actor": [
            {"reference": f"Practitioner/{row.practitioner_id}",
             "display": row.practitioner_display},
            {**({"reference": row.location_reference} if row.location_reference else {}),
             "display": row.location},
        ],
        # A client's planningHorizon is kept as given; otherwise the rolling slot window.
        "planningHorizon": row.planning_horizon or {"start": horizon_start.isoformat(),
                                                    "end": horizon_end.isoformat()},
    }
    if row.specialty:
        resource["specialty"] = row.specialty
    if row.comment:
        resource["comment"] = row.comment
    return resource
