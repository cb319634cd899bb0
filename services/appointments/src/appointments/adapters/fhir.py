"""Stored rows as FHIR R4 resources following UK Core (Schedule, Slot) and GP Connect usage."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from gpsoc_kit.fhir import searchset

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


@functools.lru_cache(maxsize=512)
def _slot_kind_json(delivery_channel: str, national_category: str, slot_type: str) -> str:
    """The part of a Slot's JSON that depends only on its kind (few distinct values)."""
    return (',"extension":' + orjson.dumps([delivery_channel_extension(delivery_channel)]).decode()
            + ',"serviceCategory":' + orjson.dumps(service_categories(national_category)).decode()
            + ',"serviceType":' + orjson.dumps([slot_type_concept(slot_type)]).decode())


_SLOT_PROFILE_JSON = orjson.dumps([UK_CORE_SLOT_PROFILE]).decode()


def slot_json(row: Any) -> str:
    """A free-slot search's row as Slot JSON text, byte for byte what orjson makes of
    `slot_resource` for the same slot, built without the dicts: the search renders a page
    of these per request. The row's instants are FHIR text already and its status the
    effective one (adapters.repository.SlotRow)."""
    comment = f',"comment":{orjson.dumps(row.comment).decode()}' if row.comment else ""
    return (f'{{"resourceType":"Slot","id":"{row.id}","meta":{{"versionId":"{row.version_id}",'
            f'"lastUpdated":"{row.last_updated}","profile":{_SLOT_PROFILE_JSON}}}'
            f'{_slot_kind_json(row.delivery_channel, row.national_category, row.slot_type)},'
            f'"schedule":{{"reference":"Schedule/{row.schedule_id}"}},'
            f'"status":"{row.status}","start":"{row.start}","end":"{row.end}"{comment}}}')


def searchset_json(*, base_url: str, resource_type: str, params: list[tuple[str, str]],
                   offset: int, count: int, total: int | None,
                   matches: Sequence[tuple[str, str]], included: Iterable[dict[str, Any]] = (),
                   more: bool | None = None) -> bytes:
    """A searchset Bundle as bytes, with match entries already rendered as JSON text.

    `matches` are (id, resource JSON) pairs. The envelope (total, paging links) is the
    chassis' own `searchset`, so it stays what every other search answers; only the entries
    are spliced in as text instead of being built as dicts and serialised again.
    """
    envelope = orjson.dumps(searchset((), total=total, base_url=base_url,
                                      resource_type=resource_type, params=params,
                                      offset=offset, count=count, more=more))
    empty = b'"entry":[]}'
    if not envelope.endswith(empty):
        raise RuntimeError("unexpected searchset envelope")
    # Escaped as JSON once, the way orjson would escape it in every entry.
    prefix = f'{{"fullUrl":"{orjson.dumps(f"{base_url}/{resource_type}/").decode()[1:-1]}'
    entries = [f'{prefix}{ident}","resource":{text},"search":{{"mode":"match"}}}}'
               for ident, text in matches]
    entries += [orjson.dumps({"fullUrl": f"{base_url}/{r['resourceType']}/{r['id']}",
                              "resource": r, "search": {"mode": "include"}}).decode()
                for r in included]
    return b"".join((envelope[:-len(empty)], b'"entry":[', ",".join(entries).encode(), b"]}"))


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
