"""Valid FHIR resources for tests, built the same way in every service's suite."""

from __future__ import annotations

import itertools
import random
from typing import Any

_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)
# Tests take NHS numbers from the upper half of the 999 range: the demo data (devstack.demo)
# uses the lower half, so a test patient never collides with a demo patient (409).
_TEST_STEMS = 500_000
_counter = itertools.count(random.SystemRandom().randrange(0, _TEST_STEMS))


def valid_nhs_number(seed: int | None = None) -> str:
    """A fresh NHS number from the never-issued 999 range, with a valid check digit."""
    while True:
        n = next(_counter) if seed is None else seed
        body = f"999{_TEST_STEMS + n % _TEST_STEMS:06d}"
        total = sum(int(d) * w for d, w in zip(body, _WEIGHTS, strict=True))
        check = 11 - total % 11
        if check == 11:
            check = 0
        if check != 10:
            return body + str(check)
        if seed is not None:
            seed += 1


def patient(
    *,
    nhs_number: str | None = None,
    family: str = "Smith",
    given: str = "Alice",
    birth_date: str = "1980-04-12",
    gender: str = "female",
    postcode: str = "TS18 1AA",
    **extra: Any,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [
            {
                "system": "https://fhir.nhs.uk/Id/nhs-number",
                "value": nhs_number or valid_nhs_number(),
                "extension": [
                    {
                        "url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus",
                        "valueCodeableConcept": {
                            "coding": [
                                {
                                    "system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland",
                                    "code": "01",
                                    "display": "Number present and verified",
                                }
                            ]
                        },
                    }
                ],
            }
        ],
        "name": [{"use": "official", "family": family, "given": [given]}],
        "gender": gender,
        "birthDate": birth_date,
        "address": [
            {
                "use": "home",
                "line": ["1 High Street"],
                "city": "Stockton-on-Tees",
                "postalCode": postcode,
            }
        ],
    }
    resource.update(extra)
    return resource


def booking(slot: dict[str, Any], patient_id: str, description: str) -> dict[str, Any]:
    """An Appointment that books `slot` (a Slot as the API answered it) for a patient."""
    return {
        "resourceType": "Appointment",
        "status": "booked",
        "slot": [{"reference": f"Slot/{slot['id']}"}],
        "start": slot["start"],
        "end": slot["end"],
        "participant": [{"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"}],
        "description": description,
    }
