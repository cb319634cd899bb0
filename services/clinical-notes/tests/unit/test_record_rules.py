"""The record's rules, in milliseconds: versioning, entered-in-error, BMI, plausibility, codes."""

from __future__ import annotations

import uuid

import pytest
from clinical_notes.domain import entries, observations
from clinical_notes.domain.events import EventType, event_data, event_for
from clinical_notes.domain.primary_care_refset import CONCEPTS
from clinical_notes.domain.snomed import is_concept_id, search, verhoeff_valid
from clinical_notes.examples import (
    allergy,
    blood_pressure,
    condition,
    encounter,
    hba1c,
    height,
    no_known_allergy,
    weight,
)
from gpsoc_kit.errors import InvalidResource, InvalidTransition

PATIENT = str(uuid.uuid4())


def problems_of(resource):
    with pytest.raises(InvalidResource) as caught:
        entries.read_entry(resource)
    return {p.expression: p.message for p in caught.value.problems}


@pytest.mark.parametrize(("systolic", "diastolic"), [(900, 80), (120, 5), (30, 20)])
def test_implausible_blood_pressure_is_refused_naming_the_component(systolic, diastolic):
    found = problems_of(blood_pressure(PATIENT, systolic, diastolic))
    assert any(where.startswith("Observation.component[") for where in found)


def test_systolic_must_be_above_diastolic():
    found = problems_of(blood_pressure(PATIENT, 80, 90))
    assert "higher than diastolic" in found["Observation.component"]


def test_blood_pressure_without_a_diastolic_component_is_refused():
    resource = blood_pressure(PATIENT, 130, 80)
    resource["component"].pop()
    assert "diastolic" in problems_of(resource)["Observation.component"]


def test_plausible_blood_pressure_is_indexed_under_its_snomed_panel_code():
    facts = entries.read_entry(blood_pressure(PATIENT, 142, 94))
    assert facts.code == "75367002" and facts.measure == "blood-pressure"
    assert entries.profile_for(facts, {}) == observations.BLOOD_PRESSURE_PROFILE


@pytest.mark.parametrize(
    "resource",
    [
        weight(PATIENT, 650),
        height(PATIENT, 3.4),
        height(PATIENT, 5, "cm"),
        hba1c(PATIENT, 900),
    ],
)
def test_implausible_measurements_are_refused(resource):
    assert "implausible" in problems_of(resource)["Observation.valueQuantity.value"]


def test_a_weight_in_pounds_is_refused_for_its_unit():
    resource = weight(PATIENT, 150)
    resource["valueQuantity"].update(unit="lb", code="[lb_av]")
    assert "UCUM" in problems_of(resource)["Observation.valueQuantity.code"]


def test_weight_coded_only_in_loinc_is_indexed_as_the_snomed_body_weight_series():
    resource = weight(PATIENT, 70)
    resource["code"]["coding"] = [
        c for c in resource["code"]["coding"] if c["system"] != entries.SNOMED_SYSTEM
    ]
    facts = entries.read_entry(resource)
    assert facts.code == "27113001" and facts.quantity == (70.0, "kg")
    assert "http://loinc.org|29463-7" in facts.code_tokens


def test_bmi_is_weight_over_height_squared_to_one_decimal():
    assert observations.body_mass_index(70, 1.75) == 22.9
    assert observations.body_mass_index(90, observations.in_metres(164, "cm")) == 33.5


def test_bmi_from_a_height_keyed_in_the_wrong_unit_is_implausible():
    assert observations.bmi_problem(observations.body_mass_index(70, 0.3)) is not None
    assert observations.bmi_problem(22.9) is None


def test_derived_bmi_observation_follows_the_uk_core_bmi_profile_and_references_its_sources():
    bmi = observations.bmi_observation(
        patient_id=PATIENT,
        bmi=22.9,
        effective="2026-02-01",
        weight_id=str(uuid.uuid4()),
        height_id=str(uuid.uuid4()),
        encounter_id=None,
    )
    facts = entries.read_entry(bmi)
    assert facts.code == "60621009" and facts.quantity == (22.9, "kg/m2")
    assert bmi["meta"]["profile"] == [observations.BMI_PROFILE]
    assert [r.resource_type for r in facts.references] == ["Observation", "Observation"]


def test_a_condition_that_ended_cannot_be_active():
    found = problems_of(condition(PATIENT, abatementDateTime="2021-01-01"))
    assert "cannot be active" in found["Condition.clinicalStatus"]


def test_a_condition_ending_before_it_began_is_refused():
    found = problems_of(
        condition(PATIENT, clinical="resolved", onset="2022-01-01", abatementDateTime="2021-01-01")
    )
    assert "Condition.abatementDateTime" in found


def test_a_mistyped_snomed_code_fails_its_check_digit():
    found = problems_of(condition(PATIENT, code="195967002"))
    assert "check digit" in found["Condition.code.coding[0].code"]


def test_a_condition_needs_a_snomed_coding():
    found = problems_of(
        condition(PATIENT) | {"code": {"coding": [{"system": "http://x", "code": "J45"}]}}
    )
    assert "Condition.code.coding" in found


def test_problem_significance_is_major_or_minor():
    ext = {
        "url": entries.PROBLEM_SIGNIFICANCE_URL,
        "extension": [{"url": "code", "valueCode": "huge"}],
    }
    assert "Condition.extension" in problems_of(condition(PATIENT, extension=[ext]))
    ext["extension"][0]["valueCode"] = "major"
    assert entries.read_entry(condition(PATIENT, extension=[ext])).extra["significance"] == "major"


def test_no_known_allergy_is_an_explicit_statement():
    facts = entries.read_entry(no_known_allergy(PATIENT))
    assert facts.no_known_allergy and facts.clinical_status == "active"
    assert not entries.read_entry(allergy(PATIENT)).no_known_allergy


def test_a_no_known_allergy_statement_carries_no_reaction():
    resource = no_known_allergy(PATIENT)
    resource["reaction"] = allergy(PATIENT)["reaction"]
    assert "AllergyIntolerance.reaction" in problems_of(resource)


def test_an_update_makes_no_change_of_patient_and_cannot_set_entered_in_error():
    before = entries.read_entry(condition(PATIENT))
    moved = entries.read_entry(condition(str(uuid.uuid4())))
    with pytest.raises(InvalidTransition, match="another patient"):
        entries.check_update(before, moved)
    marked = entries.read_entry(entries.mark_entered_in_error(condition(PATIENT), "wrong patient"))
    with pytest.raises(InvalidTransition, match=r"\$entered-in-error"):
        entries.check_update(before, marked)
    with pytest.raises(InvalidTransition, match="kept as it is"):
        entries.check_update(marked, before)
    entries.check_update(before, entries.read_entry(condition(PATIENT, clinical="resolved")))


def test_a_new_entry_cannot_be_born_entered_in_error():
    marked = entries.read_entry(entries.mark_entered_in_error(weight(PATIENT, 70), "typo"))
    with pytest.raises(InvalidTransition):
        entries.check_new(marked)


@pytest.mark.parametrize("resource", [condition(PATIENT), allergy(PATIENT)])
def test_marking_entered_in_error_drops_clinical_status_and_keeps_the_reason(resource):
    marked = entries.mark_entered_in_error(resource, "Recorded against the wrong patient")
    facts = entries.read_entry(marked)
    assert (
        facts.entered_in_error and facts.clinical_status is None and "clinicalStatus" not in marked
    )
    assert event_for(facts, created=False) == EventType.ENTERED_IN_ERROR
    data = event_data(facts, dict(marked, id=str(uuid.uuid4())), 2)
    assert data["reason"] == "Recorded against the wrong patient"
    assert resource["clinicalStatus"]  # the original is untouched: versions are new objects


def test_marking_needs_a_reason_and_happens_once():
    with pytest.raises(InvalidResource):
        entries.mark_entered_in_error(weight(PATIENT, 70), "   ")
    marked = entries.mark_entered_in_error(weight(PATIENT, 70), "duplicate")
    assert marked["status"] == "entered-in-error"
    with pytest.raises(InvalidTransition):
        entries.mark_entered_in_error(marked, "again")


def test_events_per_write():
    assert (
        event_for(entries.read_entry(condition(PATIENT)), created=True)
        == EventType.CONDITION_RECORDED
    )
    assert (
        event_for(entries.read_entry(condition(PATIENT)), created=False)
        == EventType.CONDITION_UPDATED
    )
    assert (
        event_for(entries.read_entry(allergy(PATIENT)), created=False) == EventType.ALLERGY_UPDATED
    )
    assert (
        event_for(entries.read_entry(encounter(PATIENT)), created=True)
        == EventType.CONSULTATION_RECORDED
    )
    assert (
        event_for(entries.read_entry(encounter(PATIENT, status="in-progress")), created=True)
        is None
    )


def test_every_curated_concept_id_is_well_formed_and_unique():
    ids = [c.id for c in CONCEPTS]
    assert len(ids) == len(set(ids)) >= 150
    assert all(is_concept_id(i) for i in ids)
    assert verhoeff_valid("2363") and not verhoeff_valid("2364")


def test_text_lookup_matches_word_prefixes_and_synonyms():
    assert [c.id for c in search(CONCEPTS, "diab typ 2", limit=3)] == ["44054006"]
    assert "38341003" in [c.id for c in search(CONCEPTS, "high blood pressure", limit=5)]
    assert search(CONCEPTS, "zzzz", limit=5) == []
