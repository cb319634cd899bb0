"""Authorisation and issue rules, and quantities in words: no I/O."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from gpsoc_kit.errors import InvalidResource, InvalidTransition
from prescribing import examples
from prescribing.domain.prescription import (
    Course,
    PlanState,
    check_cancellable,
    check_issuable,
    check_stoppable,
    read_authorisation,
    require_reason,
    status_after_issue,
)
from prescribing.domain.quantity import number_in_words

TODAY = dt.date.today()
PATIENT = "5b2f3a6e-1111-4a1a-9c1c-000000000001"


def test_an_authorisation_reads_course_dose_quantity_issues_and_review_date():
    details = read_authorisation(examples.authorisation(PATIENT, repeats=5), today=TODAY)
    assert details.course is Course.CONTINUOUS
    assert details.authorised_issues == 6  # numberOfRepeatsAllowed + the first issue
    assert details.quantity == 56 and details.quantity_unit == "tablet"
    assert details.supply_days == 14
    assert details.dose.per_day == 4 and details.dose.value == 1
    assert details.review_date == TODAY + dt.timedelta(days=180)


def test_uk_core_and_eps_codes_for_repeat_dispensing_are_both_understood():
    body = examples.authorisation(PATIENT, course=Course.REPEAT_DISPENSING)
    assert read_authorisation(body, today=TODAY).course is Course.REPEAT_DISPENSING
    body["courseOfTherapyType"] = {"coding": [{
        "system": "https://fhir.nhs.uk/CodeSystem/medicationrequest-course-of-therapy",
        "code": "continuous-repeat-dispensing"}]}
    assert read_authorisation(body, today=TODAY).course is Course.REPEAT_DISPENSING


def test_every_problem_is_reported_at_once_with_its_element():
    body = examples.authorisation(PATIENT, review_in_days=None)
    body["dosageInstruction"][0]["text"] = ""
    body["dispenseRequest"]["quantity"] = {"value": 0, "unit": "tablet"}
    del body["dispenseRequest"]["expectedSupplyDuration"]
    with pytest.raises(InvalidResource) as invalid:
        read_authorisation(body, today=TODAY)
    assert [p.expression.split("(")[0] for p in invalid.value.problems] == [
        "MedicationRequest.dosageInstruction[0].text",
        "MedicationRequest.dispenseRequest.quantity",
        "MedicationRequest.dispenseRequest.expectedSupplyDuration",
        "MedicationRequest.extension",
    ]


def test_an_acute_authorisation_has_no_repeats():
    body = examples.authorisation(PATIENT, course=Course.ACUTE)
    assert read_authorisation(body, today=TODAY).authorised_issues == 1
    body["dispenseRequest"]["numberOfRepeatsAllowed"] = 2
    with pytest.raises(InvalidResource, match="acute"):
        read_authorisation(body, today=TODAY)


def test_a_review_date_in_the_past_is_refused():
    with pytest.raises(InvalidResource, match="already past"):
        read_authorisation(examples.authorisation(PATIENT, review_in_days=-1), today=TODAY)


def plan(**changes) -> PlanState:  # noqa: ANN003
    values = dict(id="p1", status="active", course=Course.CONTINUOUS, authorised_issues=3,
                  issues_made=0, review_date=TODAY + dt.timedelta(days=30))
    values.update(changes)
    return PlanState(**values)


def test_issues_are_numbered_in_sequence_and_the_last_completes_the_plan():
    assert check_issuable(plan(issues_made=0), TODAY) == 1
    assert check_issuable(plan(issues_made=2), TODAY) == 3
    assert status_after_issue(plan(issues_made=1), 2) == "active"
    assert status_after_issue(plan(issues_made=2), 3) == "completed"


def test_issuing_beyond_the_authorised_count_is_refused():
    with pytest.raises(InvalidTransition, match="All 3 authorised issues"):
        check_issuable(plan(issues_made=3), TODAY)


def test_issuing_after_the_review_date_is_refused():
    with pytest.raises(InvalidTransition, match="due for review"):
        check_issuable(plan(review_date=TODAY - dt.timedelta(days=1)), TODAY)


@pytest.mark.parametrize("status", ["stopped", "on-hold", "cancelled", "completed"])
def test_only_an_active_plan_can_be_issued(status):
    with pytest.raises(InvalidTransition, match=status):
        check_issuable(plan(status=status), TODAY)


def test_stop_applies_to_current_plans_and_cancel_to_issues_and_requests():
    check_stoppable("plan", "active", "p")
    check_cancellable("order", "draft", "o")
    check_cancellable("order", "active", "o")
    with pytest.raises(InvalidTransition):
        check_stoppable("plan", "stopped", "p")
    with pytest.raises(InvalidTransition):
        check_cancellable("plan", "active", "p")


def test_stop_and_cancel_need_a_reason():
    assert require_reason("  Side effects  ", "Stopping") == "Side effects"
    with pytest.raises(InvalidResource, match="needs a reason"):
        require_reason("   ", "Stopping")


@pytest.mark.parametrize(("text", "number"), [
    ("twenty-eight", 28), ("Twenty eight (28) tablets", 28), ("one hundred and twelve", 112),
    ("fifty six capsules", 56), ("sixty", 60), ("tablets", None),
])
def test_quantities_in_words(text, number):
    assert number_in_words(text) == number


def test_quantity_words_come_from_the_uk_core_quantity_text_extension():
    body = examples.authorisation(PATIENT, quantity=28, quantity_words="twenty-eight")
    details = read_authorisation(body, today=TODAY)
    assert details.quantity == Decimal(28) and details.quantity_words == "twenty-eight"
