"""Domain rules with no I/O: NHS numbers, names, patient validation and transitions."""

from __future__ import annotations

import pytest
from gpsoc_kit.errors import InvalidResource, InvalidTransition
from gpsoc_kit.testing.fhir_factories import patient
from patient_index.domain.names import edit_distance, names_match, normalise, soundex
from patient_index.domain.nhs_number import NhsNumber, check_digit, is_valid_nhs_number
from patient_index.domain.patient import EventType, event_for_update, read_details


@pytest.mark.parametrize("number", ["9434765919", "9990000018", "4010232137"])
def test_valid_nhs_numbers(number):
    assert is_valid_nhs_number(number)


@pytest.mark.parametrize(
    "number",
    [
        "9434765918",  # wrong check digit
        "123456789",  # nine digits
        "12345678901",  # eleven
        "94347659l9",  # a letter
        "",
        "٩٤٣٤٧٦٥٩١٩",  # Arabic-Indic digits are digits to str.isdigit, not to us
    ],
)
def test_invalid_nhs_numbers(number):
    assert not is_valid_nhs_number(number)


def test_a_check_result_of_ten_means_the_number_was_never_issued():
    # 999000001x: weights give 11 - (sum % 11) == 10 for this body.
    body = next(f"999{n:06d}" for n in range(1000) if check_digit(f"999{n:06d}") is None)
    assert not any(is_valid_nhs_number(body + str(d)) for d in range(10))


def test_nhs_number_accepts_the_spaced_display_form():
    assert NhsNumber.parse("943 476 5919").formatted() == "943 476 5919"
    with pytest.raises(ValueError):
        NhsNumber("9434765918")


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("Smiht", "Smith"),
        ("Smyth", "Smith"),
        ("Tompson", "Thompson"),
        ("Ashcroft", "Ashcraft"),
        ("O'Brien", "OBrien"),
        ("Zoë", "Zoe"),
    ],
)
def test_names_match_despite_a_typo(typed, stored):
    assert names_match(typed, stored)


@pytest.mark.parametrize(("typed", "stored"), [("Smith", "Jones"), ("Patel", "Khan")])
def test_different_names_do_not_match(typed, stored):
    assert not names_match(typed, stored)


def test_soundex_and_normalisation():
    assert soundex("Robert") == soundex("Rupert") == "R163"
    assert soundex("Ashcraft") == "A261"
    assert normalise("  Mary-Jane  O'Neill ") == "mary-jane oneill"
    assert edit_distance("smith", "smiht") == 1


def test_an_invalid_nhs_number_names_the_field():
    with pytest.raises(InvalidResource) as err:
        read_details(patient(nhs_number="9434765918"))
    assert err.value.problems[0].expression == "Patient.identifier[0].value"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"gender": "robot"}, "Patient.gender"),
        ({"birthDate": "3000-01-01"}, "Patient.birthDate"),
        ({"birthDate": "12/03/1980"}, "Patient.birthDate"),
        ({"name": []}, "Patient.name"),
        ({"deceasedDateTime": "1900-01-01"}, "Patient.deceasedDateTime"),
    ],
)
def test_invalid_patients_are_refused_naming_the_field(change, field):
    with pytest.raises(InvalidResource) as err:
        read_details(patient(**change))
    assert field in [p.expression for p in err.value.problems]


def test_an_update_that_records_a_death_is_a_death_event():
    alive = read_details(patient())
    dead = read_details(patient(deceasedDateTime="2026-01-01"))
    assert event_for_update(alive, dead) == EventType.DECEASED
    assert event_for_update(alive, read_details(patient(active=False))) == EventType.DEREGISTERED
    assert event_for_update(alive, read_details(patient(gender="male"))) == EventType.UPDATED


def test_a_recorded_death_cannot_be_undone_by_an_update():
    with pytest.raises(InvalidTransition):
        event_for_update(
            read_details(patient(deceasedDateTime="2026-01-01")), read_details(patient())
        )
