"""The demo dataset: valid, unique, never-issued NHS numbers; stable ids; consistent references."""

import json
import uuid

import pytest
from devstack import demo


@pytest.fixture(scope="module")
def data():
    return demo.dataset()


def nhs_numbers(data):
    return [
        identifier["value"]
        for entry in data["patients"]
        for identifier in entry["resource"]["identifier"]
        if identifier["system"] == demo.NHS_NUMBER_SYSTEM
    ]


def test_three_hundred_patients_per_practice(data):
    for practice in ("A81001", "A81002"):
        assert sum(1 for p in data["patients"] if p["practice"] == practice) == 300


def test_nhs_numbers_are_valid_unique_and_from_the_999_range(data):
    numbers = nhs_numbers(data)
    assert len(numbers) == 600
    assert len(set(numbers)) == 600
    for number in numbers:
        assert number.startswith("999") and len(number) == 10
        weights = range(10, 1, -1)
        remainder = sum(int(d) * w for d, w in zip(number[:9], weights, strict=True)) % 11
        check = 11 - remainder
        assert check != 10
        assert int(number[9]) == (0 if check == 11 else check)


def test_check_digit_rules():
    # 943 476 5919 is the NHS's published example of a valid number.
    assert demo.is_valid_nhs_number("9434765919")
    assert not demo.is_valid_nhs_number("9434765918")
    assert demo.nhs_check_digit("000000001") is None or demo.nhs_check_digit("000000001") >= 0
    # A stem whose check would be 10 has no valid number.
    stem = next(f"999{n:06d}" for n in range(10**6) if demo.nhs_check_digit(f"999{n:06d}") is None)
    assert not any(demo.is_valid_nhs_number(stem + str(d)) for d in range(10))


def test_dataset_is_deterministic(data):
    assert json.dumps(demo.dataset(), sort_keys=True) == json.dumps(data, sort_keys=True)


def test_patients_follow_uk_core(data):
    org_ids = {org["id"]: org for org in data["organizations"]}
    practitioner_ids = {p["resource"]["id"] for p in data["practitioners"]}
    for entry in data["patients"]:
        patient = entry["resource"]
        assert patient["resourceType"] == "Patient"
        assert uuid.UUID(patient["id"]).version == 5
        identifier = patient["identifier"][0]
        assert identifier["extension"][0] == demo.NHS_NUMBER_VERIFICATION_EXTENSION
        assert patient["gender"] in ("male", "female")
        assert "1930-01-01" <= patient["birthDate"] <= "2024-12-31"
        assert patient["address"][0]["postalCode"].startswith("TS")
        org_ref, gp_ref = patient["generalPractitioner"]
        org_id = org_ref["reference"].removeprefix("Organization/")
        assert org_ids[org_id]["identifier"][0]["value"] == entry["practice"]
        assert patient["managingOrganization"]["reference"] == org_ref["reference"]
        assert gp_ref["reference"].removeprefix("Practitioner/") in practitioner_ids


def test_staff_roles_and_prescribers(data):
    staff = {(p["practice"], p["role"]) for p in data["practitioners"]}
    for practice in ("A81001", "A81002"):
        for role in demo.ROLES:
            assert (practice, role) in staff
    assert (
        sum(1 for p in data["practitioners"] if p["role"] == "gp" and p["practice"] == "A81001")
        == 2
    )
    for p in data["practitioners"]:
        assert len(p["resource"]["identifier"][0]["value"]) == 12
        if p["role"] == "gp":
            assert p["resource"]["name"][0]["prefix"] == ["Dr"] and p["prescriber"]
    assert demo.user_for("nurse", "A81001").prescriber
    assert demo.user_for("pharmacist", "A81001").prescriber
    assert not demo.user_for("nurse", "A81002").prescriber
    assert not demo.user_for("pharmacist", "A81002").prescriber
    assert not demo.user_for("receptionist", "A81001").prescriber
    assert demo.user_for("gp", "A81001").id == str(uuid.uuid5(demo.NAMESPACE, "A81001:gp:1"))


def test_user_for_rejects_unknown_role_and_practice():
    with pytest.raises(KeyError, match="unknown role"):
        demo.user_for("surgeon", "A81001")
    with pytest.raises(KeyError, match="unknown practice"):
        demo.user_for("gp", "Z99999")
