"""The EPS short-form prescription id and the outbound message shape: no I/O."""

from __future__ import annotations

import pytest
from prescribing.domain import eps


@pytest.mark.parametrize("known", [
    "18B064-A99968-4BCAA3",  # NHS Digital EPS FHIR API test data
    "83C40E-A23856-00123W",  # NHS England FHIR implementation guide example
])
def test_published_prescription_ids_have_valid_mod_37_2_check_characters(known):
    assert eps.is_valid_short_form_id(known)


def test_a_changed_character_fails_the_check():
    assert not eps.is_valid_short_form_id("18B064-A99968-4BCAA4")
    assert not eps.is_valid_short_form_id("18B065-A99968-4BCAA3")


def test_a_new_id_pads_the_ods_code_and_carries_the_sequence_in_five_hex_characters():
    value = eps.short_form_prescription_id("ABC123", "Y1234", 0x2A)
    assert value.startswith("ABC123-0Y1234-0002A")
    assert eps.is_valid_short_form_id(value)
    assert eps.short_form_prescription_id("ABC123", "A81001", 0x100001)[14:19] == "00001"


def test_check_character_may_be_plus():
    # Some body has check value 36, written "+" in EPS (the standard's "*").
    bodies = (f"ABC123A81001{n:05X}" for n in range(5000))
    body = next(b for b in bodies if eps.check_character(b) == "+")
    assert eps.is_valid_short_form_id(f"{body[:6]}-{body[6:12]}-{body[12:]}+")


def test_the_message_is_an_eps_prescription_order_bundle():
    order = {"resourceType": "MedicationRequest", "id": "0b6a4f0e-0000-4000-8000-000000000001",
             "intent": "order", "status": "active", "meta": {"versionId": "1"}}
    message = eps.prescription_order_message(
        message_id="0b6a4f0e-0000-4000-8000-0000000000aa", timestamp="2026-11-23T10:00:00Z",
        practice_ods="A81001", order=order,
        patient=eps.PatientDetails("0b6a4f0e-0000-4000-8000-0000000000bb", "9990000018",
                                   "Smith", "Alice Mary", "1980-01-02", "female"),
        prescriber=eps.Prescriber("0b6a4f0e-0000-4000-8000-0000000000cc", "Dr Who", "R8000"),
        prescription_id="18B064-A99968-4BCAA3",
        prescription_uuid="0b6a4f0e-0000-4000-8000-0000000000dd")
    assert message["type"] == "message"
    types = [e["resource"]["resourceType"] for e in message["entry"]]
    assert types == ["MessageHeader", "MedicationRequest", "Patient", "Practitioner",
                     "PractitionerRole", "Organization"]
    header = message["entry"][0]["resource"]
    assert header["eventCoding"]["code"] == "prescription-order"
    full_urls = {e["fullUrl"] for e in message["entry"]}
    assert {f["reference"] for f in header["focus"]} <= full_urls
    request = message["entry"][1]["resource"]
    assert request["groupIdentifier"]["value"] == "18B064-A99968-4BCAA3"
    assert request["subject"]["reference"] in full_urls
    assert request["requester"]["reference"] in full_urls
    assert "meta" not in request
    patient = message["entry"][2]["resource"]
    assert patient["identifier"][0] == {"system": eps.NHS_NUMBER_SYSTEM, "value": "9990000018"}
