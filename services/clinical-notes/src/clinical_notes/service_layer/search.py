"""Searching the record: FHIR search parameters -> SQL criteria, per resource type.

A search names the patient (or the entry's id): a clinical record is read one
patient at a time. Entered-in-error entries are left out unless the search asks
for that status by name.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from gpsoc_kit.auth import Principal
from gpsoc_kit.errors import InvalidSearch, Problem
from gpsoc_kit.search import SearchRequest, parse_datetime_param, parse_reference
from gpsoc_kit.uow import UnitOfWork

from ..adapters import repository as repo
from ..domain.entries import ENTERED_IN_ERROR, is_uuid
from .handlers import patient_of, record_access

_COMMON = ("_id", "patient", "date", "code", "category", "_sort")
SEARCH_PARAMETERS: dict[str, tuple[str, ...]] = {
    "Condition": _COMMON + ("clinical-status", "verification-status", "encounter"),
    "AllergyIntolerance": _COMMON + ("clinical-status", "verification-status"),
    "Observation": _COMMON + ("status", "encounter"),
    "Encounter": _COMMON + ("status", "appointment"),
    "List": _COMMON + ("status", "encounter"),
}
SORTS = {"date": False, "-date": True}
_NO_MATCH = "00000000-0000-0000-0000-000000000000"


def _values(value: str) -> list[str]:
    return [v for v in value.split(",") if v]


def _uuid(name: str, value: str, resource_type: str) -> str:
    ident = parse_reference(value, resource_type)
    if not is_uuid(ident):
        raise InvalidSearch([Problem(f"{name} must reference a {resource_type} by id", name)])
    return ident


def criteria_for(resource_type: str, search: SearchRequest) -> tuple[list[Any], bool]:
    """(SQL criteria, newest first?) for a search; a bad value answers 400 naming the parameter."""
    criteria: list[Any] = [repo.of_type(resource_type)]
    newest_first = True
    include_entered_in_error = False
    if search.first("patient") is None and search.first("_id") is None:
        raise InvalidSearch(
            [
                Problem(
                    "A search of the clinical record names the patient (patient=Patient/<id>)",
                    "patient",
                )
            ]
        )
    for name, value in search.filters:
        if name == "_id":
            criteria.append(repo.by_id(value if is_uuid(value) else _NO_MATCH))
        elif name == "patient":
            criteria.append(repo.by_patient(_uuid(name, value, "Patient")))
        elif name == "code":
            criteria.append(repo.by_code_tokens(_values(value)))
        elif name == "category":
            criteria.append(repo.by_category([v.rpartition("|")[2] for v in _values(value)]))
        elif name == "clinical-status":
            criteria.append(repo.by_clinical_status(_values(value)))
        elif name in ("status", "verification-status"):
            statuses = _values(value)
            include_entered_in_error |= ENTERED_IN_ERROR in statuses
            criteria.append(repo.by_status(statuses))
        elif name == "date":
            criteria.append(_date_criterion(name, value))
        elif name == "encounter":
            criteria.append(repo.by_encounter(_uuid(name, value, "Encounter")))
        elif name == "appointment":
            criteria.append(repo.by_appointment(_uuid(name, value, "Appointment")))
        elif name == "_sort":
            if value not in SORTS:
                raise InvalidSearch([Problem("_sort may be date or -date", "_sort")])
            newest_first = SORTS[value]
    if not include_entered_in_error:
        criteria.append(repo.current_only())
    return criteria, newest_first


def _date_criterion(name: str, value: str) -> Any:
    bound = parse_datetime_param(name, value)
    day_only = len(value[2:] if value[:2].isalpha() else value) == 10
    if bound.prefix == "eq" and day_only:
        return repo.by_day(bound.value, bound.value + dt.timedelta(days=1))
    if day_only and bound.prefix in ("le", "gt"):
        # "on or before 2026-01-31" includes the whole of that day.
        return repo.by_date(
            "<" if bound.prefix == "le" else ">=", bound.value + dt.timedelta(days=1)
        )
    return repo.by_date(bound.sql_operator(), bound.value)


async def search_entries(
    uow: UnitOfWork, principal: Principal, resource_type: str, search: SearchRequest
) -> tuple[list[dict[str, Any]], int]:
    criteria, newest_first = criteria_for(resource_type, search)
    resources, total = await repo.EntryRepository(uow.conn).search(
        criteria, count=search.count, offset=search.offset, newest_first=newest_first
    )
    # The patient searched for is accessed even when nothing is found.
    searched = [parse_reference(v, "Patient") for k, v in search.filters if k == "patient"]
    patients = list(dict.fromkeys([*searched, *(patient_of(r) for r in resources)]))
    record_access(
        uow,
        principal,
        "search",
        resource_type,
        patient_ids=patients,
        query="&".join(f"{k}={v}" for k, v in search.filters),
    )
    return resources, total
