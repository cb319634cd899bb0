"""Synthetic patients: deterministic, valid UK Core Patient resources with test-range NHS numbers.

NHS numbers come from the 999 range (never issued to real people), in order, skipping
stems whose Modulus 11 check digit would be 10. One allocator hands out the numbers of
the loaded patients first and then fresh ones for registrations, so a registration never
collides with a loaded patient (which would answer 409).
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
PRACTICES = ("A81001", "A81002")
NAMESPACE = uuid.UUID("8f0c6a4e-3b1d-4f7e-9a51-0b3e2d6c9a10")

MALE_GIVEN = (
    "Oliver George Harry Noah Jack Charlie Jacob Thomas Oscar William James Henry Leo Alfie "
    "Joshua Freddie Archie Arthur Daniel David Michael Peter John Robert Stephen Paul Andrew Mark "
    "Richard Ian Ethan Isaac Lucas Samuel Joseph Max Logan Adam Dylan Edward Sebastian Theo Toby "
    "Reuben Alexander Finley Harrison Mohammed Muhammad Ali Omar Yusuf Ibrahim Rohan Arjun Kieran "
    "Connor Liam Callum Ewan Rhys Owen Gareth Dafydd Ciaran Declan Patrick Sean Brian Keith Colin "
    "Graham Neil Gary Kevin Trevor Derek Malcolm Roger Nigel Simon Martin Philip Anthony"
).split()
FEMALE_GIVEN = (
    "Olivia Amelia Isla Ava Emily Sophia Grace Mia Poppy Ella Lily Evie Isabella Freya Florence "
    "Jessica Sophie Charlotte Margaret Susan Sarah Elizabeth Helen Karen Janet Patricia Joan "
    "Dorothy Rachel Hannah Chloe Ruby Daisy Alice Phoebe Matilda Rosie Ivy Willow Harper Evelyn "
    "Aisha Fatima Maryam Zara Priya Anjali Niamh Siobhan Aoife Caitlin Megan Bethan Seren Cerys "
    "Eleanor Victoria Catherine Louise Claire Nicola Joanne Lisa Julie Tracey Deborah Gillian "
    "Pauline Brenda Shirley Maureen Valerie Beverley Wendy Angela Amanda Michelle Emma Laura Kate"
).split()
FAMILY_NAMES = (
    "Smith Jones Williams Taylor Brown Davies Evans Wilson Thomas Johnson Roberts Robinson "
    "Thompson Wright Walker White Edwards Hughes Green Hall Lewis Harris Clarke Patel Jackson Wood "
    "Turner Martin Cooper Hill Ward Morris Moore Clark Lee King Baker Harrison Morgan Allen James "
    "Scott Phillips Watson Davis Parker Price Bennett Young Griffiths Mitchell Kelly Cook Carter "
    "Richardson Bailey Collins Bell Shaw Murphy Khan Ahmed Miller Cox Richards Marshall Anderson "
    "Simpson Ellis Adams Singh Begum Wilkinson Foster Chapman Powell Webb Rogers Gray Mason Ali "
    "Hunt Hussain Campbell Matthews Owen Palmer Holmes Mills Barnes Knight Lloyd Butler Russell "
    "Barker Fisher Stevens Jenkins Murray Dixon Harvey Graham Pearson Ahmad Fletcher Walsh Kaur "
    "Gibson Howard Andrews Stewart Elliott Reynolds Saunders Payne Fox Ford Pearce Day Brooks West "
    "Lawrence Cole Atkinson Bradley Spencer Gill Dawson Ball Burton O'Brien Watts Rose Booth Perry "
    "Ryan Grant Wells Armstrong Francis Rees Hayes Hart Hudson Newman Barrett Webster Hunter "
    "Gregory Carr Lowe Page Marsh Riley Dunn Woods Parsons Berry Stone Reid Holland Hawkins "
    "Harding Porter Robertson Newton Oliver Reed Kennedy Williamson Bird Gardner Shah Dean Lane "
    "Cooke Bates Henderson Parry Burgess Bishop Walton Burns Nicholson Shepherd Ross Cross Long "
    "Freeman Warren Nicholls Hamilton Byrne Sutton McDonald Yates Hodgson Robson Curtis Hopkins "
    "O'Connor Harper Coleman Watkins Moss McCarthy Chambers O'Neill Griffin Sharp Hardy Wheeler "
    "Potter Osborne Johnston Gordon Doyle Wallace George Jordan Hutchinson Rowe Burke May "
    "Pritchard "
    "Gilbert Willis Higgins Read Miles Stevenson Stephenson Hammond Arnold Buckley Walters Hewitt "
    "Barber Nelson Slater Austin Sullivan Whitehead Mann Frost Lambert Stephens Blake Akhtar Lynch "
    "Goodwin Barton Woodward Thomson Cunningham Quinn Barnett Baxter Bibi Clayton Nash Greenwood "
    "Jennings Holt Kemp Poole Gallagher Bond Stokes Tucker Davidson Fowler Heath Norman Middleton "
    "Lawson Banks French Stanley Jarvis Gibbs Ferguson Hayward Carroll Douglas Dickinson Todd "
    "Barlow Peters Lucas Knowles Hartley Miah Simmons Morton Alexander Field Morrison Norris "
    "Townsend Preston Hancock Thornton Baldwin Burrows Briggs Storey Pollard Howe Leach Whittaker "
    "Tomlinson Sanderson Kirby Hargreaves Iqbal Sheppard Waters Lees Fitzgerald Akram Rahman Begg"
).split()
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
    "Station Road",
    "High Street",
    "Victoria Road",
    "Mill Lane",
    "Park Avenue",
    "Green Lane",
    "The Crescent",
    "Queens Road",
)
POSTCODE_DISTRICTS = ("TS17", "TS18", "TS19", "TS20", "TS21", "TS22", "TS23")
POSTCODE_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"


def check_digit(first_nine: str) -> int | None:
    total = sum(int(d) * w for d, w in zip(first_nine, range(10, 1, -1), strict=True))
    digit = 11 - total % 11
    return 0 if digit == 11 else None if digit == 10 else digit


def is_valid_nhs_number(value: str) -> bool:
    return len(value) == 10 and value.isdigit() and check_digit(value[:9]) == int(value[9])


class NhsNumbers:
    """Valid 999-range NHS numbers, in order, never the same one twice."""

    def __init__(self, start_stem: int = 999_000_000) -> None:
        self._next = start_stem

    def take(self) -> str:
        while self._next <= 999_999_999:
            stem = str(self._next)
            self._next += 1
            digit = check_digit(stem)
            if digit is not None:
                return f"{stem}{digit}"
        raise RuntimeError("the 999 range of test NHS numbers is used up")

    def take_many(self, count: int) -> list[str]:
        return [self.take() for _ in range(count)]


@dataclass(frozen=True)
class SyntheticPatient:
    index: int
    id: str
    practice: str
    nhs_number: str
    family: str
    given: tuple[str, ...]
    resource: dict[str, Any]  # the Patient as a client would POST it (no id, no meta)


def patient_resource(
    rng: random.Random, nhs_number: str
) -> tuple[dict[str, Any], str, tuple[str, ...]]:
    gender = rng.choice(("male", "female"))
    pool = MALE_GIVEN if gender == "male" else FEMALE_GIVEN
    given = (rng.choice(pool),) if rng.random() < 0.6 else (rng.choice(pool), rng.choice(pool))
    family = rng.choice(FAMILY_NAMES)
    birth = dt.date(1930, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 94))
    postcode = (
        f"{rng.choice(POSTCODE_DISTRICTS)} {rng.randrange(1, 10)}"
        f"{rng.choice(POSTCODE_LETTERS)}{rng.choice(POSTCODE_LETTERS)}"
    )
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [
            {
                "system": NHS_NUMBER_SYSTEM,
                "value": nhs_number,
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
        "active": True,
        "name": [
            {
                "use": "official",
                "family": family,
                "given": list(given),
                "prefix": ["Mr" if gender == "male" else rng.choice(("Mrs", "Ms", "Miss"))],
            }
        ],
        "telecom": [
            {"system": "phone", "value": f"07700 9{rng.randrange(0, 100000):05d}", "use": "mobile"}
        ],
        "gender": gender,
        "birthDate": birth.isoformat(),
        "address": [
            {
                "use": "home",
                "line": [f"{rng.randrange(1, 200)} {rng.choice(STREETS)}"],
                "city": "Stockton-on-Tees",
                "postalCode": postcode,
                "country": "GB",
            }
        ],
    }
    return resource, family, given


def generate(count: int, numbers: NhsNumbers, *, seed: int) -> Iterator[SyntheticPatient]:
    """`count` patients spread evenly over the two demo practices."""
    rng = random.Random(seed)
    for index in range(count):
        nhs = numbers.take()
        resource, family, given = patient_resource(rng, nhs)
        yield SyntheticPatient(
            index=index,
            id=str(uuid.uuid5(NAMESPACE, f"patient:{seed}:{index}")),
            practice=PRACTICES[index % len(PRACTICES)],
            nhs_number=nhs,
            family=family,
            given=given,
            resource=resource,
        )


def with_typo(name: str, rng: random.Random) -> str:
    """The name as a hurried receptionist might type it: two inner letters swapped, or one
    letter doubled or dropped."""
    letters = list(name)
    if len(letters) >= 4:
        kind = rng.randrange(3)
        i = rng.randrange(1, len(letters) - 2)
        if kind == 0:
            letters[i], letters[i + 1] = letters[i + 1], letters[i]
            if letters == list(name):  # swapping equal letters changes nothing: drop one
                del letters[i]
        elif kind == 1:
            letters.insert(i, letters[i])
        else:
            del letters[i]
    else:
        letters.append(letters[-1])
    return "".join(letters)
