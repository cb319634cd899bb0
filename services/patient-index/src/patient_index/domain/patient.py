"""The Patient aggregate: what a valid registration is, and what an update means.

A Patient is held as its FHIR R4 (UK Core) resource; `PatientDetails` is the part
of it the index searches on and the rules look at.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from gpsoc_kit.errors import InvalidResource, InvalidTransition, Problem

from .names import normalise, soundex
from .nhs_number import NHS_NUMBER_SYSTEM, is_valid_nhs_number

UK_CORE_PATIENT_PROFILE = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"
VERIFICATION_STATUS_URL = (
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus"
)
VERIFICATION_STATUS_SYSTEM = (
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland"
)
VERIFICATION_STATUS_CODES = {f"{n:02d}" for n in range(1, 9)}
GENDERS = frozenset({"male", "female", "other", "unknown"})
_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2}))?$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class EventType:
    REGISTERED = "patient.registered.v1"
    UPDATED = "patient.updated.v1"
    DECEASED = "patient.deceased.v1"
    DEREGISTERED = "patient.deregistered.v1"


@dataclass(frozen=True)
class PatientDetails:
    """The searchable facts of a Patient resource."""

    nhs_number: str | None
    family: str
    given: str
    birth_date: dt.date | None
    gender: str | None
    postal_code: str | None
    gp_practitioner_id: str | None
    active: bool
    deceased_at: str | None  # FHIR dateTime or date as given; None while alive
    deceased: bool

    @property
    def name_text(self) -> str:
        return normalise(f"{self.given} {self.family}")

    @property
    def family_normalised(self) -> str:
        return normalise(self.family)

    @property
    def given_normalised(self) -> str:
        return normalise(self.given)

    @property
    def family_soundex(self) -> str:
        return soundex(self.family)

    @property
    def given_soundex(self) -> str:
        """Soundex of the first given name (the one people are called by)."""
        return soundex(self.given.split()[0]) if self.given.split() else ""


def read_details(resource: dict[str, Any]) -> PatientDetails:
    """Validate a Patient resource and extract its details, or raise InvalidResource."""
    problems: list[Problem] = []
    if resource.get("resourceType") != "Patient":
        raise InvalidResource([Problem("resourceType must be Patient", "Patient.resourceType")])

    nhs_number = _nhs_number(resource, problems)

    names = resource.get("name")
    family, given = "", ""
    if not isinstance(names, list) or not names:
        problems.append(Problem("A patient needs a name", "Patient.name"))
    else:
        official = next(
            (n for n in names if isinstance(n, dict) and n.get("use") == "official"), names[0]
        )
        if not isinstance(official, dict):
            problems.append(Problem("Patient.name must be a HumanName", "Patient.name"))
        else:
            family = official.get("family") or ""
            given_list = official.get("given") or []
            if not isinstance(family, str) or not family.strip():
                problems.append(
                    Problem("A patient's name needs a family name", "Patient.name.family")
                )
                family = ""
            if not isinstance(given_list, list) or not all(isinstance(g, str) for g in given_list):
                problems.append(
                    Problem("Patient.name.given must be a list of strings", "Patient.name.given")
                )
                given_list = []
            given = " ".join(given_list)

    gender = resource.get("gender")
    if gender is not None and gender not in GENDERS:
        problems.append(
            Problem(f"gender must be one of {', '.join(sorted(GENDERS))}", "Patient.gender")
        )

    birth_date = _birth_date(resource.get("birthDate"), problems)

    deceased_at, deceased = None, False
    if "deceasedDateTime" in resource:
        value = resource["deceasedDateTime"]
        if not isinstance(value, str) or not _DATETIME.match(value):
            problems.append(
                Problem("deceasedDateTime must be a FHIR dateTime", "Patient.deceasedDateTime")
            )
        else:
            deceased_at, deceased = value, True
            if birth_date and value[:10] < birth_date.isoformat():
                problems.append(
                    Problem("Date of death is before date of birth", "Patient.deceasedDateTime")
                )
    elif "deceasedBoolean" in resource:
        if not isinstance(resource["deceasedBoolean"], bool):
            problems.append(
                Problem("deceasedBoolean must be true or false", "Patient.deceasedBoolean")
            )
        else:
            deceased = resource["deceasedBoolean"]

    active = resource.get("active", True)
    if not isinstance(active, bool):
        problems.append(Problem("active must be true or false", "Patient.active"))
        active = True

    postal_code = None
    addresses = resource.get("address") or []
    if not isinstance(addresses, list):
        problems.append(Problem("Patient.address must be a list", "Patient.address"))
    else:
        home = next(
            (a for a in addresses if isinstance(a, dict) and a.get("use") == "home"),
            addresses[0] if addresses else None,
        )
        if isinstance(home, dict) and isinstance(home.get("postalCode"), str):
            postal_code = normalise_postcode(home["postalCode"])

    gp_practitioner_id = None
    for ref in resource.get("generalPractitioner") or []:
        reference = ref.get("reference", "") if isinstance(ref, dict) else ""
        if reference.startswith("Practitioner/"):
            candidate = reference.split("/", 1)[1]
            if not _UUID.match(candidate):
                problems.append(
                    Problem(
                        "generalPractitioner must reference a known Practitioner",
                        "Patient.generalPractitioner",
                    )
                )
            gp_practitioner_id = candidate

    if problems:
        raise InvalidResource(problems)
    return PatientDetails(
        nhs_number=nhs_number,
        family=family.strip(),
        given=given.strip(),
        birth_date=birth_date,
        gender=gender,
        postal_code=postal_code,
        gp_practitioner_id=gp_practitioner_id,
        active=active,
        deceased_at=deceased_at,
        deceased=deceased,
    )


def _nhs_number(resource: dict[str, Any], problems: list[Problem]) -> str | None:
    identifiers = resource.get("identifier") or []
    if not isinstance(identifiers, list):
        problems.append(Problem("Patient.identifier must be a list", "Patient.identifier"))
        return None
    found: str | None = None
    for index, identifier in enumerate(identifiers):
        if not isinstance(identifier, dict) or identifier.get("system") != NHS_NUMBER_SYSTEM:
            continue
        where = f"Patient.identifier[{index}].value"
        value = identifier.get("value")
        if not isinstance(value, str) or not is_valid_nhs_number(value):
            problems.append(
                Problem(
                    "Invalid NHS number: it must be 10 digits with a valid Modulus 11 check digit",
                    where,
                )
            )
            continue
        if found is not None and found != value:
            problems.append(Problem("A patient has at most one NHS number", where))
        found = value
        for ext in identifier.get("extension") or []:
            if isinstance(ext, dict) and ext.get("url") == VERIFICATION_STATUS_URL:
                codings = (ext.get("valueCodeableConcept") or {}).get("coding") or []
                if not any(
                    c.get("code") in VERIFICATION_STATUS_CODES
                    for c in codings
                    if isinstance(c, dict)
                ):
                    problems.append(
                        Problem(
                            "Unknown NHS number verification status",
                            f"Patient.identifier[{index}].extension",
                        )
                    )
    return found


def _birth_date(value: Any, problems: list[Problem]) -> dt.date | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _DATE.match(value):
        problems.append(Problem("birthDate must be a date (YYYY-MM-DD)", "Patient.birthDate"))
        return None
    try:
        parsed = dt.date.fromisoformat(value if len(value) == 10 else (value + "-01-01")[:10])
    except ValueError:
        problems.append(Problem("birthDate is not a real date", "Patient.birthDate"))
        return None
    if parsed > dt.date.today():
        problems.append(Problem("birthDate is in the future", "Patient.birthDate"))
    return parsed


def normalise_postcode(value: str) -> str:
    return "".join(value.split()).upper()


def event_for_update(before: PatientDetails, after: PatientDetails) -> str:
    """One event per write: a death or deregistration has its own, anything else is an update."""
    if before.deceased and not after.deceased:
        raise InvalidTransition(
            "A recorded death cannot be removed by an update; "
            "mark the record entered in error through data quality instead"
        )
    if after.deceased and not before.deceased:
        return EventType.DECEASED
    if before.active and not after.active:
        return EventType.DEREGISTERED
    return EventType.UPDATED


def event_data(
    patient_id: str, practice: str, version_id: int, details: PatientDetails
) -> dict[str, Any]:
    """What every patient event carries: enough for another service's projection."""
    return {
        "patient": {
            "id": patient_id,
            "practice": practice,
            "nhsNumber": details.nhs_number,
            "family": details.family,
            "given": details.given,
            "birthDate": details.birth_date.isoformat() if details.birth_date else None,
            "gender": details.gender,
            "active": details.active,
            "deceased": details.deceased,
            "deceasedDateTime": details.deceased_at,
            "generalPractitioner": details.gp_practitioner_id,
        },
        "versionId": version_id,
    }
