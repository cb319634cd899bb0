"""vegeta targets for each operation and system, each request on a different patient."""

from __future__ import annotations

import json
import random
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .dataset import NHS_NUMBER_SYSTEM, NhsNumbers, SyntheticPatient, patient_resource, with_typo
from .vegeta import Target, write_targets

EXPECTED_STATUS = {
    "read": 200,
    "nhs": 200,
    "phonetic": 200,
    "register": 201,
    "slot-search": 200,
    "book": 201,
    "authorise": 201,
    "issue": 201,
    "summary": 200,
}
FHIR_JSON = "application/fhir+json"


@dataclass(frozen=True)
class System:
    name: str  # gateway | direct | floor
    base_url: str  # e.g. http://127.0.0.1:28080/fhir/R4, http://127.0.0.1:28101
    tokens: dict[str, dict[str, str]]  # role -> practice -> bearer token (empty for the floor)

    def headers(self, role: str, practice: str) -> dict[str, str]:
        headers = {"Accept": FHIR_JSON}
        if self.name == "floor":
            headers["X-Practice"] = practice
        else:
            headers["Authorization"] = f"Bearer {self.tokens[role][practice]}"
        return headers


def _query(value: str) -> str:
    return urllib.parse.quote(value, safe="")


def request_for(op: str, system: System, patient: SyntheticPatient, rng: random.Random) -> Target:
    """The request of operation `op` about `patient` (for register: a new patient to POST)."""
    base = system.base_url
    if op == "read":
        return Target("GET", f"{base}/Patient/{patient.id}", system.headers("gp", patient.practice))
    if op == "nhs":
        identifier = _query(f"{NHS_NUMBER_SYSTEM}|{patient.nhs_number}")
        return Target(
            "GET", f"{base}/Patient?identifier={identifier}", system.headers("gp", patient.practice)
        )
    if op == "phonetic":
        return Target(
            "GET",
            f"{base}/Patient?phonetic={_query(with_typo(patient.family, rng))}",
            system.headers("gp", patient.practice),
        )
    if op == "register":
        headers = system.headers("receptionist", patient.practice) | {"Content-Type": FHIR_JSON}
        body = json.dumps(patient.resource, separators=(",", ":")).encode()
        return Target("POST", f"{base}/Patient", headers, body)
    raise ValueError(op)


def new_patients(
    count: int, numbers: NhsNumbers, rng: random.Random, practices: Sequence[str], start_index: int
) -> Iterator[SyntheticPatient]:
    """Patients not yet registered, with NHS numbers never handed out before."""
    for i in range(count):
        nhs = numbers.take()
        resource, family, given = patient_resource(rng, nhs)
        yield SyntheticPatient(
            index=start_index + i,
            id="",
            practice=practices[i % len(practices)],
            nhs_number=nhs,
            family=family,
            given=given,
            resource=resource,
        )


class TargetFactory:
    """Writes target files. Reads sample the loaded patients (vegeta cycles through the
    file); registrations get as many fresh NHS numbers as the attack could possibly use,
    so no registration ever repeats one."""

    def __init__(
        self,
        directory: Path,
        loaded: Sequence[SyntheticPatient],
        numbers: NhsNumbers,
        *,
        seed: int,
        read_sample: int = 50_000,
    ) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.loaded = loaded
        self.numbers = numbers
        self.rng = random.Random(seed)
        self.read_sample = read_sample
        self._registered = 0
        self._counter = 0

    def write(self, op: str, system: System, *, max_requests: int) -> tuple[Path, int]:
        self._counter += 1
        path = self.directory / f"{self._counter:02d}-{system.name}-{op}.jsonl"
        if op == "register":
            practices = sorted({p.practice for p in self.loaded}) or ["A81001"]
            patients = list(
                new_patients(
                    max_requests,
                    self.numbers,
                    self.rng,
                    practices,
                    len(self.loaded) + self._registered,
                )
            )
            self._registered += max_requests
        else:
            patients = self.rng.sample(list(self.loaded), min(self.read_sample, len(self.loaded)))
        count = write_targets(path, (request_for(op, system, p, self.rng) for p in patients))
        return path, count
