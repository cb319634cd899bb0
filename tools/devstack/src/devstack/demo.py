"""The deterministic demo dataset: two practices, their staff and 300 patients each.

Everything is made up. Same output on every run (a seeded Random, uuid5 ids), so a
restarted stack, a test and a benchmark all see the same patients. NHS numbers come
from the 999 range, which is never issued to real people, and carry a valid Modulus 11
check digit so that validation code treats them as real numbers.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from typing import Any

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://opengpsoc.local/demo-data")
SEED = 20240601
PATIENTS_PER_PRACTICE = 300

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
SDS_USER_SYSTEM = "https://fhir.nhs.uk/Id/sds-user-id"
SDS_ROLE_PROFILE_SYSTEM = "https://fhir.nhs.uk/Id/sds-role-profile-id"
UKCORE = "https://fhir.hl7.org.uk/StructureDefinition"
NHS_NUMBER_VERIFICATION_EXTENSION = {
    "url": f"{UKCORE}/Extension-UKCore-NHSNumberVerificationStatus",
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

ROLES = ("gp", "nurse", "pharmacist", "receptionist", "practice-manager", "privacy-officer")
# How many demo users of each role every practice has (a second GP for cover / referral tests).
STAFF_COUNT = {
    "gp": 2,
    "nurse": 1,
    "pharmacist": 1,
    "receptionist": 1,
    "practice-manager": 1,
    "privacy-officer": 1,
}
# SNOMED CT job roles as used by UK Core PractitionerRole.code (descriptive only).
ROLE_DISPLAY = {
    "gp": "General practitioner",
    "nurse": "Practice nurse",
    "pharmacist": "Clinical pharmacist",
    "receptionist": "Receptionist",
    "practice-manager": "Practice manager",
    "privacy-officer": "Privacy officer",
}
# Nurses and pharmacists are independent prescribers at A81001 but not at A81002, so
# tests can cover the prescriber flag both ways for the same role.
INDEPENDENT_PRESCRIBER_PRACTICES = {"A81001"}


@dataclass(frozen=True)
class Practice:
    ods: str
    name: str
    line: str
    postcode: str
    phone: str


PRACTICES = (
    Practice("A81001", "Beacon Medical Practice", "12 Beacon Lane", "TS18 1HU", "01632 960101"),
    Practice("A81002", "Riverside Surgery", "3 Quayside Road", "TS18 2RW", "01632 960202"),
)
PRACTICE_BY_ODS = {practice.ods: practice for practice in PRACTICES}

MALE_GIVEN = (
    "Oliver",
    "George",
    "Harry",
    "Jack",
    "Jacob",
    "Noah",
    "Charlie",
    "Thomas",
    "Oscar",
    "William",
    "James",
    "Henry",
    "Leo",
    "Alfie",
    "Joshua",
    "Freddie",
    "Archie",
    "Arthur",
    "Daniel",
    "David",
    "Michael",
    "Peter",
    "John",
    "Robert",
    "Stephen",
    "Paul",
    "Andrew",
    "Mark",
    "Richard",
    "Ian",
)
FEMALE_GIVEN = (
    "Olivia",
    "Amelia",
    "Isla",
    "Ava",
    "Emily",
    "Sophia",
    "Grace",
    "Mia",
    "Poppy",
    "Ella",
    "Lily",
    "Evie",
    "Isabella",
    "Freya",
    "Florence",
    "Jessica",
    "Sophie",
    "Charlotte",
    "Margaret",
    "Susan",
    "Sarah",
    "Elizabeth",
    "Helen",
    "Karen",
    "Janet",
    "Patricia",
    "Joan",
    "Dorothy",
    "Rachel",
    "Hannah",
)
FAMILY_NAMES = (
    "Smith",
    "Jones",
    "Williams",
    "Taylor",
    "Brown",
    "Davies",
    "Evans",
    "Wilson",
    "Thomas",
    "Johnson",
    "Roberts",
    "Robinson",
    "Thompson",
    "Wright",
    "Walker",
    "White",
    "Edwards",
    "Hughes",
    "Green",
    "Hall",
    "Lewis",
    "Harris",
    "Clarke",
    "Patel",
    "Jackson",
    "Wood",
    "Turner",
    "Martin",
    "Cooper",
    "Hill",
    "Ward",
    "Morris",
    "Moore",
    "Clark",
    "Lee",
    "King",
    "Baker",
    "Harrison",
    "Morgan",
    "Allen",
    "James",
    "Scott",
    "Phillips",
    "Watson",
    "Davis",
    "Parker",
    "Price",
    "Bennett",
    "Young",
    "Griffiths",
    "Mitchell",
    "Kelly",
    "Cook",
    "Carter",
    "Richardson",
    "Bailey",
    "Collins",
    "Bell",
    "Shaw",
    "Murphy",
    "Khan",
    "Ahmed",
)
STREETS = (
    "Norton Road",
    "Yarm Lane",
    "Durham Road",
    "Oxbridge Lane",
    "Bishopton Road",
    "Hartburn Lane",
    "Darlington Road",
    "Portrack Lane",
    "Church Road",
    "Dovecot Street",
    "Bowesfield Lane",
    "Thornaby Road",
    "Elton Road",
    "Harrowgate Lane",
    "Ragworth Road",
)
POSTCODE_DISTRICTS = ("TS18", "TS19", "TS20")
POSTCODE_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # inward-code letters (no C, I, K, M, O, V)


def nhs_check_digit(first_nine: str) -> int | None:
    """Modulus 11 check digit of an NHS number's first 9 digits; None if no valid one."""
    total = sum(
        int(digit) * weight for digit, weight in zip(first_nine, range(10, 1, -1), strict=True)
    )
    check = 11 - (total % 11)
    if check == 11:
        return 0
    if check == 10:
        return None  # such a 9-digit stem is never issued
    return check


def is_valid_nhs_number(number: str) -> bool:
    if len(number) != 10 or not number.isdigit():
        return False
    return nhs_check_digit(number[:9]) == int(number[9])


def _id(key: str) -> str:
    return str(uuid.uuid5(NAMESPACE, key))


def organization_id(ods: str) -> str:
    return _id(f"organization:{ods}")


def practitioner_id(ods: str, role: str, n: int) -> str:
    return _id(f"{ods}:{role}:{n}")


def patient_id(ods: str, n: int) -> str:
    return _id(f"{ods}:patient:{n}")


@dataclass(frozen=True)
class DemoUser:
    id: str  # the Practitioner id; tokens carry it as `sub`
    role: str
    practice: str
    n: int
    given: str
    family: str
    gender: str
    sds_user_id: str
    prescriber: bool

    @property
    def display_name(self) -> str:
        prefix = "Dr " if self.role == "gp" else ""
        return f"{prefix}{self.given} {self.family}"


@cache
def demo_users() -> tuple[DemoUser, ...]:
    rng = random.Random(f"{SEED}:staff")
    users = []
    for practice in PRACTICES:
        for role in ROLES:
            for n in range(1, STAFF_COUNT[role] + 1):
                gender = rng.choice(("male", "female"))
                given = rng.choice(MALE_GIVEN if gender == "male" else FEMALE_GIVEN)
                prescriber = role == "gp" or (
                    role in ("nurse", "pharmacist")
                    and practice.ods in INDEPENDENT_PRESCRIBER_PRACTICES
                )
                users.append(
                    DemoUser(
                        id=practitioner_id(practice.ods, role, n),
                        role=role,
                        practice=practice.ods,
                        n=n,
                        given=given,
                        family=rng.choice(FAMILY_NAMES),
                        gender=gender,
                        sds_user_id=str(rng.randrange(10**11, 10**12)),
                        prescriber=prescriber,
                    )
                )
    return tuple(users)


def user_for(role: str, practice: str, n: int = 1) -> DemoUser:
    """The demo user holding `role` at `practice` (ODS code); KeyError explains a bad ask."""
    if role not in ROLES:
        raise KeyError(f"unknown role {role!r}; expected one of: {', '.join(ROLES)}")
    if practice not in PRACTICE_BY_ODS:
        raise KeyError(
            f"unknown practice {practice!r}; expected one of: {', '.join(PRACTICE_BY_ODS)}"
        )
    for user in demo_users():
        if user.role == role and user.practice == practice and user.n == n:
            return user
    raise KeyError(f"no demo user number {n} with role {role!r} at {practice}")


def _address(line: str, postcode: str) -> dict[str, Any]:
    return {
        "use": "work",
        "line": [line],
        "city": "Stockton-on-Tees",
        "district": "County Durham",
        "postalCode": postcode,
        "country": "GB",
    }


def organization_resource(practice: Practice) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "id": organization_id(practice.ods),
        "meta": {"profile": [f"{UKCORE}/UKCore-Organization"]},
        "identifier": [{"system": ODS_SYSTEM, "value": practice.ods}],
        "active": True,
        "type": [
            {
                "coding": [
                    {
                        "system": "https://fhir.nhs.uk/CodeSystem/organisation-role",
                        "code": "76",
                        "display": "GP PRACTICE",
                    }
                ]
            }
        ],
        "name": practice.name,
        "telecom": [{"system": "phone", "value": practice.phone, "use": "work"}],
        "address": [_address(practice.line, practice.postcode)],
    }


def practitioner_resource(user: DemoUser) -> dict[str, Any]:
    name: dict[str, Any] = {"use": "official", "family": user.family, "given": [user.given]}
    if user.role == "gp":
        name["prefix"] = ["Dr"]
    return {
        "resourceType": "Practitioner",
        "id": user.id,
        "meta": {"profile": [f"{UKCORE}/UKCore-Practitioner"]},
        "identifier": [{"system": SDS_USER_SYSTEM, "value": user.sds_user_id}],
        "active": True,
        "name": [name],
        "gender": user.gender,
    }


def practitioner_role_resource(user: DemoUser) -> dict[str, Any]:
    return {
        "resourceType": "PractitionerRole",
        "id": _id(f"{user.practice}:{user.role}:{user.n}:role"),
        "meta": {"profile": [f"{UKCORE}/UKCore-PractitionerRole"]},
        "active": True,
        "practitioner": {"reference": f"Practitioner/{user.id}", "display": user.display_name},
        "organization": {
            "reference": f"Organization/{organization_id(user.practice)}",
            "identifier": {"system": ODS_SYSTEM, "value": user.practice},
        },
        "code": [{"text": ROLE_DISPLAY[user.role]}],
    }


def _random_postcode(rng: random.Random) -> str:
    district, sector = rng.choice(POSTCODE_DISTRICTS), rng.randint(1, 9)
    return f"{district} {sector}{rng.choice(POSTCODE_LETTERS)}{rng.choice(POSTCODE_LETTERS)}"


DEMO_NHS_STEMS = 500_000


def _nhs_numbers(rng: random.Random, count: int) -> list[str]:
    numbers: list[str] = []
    seen: set[str] = set()
    while len(numbers) < count:
        # The lower half of the range: tests mint theirs from the upper half
        # (gpsoc_kit.testing.fhir_factories), so a test never collides with a demo patient.
        stem = f"999{rng.randrange(DEMO_NHS_STEMS):06d}"
        check = nhs_check_digit(stem)
        if check is None or stem + str(check) in seen:
            continue
        seen.add(stem + str(check))
        numbers.append(stem + str(check))
    return numbers


def _patient(
    rng: random.Random, practice: Practice, n: int, nhs_number: str, gp: DemoUser
) -> dict[str, Any]:
    gender = rng.choice(("male", "female"))
    given = rng.choice(MALE_GIVEN if gender == "male" else FEMALE_GIVEN)
    middle = (
        rng.choice(MALE_GIVEN if gender == "male" else FEMALE_GIVEN) if rng.random() < 0.4 else None
    )
    family = rng.choice(FAMILY_NAMES)
    first, last = date(1930, 1, 1), date(2024, 12, 31)
    birth = first + timedelta(days=rng.randrange((last - first).days + 1))
    name: dict[str, Any] = {
        "use": "official",
        "family": family,
        "given": [given] + ([middle] if middle else []),
    }
    if birth.year < 2008:  # adults get a title
        name["prefix"] = ["Mr"] if gender == "male" else [rng.choice(("Mrs", "Ms", "Miss"))]
    telecom = [{"system": "phone", "value": f"07700 900{rng.randrange(1000):03d}", "use": "mobile"}]
    if rng.random() < 0.5:
        telecom.append(
            {"system": "email", "value": f"{given}.{family}{n}@example.com".lower(), "use": "home"}
        )
    org_ref = {
        "reference": f"Organization/{organization_id(practice.ods)}",
        "identifier": {"system": ODS_SYSTEM, "value": practice.ods},
        "display": practice.name,
    }
    return {
        "resourceType": "Patient",
        "id": patient_id(practice.ods, n),
        "meta": {"profile": [f"{UKCORE}/UKCore-Patient"]},
        "identifier": [
            {
                "extension": [NHS_NUMBER_VERIFICATION_EXTENSION],
                "system": NHS_NUMBER_SYSTEM,
                "value": nhs_number,
            }
        ],
        "active": True,
        "name": [name],
        "telecom": telecom,
        "gender": gender,
        "birthDate": birth.isoformat(),
        "address": [
            {
                "use": "home",
                "line": [f"{rng.randint(1, 180)} {rng.choice(STREETS)}"],
                "city": "Stockton-on-Tees",
                "postalCode": _random_postcode(rng),
                "country": "GB",
            }
        ],
        "generalPractitioner": [
            org_ref,
            {"reference": f"Practitioner/{gp.id}", "display": gp.display_name},
        ],
        "managingOrganization": {
            "reference": f"Organization/{organization_id(practice.ods)}",
            "identifier": {"system": ODS_SYSTEM, "value": practice.ods},
        },
    }


def dataset() -> dict[str, list[dict[str, Any]]]:
    """The whole demo dataset (a fresh copy each call; callers may mutate it)."""
    rng = random.Random(f"{SEED}:patients")
    nhs_numbers = iter(_nhs_numbers(rng, PATIENTS_PER_PRACTICE * len(PRACTICES)))
    patients = []
    for practice in PRACTICES:
        gps = [u for u in demo_users() if u.practice == practice.ods and u.role == "gp"]
        for n in range(1, PATIENTS_PER_PRACTICE + 1):
            gp = gps[(n - 1) % len(gps)]  # list split between the practice's GPs
            patients.append(
                {
                    "practice": practice.ods,
                    "resource": _patient(rng, practice, n, next(nhs_numbers), gp),
                }
            )
    return {
        "organizations": [organization_resource(practice) for practice in PRACTICES],
        "practitioners": [
            {
                "resource": practitioner_resource(user),
                "role": user.role,
                "practice": user.practice,
                "prescriber": user.prescriber,
                "display": user.display_name,
                "practitionerRole": practitioner_role_resource(user),
            }
            for user in demo_users()
        ],
        "patients": patients,
    }
