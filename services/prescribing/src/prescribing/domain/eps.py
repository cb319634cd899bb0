"""The outbound Electronic Prescription Service (EPS) message for one issue.

Each issue becomes a FHIR message (Bundle type "message", MessageHeader event
"prescription-order") in the shape the EPS FHIR API accepts, with the short-form
prescription id EPS requires. Sending it to Spine is not done here: messages wait
in the eps_outbox table for a transport adapter, and the one this service ships
(service_layer.transport) only simulates Spine.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

PRESCRIPTION_ORDER_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/prescription-order-number"
PRESCRIPTION_ID_SYSTEM = "https://fhir.nhs.uk/Id/prescription"
PRESCRIPTION_ID_EXTENSION = "https://fhir.nhs.uk/StructureDefinition/Extension-DM-PrescriptionId"
MESSAGE_EVENT_SYSTEM = "https://fhir.nhs.uk/CodeSystem/message-event"
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
# ISO/IEC 7064 MOD 37-2 as EPS uses it: "+" in place of the standard's "*" for value 36.
CHECK_CHARACTERS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ+"
SHORT_FORM_PATTERN = re.compile(r"^[0-9A-F]{6}-[0-9A-Z]{6}-[0-9A-F]{5}[0-9A-Z+]$")
SEQUENCE_MODULUS = 0x100000  # five hex characters, reset after FFFFF


def check_character(body: str) -> str:
    """The MOD 37-2 check character for the 17 characters of an id without its hyphens."""
    total = 0
    for char in body:
        total = ((total + int(char, 36)) * 2) % 37
    return CHECK_CHARACTERS[(38 - total) % 37]


def short_form_prescription_id(random_part: str, ods_code: str, sequence: int) -> str:
    """XXXXXX-XXXXXX-XXXXXC: 6 random hex, the prescriber's ODS code zero-padded to 6,
    a 5-hex sequence, and the check character over all of it."""
    if not re.fullmatch(r"[0-9A-F]{6}", random_part):
        raise ValueError("random_part must be 6 upper-case hex characters")
    ods = ods_code.upper().rjust(6, "0")
    if not re.fullmatch(r"[0-9A-Z]{6}", ods):
        raise ValueError("an EPS prescriber ODS code has at most 6 letters and digits")
    sequence_part = f"{sequence % SEQUENCE_MODULUS:05X}"
    body = random_part + ods + sequence_part
    return f"{random_part}-{ods}-{sequence_part}{check_character(body)}"


def is_valid_short_form_id(value: str) -> bool:
    if not SHORT_FORM_PATTERN.match(value):
        return False
    body = value.replace("-", "")
    return check_character(body[:-1]) == body[-1]


@dataclass(frozen=True)
class PatientDetails:
    id: str
    nhs_number: str | None
    family: str
    given: str
    birth_date: str | None
    gender: str | None


@dataclass(frozen=True)
class Prescriber:
    practitioner_id: str
    name: str
    role_code: str


def prescription_order_message(*, message_id: str, timestamp: str, practice_ods: str,
                               order: dict[str, Any], patient: PatientDetails,
                               prescriber: Prescriber, prescription_id: str,
                               prescription_uuid: str) -> dict[str, Any]:
    """A Bundle of type message: MessageHeader, MedicationRequest, Patient, Practitioner,
    PractitionerRole and Organization, each referenced by urn:uuid as EPS expects."""
    urls = {name: f"urn:uuid:{ident}" for name, ident in (
        ("request", order["id"]), ("patient", patient.id),
        ("practitioner", prescriber.practitioner_id),
        # The role and organisation have no ids of their own here: derive stable ones.
        ("role", uuid.uuid5(uuid.NAMESPACE_URL, f"PractitionerRole/{prescriber.practitioner_id}"
                            f"/{practice_ods}")),
        ("organization", uuid.uuid5(uuid.NAMESPACE_URL, f"Organization/{practice_ods}")))}
    medication_request = dict(order)
    medication_request["subject"] = {"reference": urls["patient"]}
    medication_request["requester"] = {"reference": urls["role"]}
    medication_request["groupIdentifier"] = {
        "system": PRESCRIPTION_ORDER_NUMBER_SYSTEM,
        "value": prescription_id,
        "extension": [{"url": PRESCRIPTION_ID_EXTENSION, "valueIdentifier": {
            "system": PRESCRIPTION_ID_SYSTEM, "value": prescription_uuid}}],
    }
    medication_request.pop("meta", None)
    medication_request.pop("contained", None)
    header = {
        "resourceType": "MessageHeader",
        "id": message_id,
        "eventCoding": {"system": MESSAGE_EVENT_SYSTEM, "code": "prescription-order",
                        "display": "Prescription Order"},
        "sender": {"identifier": {"system": ODS_SYSTEM, "value": practice_ods},
                   "reference": urls["role"]},
        "source": {"endpoint": f"urn:nhs-uk:addressing:ods:{practice_ods}"},
        "focus": [{"reference": urls["patient"]}, {"reference": urls["request"]}],
    }
    patient_resource: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": patient.nhs_number}]
        if patient.nhs_number else [],
        "name": [{"use": "usual", "family": patient.family, "given": patient.given.split()}],
    }
    if patient.birth_date:
        patient_resource["birthDate"] = patient.birth_date
    if patient.gender:
        patient_resource["gender"] = patient.gender
    practitioner = {"resourceType": "Practitioner",
                    "name": [{"text": prescriber.name}] if prescriber.name else []}
    role = {
        "resourceType": "PractitionerRole",
        "practitioner": {"reference": urls["practitioner"]},
        "organization": {"reference": urls["organization"]},
        "code": [{"coding": [{"system": "https://fhir.nhs.uk/CodeSystem/NHSDigital-SDS-JobRoleCode",
                              "code": prescriber.role_code}]}] if prescriber.role_code else [],
    }
    organization = {"resourceType": "Organization",
                    "identifier": [{"system": ODS_SYSTEM, "value": practice_ods}]}
    entries = [("urn:uuid:" + message_id, header), (urls["request"], medication_request),
               (urls["patient"], patient_resource), (urls["practitioner"], practitioner),
               (urls["role"], role), (urls["organization"], organization)]
    return {
        "resourceType": "Bundle",
        "id": message_id,
        "identifier": {"system": "https://tools.ietf.org/html/rfc4122", "value": message_id},
        "type": "message",
        "timestamp": timestamp,
        "entry": [{"fullUrl": url, "resource": resource} for url, resource in entries],
    }
