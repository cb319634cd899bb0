"""Authorisations (MedicationRequest intent=plan) and issues (intent=order, basedOn the plan).

An authorisation says what may be supplied and how often: its course of therapy,
dose, quantity per issue, the number of issues authorised and the date by which
it must be reviewed. Each issue is numbered in sequence; issuing beyond the
count, after the review date, or of a plan that is no longer active is refused.

UK Core carries the number of issues in `dispenseRequest.numberOfRepeatsAllowed`
(FHIR R4: repeats *in addition to* the first supply, so issues = repeats + 1) and
the issues made so far and the review date in Extension-UKCore-MedicationRepeatInformation
(numberOfPrescriptionsIssued, authorisationExpiryDate).
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from gpsoc_kit.errors import InvalidResource, InvalidTransition, Problem

from .formulary import DMD_SYSTEM
from .safety import StructuredDose

UK_CORE_MEDICATION_REQUEST_PROFILE = (
    "https://fhir.hl7.org.uk/StructureDefinition/UKCore-MedicationRequest")
REPEAT_INFORMATION_URL = (
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-MedicationRepeatInformation")
QUANTITY_TEXT_URL = (
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-MedicationQuantityText")
OVERRIDE_URL = "https://opengpsoc.org/fhir/StructureDefinition/Extension-SafetyCheckOverride"
SAFETY_OUTCOME_URL = "https://opengpsoc.org/fhir/StructureDefinition/Extension-SafetyCheckOutcome"
ISSUE_NUMBER_URL = "https://opengpsoc.org/fhir/StructureDefinition/Extension-IssueNumber"
HL7_COURSE_SYSTEM = "http://terminology.hl7.org/CodeSystem/medicationrequest-course-of-therapy"
UK_CORE_COURSE_SYSTEM = (
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-MedicationRequestCourseOfTherapy")
EPS_COURSE_SYSTEM = "https://fhir.nhs.uk/CodeSystem/medicationrequest-course-of-therapy"
MAX_AUTHORISED_ISSUES = 52  # a year of weekly issues


class Course(enum.StrEnum):
    ACUTE = "acute"
    CONTINUOUS = "continuous"
    REPEAT_DISPENSING = "continuous-repeat-dispensing"


# Accepted on input: UK Core's codes, and EPS's spelling of repeat dispensing.
_COURSE_BY_CODING = {
    (HL7_COURSE_SYSTEM, "acute"): Course.ACUTE,
    (HL7_COURSE_SYSTEM, "continuous"): Course.CONTINUOUS,
    (UK_CORE_COURSE_SYSTEM, "continuous-repeating-dispensing"): Course.REPEAT_DISPENSING,
    (EPS_COURSE_SYSTEM, "acute"): Course.ACUTE,
    (EPS_COURSE_SYSTEM, "continuous"): Course.CONTINUOUS,
    (EPS_COURSE_SYSTEM, "continuous-repeat-dispensing"): Course.REPEAT_DISPENSING,
}
# Stored and answered: UK Core.
COURSE_CODING = {
    Course.ACUTE: {"system": HL7_COURSE_SYSTEM, "code": "acute",
                   "display": "Short course (acute) therapy"},
    Course.CONTINUOUS: {"system": HL7_COURSE_SYSTEM, "code": "continuous",
                        "display": "Continuous long term therapy"},
    Course.REPEAT_DISPENSING: {"system": UK_CORE_COURSE_SYSTEM,
                               "code": "continuous-repeating-dispensing",
                               "display": "Continuous long term (repeat dispensing)"},
}

PLAN, ORDER = "plan", "order"
ACTIVE, ON_HOLD, DRAFT = "active", "on-hold", "draft"
STOPPED, CANCELLED, COMPLETED = "stopped", "cancelled", "completed"
ENTERED_IN_ERROR = "entered-in-error"
CURRENT_PLAN_STATUSES = frozenset({ACTIVE, ON_HOLD})


@dataclass(frozen=True)
class AuthorisationRequest:
    """What a prescriber asks to authorise, read and validated from a MedicationRequest."""

    patient_id: str
    medication_code: str
    course: Course
    dosage_text: str
    dose: StructuredDose | None
    quantity: Decimal
    quantity_unit: str
    quantity_words: str | None
    supply_days: int | None
    authorised_issues: int
    review_date: dt.date | None
    prior_plan_id: str | None
    override_reason: str | None


@dataclass(frozen=True)
class PlanState:
    """An authorisation as the issue rules see it."""

    id: str
    status: str
    course: Course
    authorised_issues: int
    issues_made: int
    review_date: dt.date | None


def reference_id(value: Any, resource_type: str) -> str | None:
    """`{"reference": "Patient/abc"}` -> "abc"; anything else -> None."""
    if not isinstance(value, dict) or not isinstance(value.get("reference"), str):
        return None
    kind, _, ident = value["reference"].rpartition("/")
    if kind.rsplit("/", 1)[-1] != resource_type or not ident:
        return None
    return ident


def override_reason(resource: dict[str, Any]) -> str | None:
    """The prescriber's reason for overriding safety findings, if the request carries one."""
    for extension in resource.get("extension") or []:
        if isinstance(extension, dict) and extension.get("url") == OVERRIDE_URL:
            if isinstance(extension.get("valueString"), str):
                return extension["valueString"]
            for part in extension.get("extension") or []:
                if part.get("url") == "reason" and isinstance(part.get("valueString"), str):
                    return part["valueString"]
    return None


def read_authorisation(resource: dict[str, Any], *, today: dt.date) -> AuthorisationRequest:
    """Validate a new authorisation; every problem is reported at once, naming its element."""
    problems: list[Problem] = []
    if resource.get("intent") != PLAN:
        problems.append(Problem("An authorisation has intent 'plan'", "MedicationRequest.intent"))
    if resource.get("status", ACTIVE) != ACTIVE:
        problems.append(Problem("A new authorisation has status 'active'",
                                "MedicationRequest.status"))
    patient_id = reference_id(resource.get("subject"), "Patient")
    if patient_id is None:
        problems.append(Problem("subject must reference the Patient",
                                "MedicationRequest.subject"))
    code = medication_code(resource)
    if code is None:
        problems.append(Problem(f"medicationCodeableConcept needs a {DMD_SYSTEM} coding",
                                "MedicationRequest.medicationCodeableConcept"))
    course = _course(resource, problems)
    dosage_text, dose = _dosage(resource, problems)
    quantity, unit, words = _quantity(resource, problems)
    supply_days = _supply_days(resource, problems)
    issues = _authorised_issues(resource, course, problems)
    review_date = _review_date(resource, course, today, problems)
    prior = None
    if resource.get("priorPrescription") is not None:
        prior = reference_id(resource["priorPrescription"], "MedicationRequest")
        if prior is None:
            problems.append(Problem("priorPrescription must reference a MedicationRequest",
                                    "MedicationRequest.priorPrescription"))
    if problems:
        raise InvalidResource(problems)
    assert patient_id and code and course and quantity is not None and unit
    return AuthorisationRequest(
        patient_id=patient_id, medication_code=code, course=course, dosage_text=dosage_text,
        dose=dose, quantity=quantity, quantity_unit=unit, quantity_words=words,
        supply_days=supply_days, authorised_issues=issues, review_date=review_date,
        prior_plan_id=prior, override_reason=override_reason(resource))


def medication_code(resource: dict[str, Any]) -> str | None:
    concept = resource.get("medicationCodeableConcept")
    if not isinstance(concept, dict):
        return None
    for coding in concept.get("coding") or []:
        if (isinstance(coding, dict) and coding.get("system") == DMD_SYSTEM
                and isinstance(coding.get("code"), str) and coding["code"].isdigit()):
            return coding["code"]
    return None


def _course(resource: dict[str, Any], problems: list[Problem]) -> Course | None:
    concept = resource.get("courseOfTherapyType")
    for coding in (concept or {}).get("coding") or []:
        course = _COURSE_BY_CODING.get((coding.get("system"), coding.get("code")))
        if course is not None:
            return course
    problems.append(Problem(
        "courseOfTherapyType must be acute, continuous or continuous-repeating-dispensing "
        "(UK Core)", "MedicationRequest.courseOfTherapyType"))
    return None


def _dosage(resource: dict[str, Any],
            problems: list[Problem]) -> tuple[str, StructuredDose | None]:
    dosages = resource.get("dosageInstruction") or []
    first = dosages[0] if dosages and isinstance(dosages[0], dict) else {}
    text = first.get("text")
    if not isinstance(text, str) or not text.strip():
        problems.append(Problem("dosageInstruction[0].text is required",
                                "MedicationRequest.dosageInstruction[0].text"))
        text = ""
    dose = None
    rates = first.get("doseAndRate") or []
    quantity = rates[0].get("doseQuantity") if rates and isinstance(rates[0], dict) else None
    if quantity is not None:
        path = "MedicationRequest.dosageInstruction[0].doseAndRate[0].doseQuantity"
        value = _decimal(quantity.get("value"))
        unit = quantity.get("code") or quantity.get("unit")
        if value is None or value <= 0 or not isinstance(unit, str):
            problems.append(Problem("doseQuantity needs a positive value and a unit", path))
        else:
            dose = StructuredDose(value, unit, _per_day(first.get("timing"), problems))
    return text.strip(), dose


_DAYS_PER_UNIT = {"h": Decimal(1) / 24, "d": Decimal(1), "wk": Decimal(7), "mo": Decimal(30)}


def _per_day(timing: Any, problems: list[Problem]) -> Decimal | None:
    repeat = (timing or {}).get("repeat") if isinstance(timing, dict) else None
    if not isinstance(repeat, dict) or "frequency" not in repeat:
        return None
    frequency = _decimal(repeat.get("frequency"))
    period = _decimal(repeat.get("period", 1))
    days = _DAYS_PER_UNIT.get(repeat.get("periodUnit", "d"))
    if frequency is None or period is None or period <= 0 or frequency <= 0 or days is None:
        problems.append(Problem("timing.repeat needs a positive frequency and period, and a "
                                "periodUnit of h, d, wk or mo",
                                "MedicationRequest.dosageInstruction[0].timing.repeat"))
        return None
    return frequency / (period * days)


def _quantity(resource: dict[str, Any],
              problems: list[Problem]) -> tuple[Decimal | None, str | None, str | None]:
    quantity = (resource.get("dispenseRequest") or {}).get("quantity") or {}
    value = _decimal(quantity.get("value"))
    unit = quantity.get("unit") or quantity.get("code")
    if value is None or value <= 0 or not isinstance(unit, str) or not unit.strip():
        problems.append(Problem("dispenseRequest.quantity needs a positive value and a unit",
                                "MedicationRequest.dispenseRequest.quantity"))
        return None, None, None
    words = next((e.get("valueString") for e in quantity.get("extension") or []
                  if e.get("url") == QUANTITY_TEXT_URL), None)
    return value, unit.strip(), words


def _supply_days(resource: dict[str, Any], problems: list[Problem]) -> int | None:
    duration = (resource.get("dispenseRequest") or {}).get("expectedSupplyDuration")
    if duration is None:
        problems.append(Problem("dispenseRequest.expectedSupplyDuration (in days) is required",
                                "MedicationRequest.dispenseRequest.expectedSupplyDuration"))
        return None
    value = _decimal(duration.get("value"))
    unit = duration.get("code") or duration.get("unit")
    if value is None or value <= 0 or value != value.to_integral() or unit not in ("d", "day",
                                                                                  "days"):
        problems.append(Problem("expectedSupplyDuration must be a whole number of days (code 'd')",
                                "MedicationRequest.dispenseRequest.expectedSupplyDuration"))
        return None
    return int(value)


def _authorised_issues(resource: dict[str, Any], course: Course | None,
                       problems: list[Problem]) -> int:
    path = "MedicationRequest.dispenseRequest.numberOfRepeatsAllowed"
    repeats = (resource.get("dispenseRequest") or {}).get("numberOfRepeatsAllowed", 0)
    if not isinstance(repeats, int) or isinstance(repeats, bool) or repeats < 0:
        problems.append(Problem("numberOfRepeatsAllowed must be a non-negative integer", path))
        return 1
    if course is Course.ACUTE and repeats != 0:
        problems.append(Problem("An acute authorisation is issued once (numberOfRepeatsAllowed 0)",
                                path))
    if repeats + 1 > MAX_AUTHORISED_ISSUES:
        problems.append(Problem(f"At most {MAX_AUTHORISED_ISSUES} issues may be authorised",
                                path))
    return repeats + 1


def _review_date(resource: dict[str, Any], course: Course | None, today: dt.date,
                 problems: list[Problem]) -> dt.date | None:
    path = f"MedicationRequest.extension('{REPEAT_INFORMATION_URL}').authorisationExpiryDate"
    raw = None
    for extension in resource.get("extension") or []:
        if extension.get("url") == REPEAT_INFORMATION_URL:
            for part in extension.get("extension") or []:
                if part.get("url") == "authorisationExpiryDate":
                    raw = part.get("valueDateTime")
    if raw is None:
        if course in (Course.CONTINUOUS, Course.REPEAT_DISPENSING):
            problems.append(Problem("A repeat authorisation needs a review date "
                                    "(authorisationExpiryDate)", path))
        return None
    try:
        review = dt.date.fromisoformat(str(raw)[:10])
    except ValueError:
        problems.append(Problem("authorisationExpiryDate must be a date", path))
        return None
    if review < today:
        problems.append(Problem("The review date is already past", path))
    return review


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


# ---- the issue rules --------------------------------------------------------------------
def check_issuable(plan: PlanState, today: dt.date) -> int:
    """The number the next issue gets, or InvalidTransition saying why there is none."""
    if plan.issues_made >= plan.authorised_issues:
        raise InvalidTransition(f"All {plan.authorised_issues} authorised issues of "
                                f"MedicationRequest/{plan.id} have been made; re-authorise it")
    if plan.status != ACTIVE:
        raise InvalidTransition(f"MedicationRequest/{plan.id} is {plan.status}; only an active "
                                "authorisation can be issued")
    if plan.review_date is not None and today > plan.review_date:
        raise InvalidTransition(f"MedicationRequest/{plan.id} was due for review on "
                                f"{plan.review_date.isoformat()}; re-authorise it before issuing")
    return plan.issues_made + 1


def status_after_issue(plan: PlanState, issue_number: int) -> str:
    return COMPLETED if issue_number >= plan.authorised_issues else ACTIVE


def check_stoppable(intent: str, status: str, request_id: str) -> None:
    if intent != PLAN or status not in CURRENT_PLAN_STATUSES:
        raise InvalidTransition(f"MedicationRequest/{request_id} ({intent}, {status}) cannot be "
                                "stopped; only an active or on-hold authorisation can")


def check_cancellable(intent: str, status: str, request_id: str) -> None:
    if intent != ORDER or status not in (DRAFT, ACTIVE):
        raise InvalidTransition(f"MedicationRequest/{request_id} ({intent}, {status}) cannot be "
                                "cancelled; only a repeat request or an issue can (stop an "
                                "authorisation instead)")


def require_reason(reason: str | None, operation: str) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidResource([Problem(f"{operation} needs a reason", "reason")])
    return reason.strip()


def event_data(resource: dict[str, Any], *, course: Course, plan_id: str | None,
               issue_number: int | None, status_reason: str | None) -> dict[str, Any]:
    """The prescription.events.v1 payload for a stored MedicationRequest."""
    coding = resource["medicationCodeableConcept"]["coding"][0]
    quantity = (resource.get("dispenseRequest") or {}).get("quantity") or {}
    return {"medicationRequest": {
        "id": resource["id"],
        "patient": reference_id(resource.get("subject"), "Patient"),
        "intent": resource["intent"],
        "basedOn": plan_id,
        "medication": {"system": DMD_SYSTEM, "code": coding["code"],
                       "display": coding.get("display")},
        "courseOfTherapyType": course.value,
        "dosageText": ((resource.get("dosageInstruction") or [{}])[0]).get("text"),
        "quantity": {"value": quantity.get("value"), "unit": quantity.get("unit")},
        "issueNumber": issue_number,
        "authoredOn": resource["authoredOn"],
        "prescriber": reference_id(resource.get("requester"), "Practitioner"),
        "status": resource["status"],
        "statusReason": status_reason,
    }}
