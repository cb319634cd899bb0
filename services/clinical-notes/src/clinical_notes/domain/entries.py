"""Clinical entries: what a valid Encounter, Condition, Observation, AllergyIntolerance or
List is, what the record indexes of it, and how an entry may change.

The record never loses a word: every change is a new version, and a wrong entry
is marked entered-in-error with a reason (kept, readable, hidden from default
views) rather than deleted. Marking is its own operation, so the reason is never
missing; an ordinary update can neither set nor undo it.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from gpsoc_kit.errors import InvalidResource, InvalidTransition, Problem

from . import observations as obs
from .snomed import SNOMED_SYSTEM, is_concept_id

_PROFILE = "https://fhir.hl7.org.uk/StructureDefinition/"
PROFILES = {
    "Encounter": _PROFILE + "UKCore-Encounter",
    "Condition": _PROFILE + "UKCore-Condition",
    "Observation": obs.UK_CORE_OBSERVATION_PROFILE,
    "AllergyIntolerance": _PROFILE + "UKCore-AllergyIntolerance",
    "List": _PROFILE + "UKCore-List",
}
RESOURCE_TYPES = tuple(PROFILES)

ENTERED_IN_ERROR = "entered-in-error"
ENTERED_IN_ERROR_REASON_URL = (
    "https://opengpsoc.org/fhir/StructureDefinition/entered-in-error-reason"
)
PROBLEM_SIGNIFICANCE_URL = _PROFILE + "Extension-UKCore-ProblemSignificance"
RELATED_CLINICAL_CONTENT_URL = _PROFILE + "Extension-UKCore-RelatedClinicalContent"
RELATED_PROBLEM_HEADER_URL = _PROFILE + "Extension-UKCore-RelatedProblemHeader"

CONDITION_CLINICAL_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/condition-category"
ALLERGY_CLINICAL_SYSTEM = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
ALLERGY_VERIFICATION_SYSTEM = (
    "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
)
ENCOUNTER_CLASS_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"

CONDITION_CLINICAL = frozenset(
    {"active", "recurrence", "relapse", "inactive", "remission", "resolved"}
)
CONDITION_ACTIVE = frozenset({"active", "recurrence", "relapse"})
CONDITION_VERIFICATION = frozenset(
    {"unconfirmed", "provisional", "differential", "confirmed", "refuted", ENTERED_IN_ERROR}
)
CONDITION_CATEGORIES = frozenset({"problem-list-item", "encounter-diagnosis"})
PROBLEM_SIGNIFICANCE = frozenset({"major", "minor"})
ALLERGY_CLINICAL = frozenset({"active", "inactive", "resolved"})
ALLERGY_VERIFICATION = frozenset({"unconfirmed", "confirmed", "refuted", ENTERED_IN_ERROR})
ALLERGY_CATEGORIES = frozenset({"food", "medication", "environment", "biologic"})
ALLERGY_CRITICALITY = frozenset({"low", "high", "unable-to-assess"})
ALLERGY_TYPES = frozenset({"allergy", "intolerance"})
REACTION_SEVERITY = frozenset({"mild", "moderate", "severe"})
OBSERVATION_STATUS = frozenset(
    {
        "registered",
        "preliminary",
        "final",
        "amended",
        "corrected",
        "cancelled",
        ENTERED_IN_ERROR,
        "unknown",
    }
)
ENCOUNTER_STATUS = frozenset(
    {
        "planned",
        "arrived",
        "triaged",
        "in-progress",
        "onleave",
        "finished",
        "cancelled",
        ENTERED_IN_ERROR,
        "unknown",
    }
)
LIST_STATUS = frozenset({"current", "retired", ENTERED_IN_ERROR})
LIST_MODES = frozenset({"working", "snapshot", "changes"})

# "No known allergy" and "No known drug allergy" are statements, recorded explicitly.
NO_KNOWN_ALLERGY_CODES = frozenset({"716186003", "409137002"})

# GP Connect's consultation structure: a consultation List holds topic Lists, a topic
# holds heading (category) Lists, a heading holds the entries themselves.
CONSULTATION_LIST = "325851000000107"
TOPIC_LIST = "25851000000105"
HEADING_LIST = "24781000000107"
LIST_KINDS = {CONSULTATION_LIST: "consultation", TOPIC_LIST: "topic", HEADING_LIST: "heading"}
LIST_CHILD_KIND = {"consultation": "topic", "topic": "heading", "heading": None}
FREE_TEXT_CODE = "37331000000100"  # Comment note: narrative as an Observation with valueString

_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True)
class Reference:
    """A reference the service must resolve to an entry of the same patient."""

    resource_type: str
    id: str
    expression: str
    list_kind: str | None = None  # for List entries of a consultation structure: the kind expected


@dataclass(frozen=True)
class EntryFacts:
    """What the record indexes of an entry, and what the rules look at."""

    resource_type: str
    patient_id: str
    status: str
    clinical_status: str | None
    codes: tuple[tuple[str, str], ...]  # (system, code), primary first
    display: str | None
    category: tuple[str, ...]
    effective: dt.datetime | None
    encounter_id: str | None
    appointment_id: str | None
    references: tuple[Reference, ...] = ()
    snomed_codes: tuple[tuple[str, str], ...] = ()  # (code, FHIRPath) to check against terminology
    measure: str | None = None
    quantity: tuple[float, str] | None = None  # value and UCUM unit of a single-valued measure
    no_known_allergy: bool = False
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def entered_in_error(self) -> bool:
        return self.status == ENTERED_IN_ERROR

    @property
    def code(self) -> str | None:
        return self.codes[0][1] if self.codes else None

    @property
    def code_system(self) -> str | None:
        return self.codes[0][0] if self.codes else None

    @property
    def code_tokens(self) -> list[str]:
        """Search tokens: `system|code` and the bare code, so both search forms match."""
        tokens: list[str] = []
        for system, code in self.codes:
            tokens += [f"{system}|{code}", code]
        return list(dict.fromkeys(tokens))


def is_uuid(value: Any) -> bool:
    if not isinstance(value, str) or len(value) != 36:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def parse_datetime(value: Any) -> dt.datetime | None:
    """A FHIR date or dateTime as an instant (a bare date is midnight UTC); None if malformed."""
    if not isinstance(value, str):
        return None
    try:
        if _DATE.match(value):
            padded = (value + "-01-01")[:10] if len(value) < 10 else value
            return dt.datetime.fromisoformat(padded).replace(tzinfo=dt.UTC)
        if _DATETIME.match(value):
            return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return None


class _Reader:
    """Collects problems while reading one resource, so a caller hears of all of them at once."""

    def __init__(self, resource: dict[str, Any]) -> None:
        self.resource = resource
        self.type = str(resource.get("resourceType"))
        self.problems: list[Problem] = []
        self.references: list[Reference] = []
        self.snomed: list[tuple[str, str]] = []

    def fail(self, message: str, element: str) -> None:
        self.problems.append(Problem(message, f"{self.type}.{element}"))

    def reference(
        self,
        element: str,
        expected_type: str,
        *,
        required: bool = False,
        resolve: bool = True,
        value: Any = None,
    ) -> str | None:
        ref = self.resource.get(element) if value is None else value
        if ref is None:
            if required:
                self.fail(f"{element} is required", element)
            return None
        reference = ref.get("reference") if isinstance(ref, dict) else None
        kind, _, ident = (reference or "").partition("/")
        if kind != expected_type or not is_uuid(ident):
            self.fail(f"{element} must reference a {expected_type} ({expected_type}/<id>)", element)
            return None
        if resolve:
            self.references.append(Reference(expected_type, ident, f"{self.type}.{element}"))
        return ident

    def patient(self, element: str = "subject") -> str:
        return self.reference(element, "Patient", required=True, resolve=False) or ""

    def concept(
        self, element: str, *, required: bool, value: Any = None
    ) -> tuple[tuple[str, str], ...]:
        """The codings of a CodeableConcept; SNOMED codes are queued for the terminology check."""
        concept = self.resource.get(element) if value is None else value
        if concept is None:
            if required:
                self.fail(f"{element} is required (a SNOMED CT coded concept)", element)
            return ()
        codings = concept.get("coding") if isinstance(concept, dict) else None
        if not isinstance(codings, list) or not codings:
            self.fail(f"{element} needs at least one coding", f"{element}.coding")
            return ()
        found: list[tuple[str, str]] = []
        for index, coding in enumerate(codings):
            where = f"{element}.coding[{index}]"
            if (
                not isinstance(coding, dict)
                or not isinstance(coding.get("system"), str)
                or not isinstance(coding.get("code"), str)
                or not coding["code"]
            ):
                self.fail("A coding needs a system and a code", where)
                continue
            system, code = coding["system"], coding["code"]
            if system == SNOMED_SYSTEM:
                if not is_concept_id(code):
                    self.fail(
                        f"{code} is not a valid SNOMED CT concept id (check digit or format)",
                        f"{where}.code",
                    )
                    continue
                self.snomed.append((code, f"{self.type}.{where}.code"))
            found.append((system, code))
        # SNOMED CT first: it is the primary code of a GP record.
        found.sort(key=lambda c: c[0] != SNOMED_SYSTEM)
        return tuple(found)

    def snomed_concept(self, element: str) -> tuple[tuple[str, str], ...]:
        """A concept the GP record codes in SNOMED CT (other codings may come alongside)."""
        codes = self.concept(element, required=True)
        if codes and codes[0][0] != SNOMED_SYSTEM:
            self.fail(f"{element} needs a SNOMED CT coding ({SNOMED_SYSTEM})", f"{element}.coding")
        return codes

    def code_of(
        self, element: str, system: str, allowed: frozenset[str], *, required: bool
    ) -> str | None:
        concept = self.resource.get(element)
        if concept is None:
            if required:
                self.fail(f"{element} is required ({', '.join(sorted(allowed))})", element)
            return None
        codings = concept.get("coding") if isinstance(concept, dict) else None
        for coding in codings or []:
            if isinstance(coding, dict) and coding.get("system") == system:
                if coding.get("code") in allowed:
                    return coding["code"]
        self.fail(f"{element} must be one of {', '.join(sorted(allowed))} ({system})", element)
        return None

    def choice(self, element: str, allowed: frozenset[str], *, required: bool) -> str | None:
        value = self.resource.get(element)
        if value is None:
            if required:
                self.fail(f"{element} is required ({', '.join(sorted(allowed))})", element)
            return None
        if value not in allowed:
            self.fail(f"{element} must be one of {', '.join(sorted(allowed))}", element)
            return None
        return value

    def instant(self, element: str, *, value: Any = None) -> dt.datetime | None:
        raw = self.resource.get(element) if value is None else value
        if raw is None:
            return None
        parsed = parse_datetime(raw)
        if parsed is None:
            self.fail(f"{element} must be a FHIR date or dateTime with a time zone", element)
        return parsed

    def encounter(self) -> str | None:
        return self.reference("encounter", "Encounter")

    def categories(self, system: str | None, allowed: frozenset[str] | None) -> tuple[str, ...]:
        raw = self.resource.get("category") or []
        if not isinstance(raw, list):
            self.fail("category must be a list", "category")
            return ()
        codes: list[str] = []
        for index, item in enumerate(raw):
            if isinstance(item, str):  # AllergyIntolerance.category is a list of codes
                if allowed is not None and item not in allowed:
                    self.fail(
                        f"category must be one of {', '.join(sorted(allowed))}",
                        f"category[{index}]",
                    )
                codes.append(item)
                continue
            for coding in (item.get("coding") or []) if isinstance(item, dict) else []:
                if not isinstance(coding, dict) or not isinstance(coding.get("code"), str):
                    continue
                if (
                    system is not None
                    and coding.get("system") == system
                    and allowed is not None
                    and coding["code"] not in allowed
                ):
                    self.fail(
                        f"category must be one of {', '.join(sorted(allowed))}",
                        f"category[{index}]",
                    )
                codes.append(coding["code"])
        return tuple(dict.fromkeys(codes))

    def done(self) -> None:
        if self.problems:
            raise InvalidResource(self.problems)


def read_entry(resource: dict[str, Any]) -> EntryFacts:
    """Validate a clinical entry and extract what the record indexes, or raise InvalidResource."""
    kind = resource.get("resourceType")
    reader = {
        "Condition": _condition,
        "Observation": _observation,
        "AllergyIntolerance": _allergy,
        "Encounter": _encounter,
        "List": _list,
    }.get(str(kind))
    if reader is None:
        raise InvalidResource(
            [Problem(f"resourceType must be one of {', '.join(RESOURCE_TYPES)}", "resourceType")]
        )
    return reader(resource)


def _condition(resource: dict[str, Any]) -> EntryFacts:
    r = _Reader(resource)
    patient = r.patient()
    verification = r.code_of(
        "verificationStatus", CONDITION_VERIFICATION_SYSTEM, CONDITION_VERIFICATION, required=False
    )
    entered_in_error = verification == ENTERED_IN_ERROR
    clinical = r.code_of(
        "clinicalStatus",
        CONDITION_CLINICAL_SYSTEM,
        CONDITION_CLINICAL,
        required=not entered_in_error,
    )
    if entered_in_error and resource.get("clinicalStatus") is not None:
        r.fail(
            "clinicalStatus must be absent on an entry marked entered-in-error", "clinicalStatus"
        )
    codes = r.snomed_concept("code")
    categories = r.categories(CONDITION_CATEGORY_SYSTEM, CONDITION_CATEGORIES)
    onset = r.instant("onsetDateTime")
    abatement = r.instant("abatementDateTime")
    recorded = r.instant("recordedDate")
    if abatement is not None and clinical in CONDITION_ACTIVE:
        r.fail(
            "A condition that has ended cannot be active: set clinicalStatus to inactive, "
            "remission or resolved",
            "clinicalStatus",
        )
    if onset and abatement and abatement < onset:
        r.fail("abatementDateTime is before onsetDateTime", "abatementDateTime")
    significance = None
    for ext in resource.get("extension") or []:
        if not isinstance(ext, dict):
            continue
        if ext.get("url") == PROBLEM_SIGNIFICANCE_URL:
            significance = next(
                (
                    e.get("valueCode")
                    for e in ext.get("extension") or []
                    if isinstance(e, dict) and e.get("url") == "code"
                ),
                None,
            )
            if significance not in PROBLEM_SIGNIFICANCE:
                r.fail("Problem significance must be major or minor", "extension")
        elif ext.get("url") == RELATED_CLINICAL_CONTENT_URL:
            _related_content(r, ext.get("valueReference"))
    encounter = r.encounter()
    r.done()
    return EntryFacts(
        resource_type="Condition",
        patient_id=patient,
        status=verification or "confirmed",
        clinical_status=clinical,
        codes=codes,
        display=_display(resource.get("code")),
        category=categories or ("problem-list-item",),
        effective=onset or recorded,
        encounter_id=encounter,
        appointment_id=None,
        references=tuple(r.references),
        snomed_codes=tuple(r.snomed),
        extra={
            "onset": resource.get("onsetDateTime"),
            "abatement": resource.get("abatementDateTime"),
            "significance": significance,
            "verification": verification,
        },
    )


def _related_content(r: _Reader, value: Any) -> None:
    reference = value.get("reference") if isinstance(value, dict) else None
    kind, _, ident = (reference or "").partition("/")
    if kind not in RESOURCE_TYPES or not is_uuid(ident):
        r.fail(
            "Related clinical content must reference a clinical entry of this record", "extension"
        )
        return
    r.references.append(Reference(kind, ident, f"{r.type}.extension"))


def _observation(resource: dict[str, Any]) -> EntryFacts:
    r = _Reader(resource)
    patient = r.patient()
    status = r.choice("status", OBSERVATION_STATUS, required=True)
    codes = r.concept("code", required=True)
    categories = r.categories(None, None)
    effective = r.instant("effectiveDateTime")
    if effective is None and isinstance(resource.get("effectivePeriod"), dict):
        effective = r.instant("effectivePeriod", value=resource["effectivePeriod"].get("start"))
    if effective is None and "effectiveDateTime" not in resource:
        r.fail(
            "An observation needs effectiveDateTime (when it was measured or made)",
            "effectiveDateTime",
        )
    measure = obs.measure_of(resource.get("code"))
    quantity: tuple[float, str] | None = None
    if status != ENTERED_IN_ERROR:
        if obs.is_blood_pressure(resource.get("code")):
            obs.check_blood_pressure(resource, r.problems)
            measure_name: str | None = "blood-pressure"
        elif measure is not None:
            value = obs.check_quantity(
                measure, resource.get("valueQuantity"), "Observation.valueQuantity", r.problems
            )
            if value is not None:
                quantity = (value, resource["valueQuantity"]["code"])
            measure_name = measure.name
        else:
            measure_name = None
            _check_any_quantity(r, resource.get("valueQuantity"))
        if any(c == FREE_TEXT_CODE for _, c in codes) and not isinstance(
            resource.get("valueString"), str
        ):
            r.fail("A comment note carries its text in valueString", "valueString")
    else:
        measure_name = measure.name if measure else None
    for index, ref in enumerate(resource.get("derivedFrom") or []):
        r.reference(f"derivedFrom[{index}]", "Observation", value=ref)
    for ext in resource.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == RELATED_CLINICAL_CONTENT_URL:
            _related_content(r, ext.get("valueReference"))
    encounter = r.encounter()
    r.done()
    # A known measure is indexed under its SNOMED CT code however the client coded it, so
    # "latest weight" is one series whether a weight came coded in LOINC or SNOMED CT.
    if measure is not None:
        categories = categories or (measure.category,)
        codes = (
            (SNOMED_SYSTEM, measure.snomed),
            *(c for c in codes if c != (SNOMED_SYSTEM, measure.snomed)),
        )
    elif measure_name == "blood-pressure":
        categories = categories or ("vital-signs",)
        panel = (SNOMED_SYSTEM, obs.BP_PANEL[1])
        codes = (panel, *(c for c in codes if c != panel))
    return EntryFacts(
        resource_type="Observation",
        patient_id=patient,
        status=status or "unknown",
        clinical_status=None,
        codes=codes,
        display=_display(resource.get("code")),
        category=categories,
        effective=effective,
        encounter_id=encounter,
        appointment_id=None,
        references=tuple(r.references),
        snomed_codes=tuple(r.snomed),
        measure=measure_name,
        quantity=quantity,
    )


def _check_any_quantity(r: _Reader, quantity: Any) -> None:
    if quantity is None:
        return
    if (
        not isinstance(quantity, dict)
        or isinstance(quantity.get("value"), bool)
        or not isinstance(quantity.get("value"), int | float)
    ):
        r.fail("valueQuantity needs a numeric value", "valueQuantity.value")
    elif quantity.get("system") != obs.UCUM_SYSTEM or not isinstance(quantity.get("code"), str):
        r.fail(
            "valueQuantity must carry a UCUM unit (system http://unitsofmeasure.org and a code)",
            "valueQuantity.code",
        )


def _allergy(resource: dict[str, Any]) -> EntryFacts:
    r = _Reader(resource)
    patient = r.patient("patient")
    verification = r.code_of(
        "verificationStatus", ALLERGY_VERIFICATION_SYSTEM, ALLERGY_VERIFICATION, required=False
    )
    entered_in_error = verification == ENTERED_IN_ERROR
    clinical = r.code_of(
        "clinicalStatus", ALLERGY_CLINICAL_SYSTEM, ALLERGY_CLINICAL, required=not entered_in_error
    )
    if entered_in_error and resource.get("clinicalStatus") is not None:
        r.fail(
            "clinicalStatus must be absent on an entry marked entered-in-error", "clinicalStatus"
        )
    codes = r.snomed_concept("code")
    no_known_allergy = any(s == SNOMED_SYSTEM and c in NO_KNOWN_ALLERGY_CODES for s, c in codes)
    categories = r.categories(None, ALLERGY_CATEGORIES)
    r.choice("criticality", ALLERGY_CRITICALITY, required=False)
    r.choice("type", ALLERGY_TYPES, required=False)
    if no_known_allergy and (resource.get("reaction") or resource.get("criticality")):
        r.fail("A 'no known allergy' statement has no reaction or criticality", "reaction")
    reactions = resource.get("reaction") or []
    if not isinstance(reactions, list):
        r.fail("reaction must be a list", "reaction")
        reactions = []
    for index, reaction in enumerate(reactions):
        if not isinstance(reaction, dict):
            r.fail("A reaction must be an object", f"reaction[{index}]")
            continue
        severity = reaction.get("severity")
        if severity is not None and severity not in REACTION_SEVERITY:
            r.fail("severity must be mild, moderate or severe", f"reaction[{index}].severity")
        manifestations = reaction.get("manifestation")
        if not isinstance(manifestations, list) or not manifestations:
            r.fail(
                "A reaction needs at least one manifestation", f"reaction[{index}].manifestation"
            )
            continue
        for m_index, manifestation in enumerate(manifestations):
            r.concept(
                f"reaction[{index}].manifestation[{m_index}]", required=True, value=manifestation
            )
        if "substance" in reaction:
            r.concept(f"reaction[{index}].substance", required=True, value=reaction["substance"])
    recorded = r.instant("recordedDate")
    onset = r.instant("onsetDateTime")
    encounter = r.encounter()
    r.done()
    return EntryFacts(
        resource_type="AllergyIntolerance",
        patient_id=patient,
        status=verification or "unconfirmed",
        clinical_status=clinical,
        codes=codes,
        display=_display(resource.get("code")),
        category=categories,
        effective=recorded or onset,
        encounter_id=encounter,
        appointment_id=None,
        references=tuple(r.references),
        snomed_codes=tuple(r.snomed),
        no_known_allergy=no_known_allergy,
        extra={"verification": verification, "criticality": resource.get("criticality")},
    )


def _encounter(resource: dict[str, Any]) -> EntryFacts:
    r = _Reader(resource)
    patient = r.patient()
    status = r.choice("status", ENCOUNTER_STATUS, required=True)
    encounter_class = resource.get("class")
    if not isinstance(encounter_class, dict) or not encounter_class.get("code"):
        r.fail(
            "class is required (e.g. AMB for a surgery consultation, VR for a remote one)", "class"
        )
    codes: tuple[tuple[str, str], ...] = ()
    types = resource.get("type") or []
    if not isinstance(types, list):
        r.fail("type must be a list", "type")
        types = []
    for index, concept in enumerate(types):
        codes += r.concept(f"type[{index}]", required=True, value=concept)
    period = resource.get("period") if isinstance(resource.get("period"), dict) else {}
    start = r.instant("period.start", value=period.get("start"))
    end = r.instant("period.end", value=period.get("end"))
    if start is None and status not in ("planned", ENTERED_IN_ERROR) and "start" not in period:
        r.fail("A consultation needs period.start", "period.start")
    if start and end and end < start:
        r.fail("period.end is before period.start", "period.end")
    for index, participant in enumerate(resource.get("participant") or []):
        if isinstance(participant, dict) and "individual" in participant:
            r.reference(
                f"participant[{index}].individual",
                "Practitioner",
                value=participant["individual"],
                resolve=False,
            )
    appointment = None
    for index, ref in enumerate(resource.get("appointment") or []):
        appointment = r.reference(f"appointment[{index}]", "Appointment", value=ref, resolve=False)
    r.done()
    return EntryFacts(
        resource_type="Encounter",
        patient_id=patient,
        status=status or "unknown",
        clinical_status=None,
        codes=codes,
        display=_display(types[0] if types else None),
        category=(encounter_class.get("code"),) if isinstance(encounter_class, dict) else (),
        effective=start,
        encounter_id=None,
        appointment_id=appointment,
        snomed_codes=tuple(r.snomed),
    )


def _list(resource: dict[str, Any]) -> EntryFacts:
    r = _Reader(resource)
    patient = r.patient()
    status = r.choice("status", LIST_STATUS, required=True)
    r.choice("mode", LIST_MODES, required=True)
    codes = r.concept("code", required=False)
    kind = next((LIST_KINDS[c] for s, c in codes if s == SNOMED_SYSTEM and c in LIST_KINDS), None)
    encounter = r.encounter()
    if kind is not None and encounter is None:
        r.fail(f"A {kind} list belongs to a consultation: encounter is required", "encounter")
    if kind in ("topic", "heading") and not resource.get("title"):
        r.fail(f"A {kind} list needs a title (e.g. History, Examination, Comment, Plan)", "title")
    child_kind = LIST_CHILD_KIND.get(kind or "")
    entries = resource.get("entry") or []
    if not isinstance(entries, list):
        r.fail("entry must be a list", "entry")
        entries = []
    for index, entry in enumerate(entries):
        item = entry.get("item") if isinstance(entry, dict) else None
        reference = item.get("reference") if isinstance(item, dict) else None
        target, _, ident = (reference or "").partition("/")
        where = f"entry[{index}].item"
        if target not in RESOURCE_TYPES or target == "Encounter" or not is_uuid(ident):
            r.fail(
                "A list entry must reference a Condition, Observation, AllergyIntolerance or "
                "List of this record",
                where,
            )
            continue
        if kind == "consultation" and target != "List":
            r.fail("A consultation list holds topic lists", where)
            continue
        r.references.append(
            Reference(
                target, ident, f"List.{where}", list_kind=child_kind if target == "List" else None
            )
        )
    for ext in resource.get("extension") or []:
        if isinstance(ext, dict) and ext.get("url") == RELATED_PROBLEM_HEADER_URL:
            target = next(
                (
                    e.get("valueReference")
                    for e in ext.get("extension") or []
                    if isinstance(e, dict) and e.get("url") == "target"
                ),
                None,
            )
            r.reference("extension", "Condition", value=target)
    date = r.instant("date")
    r.done()
    return EntryFacts(
        resource_type="List",
        patient_id=patient,
        status=status or "current",
        clinical_status=None,
        codes=codes,
        display=resource.get("title") or _display(resource.get("code")),
        category=(kind,) if kind else (),
        effective=date,
        encounter_id=encounter,
        appointment_id=None,
        references=tuple(r.references),
        snomed_codes=tuple(r.snomed),
    )


def _display(concept: Any) -> str | None:
    if not isinstance(concept, dict):
        return None
    if isinstance(concept.get("text"), str):
        return concept["text"]
    for coding in concept.get("coding") or []:
        if isinstance(coding, dict) and isinstance(coding.get("display"), str):
            return coding["display"]
    return None


def check_new(facts: EntryFacts) -> None:
    """A new entry is never born entered-in-error: marking has its own operation, with a reason."""
    if facts.entered_in_error:
        raise InvalidTransition(
            "A new entry cannot be entered-in-error; record it, then mark it "
            "with $entered-in-error and a reason"
        )


def check_update(before: EntryFacts, after: EntryFacts) -> None:
    """What a new version of an entry may not do."""
    if before.entered_in_error:
        raise InvalidTransition(
            "This entry is marked entered-in-error; it is kept as it is. Record a new entry instead"
        )
    if after.entered_in_error:
        raise InvalidTransition(
            "Use the $entered-in-error operation, with a reason, to mark an entry entered-in-error"
        )
    if after.patient_id != before.patient_id:
        raise InvalidTransition(
            "An entry cannot be moved to another patient's record; mark it "
            "entered-in-error and record it on the right one"
        )


MAX_REASON_LENGTH = 1000


def mark_entered_in_error(resource: dict[str, Any], reason: str) -> dict[str, Any]:
    """The next version of an entry, marked entered-in-error with the reason (not yet stamped)."""
    if read_entry(resource).entered_in_error:
        raise InvalidTransition("This entry is already marked entered-in-error")
    reason = reason.strip() if isinstance(reason, str) else ""
    if not reason:
        raise InvalidResource(
            [
                Problem(
                    "A reason is required to mark an entry entered-in-error",
                    "Parameters.parameter.reason",
                )
            ]
        )
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidResource(
            [
                Problem(
                    f"The reason may be at most {MAX_REASON_LENGTH} characters",
                    "Parameters.parameter.reason",
                )
            ]
        )
    marked = dict(resource)
    kind = resource["resourceType"]
    if kind == "Condition":
        marked.pop("clinicalStatus", None)
        marked["verificationStatus"] = {
            "coding": [
                {
                    "system": CONDITION_VERIFICATION_SYSTEM,
                    "code": ENTERED_IN_ERROR,
                    "display": "Entered in Error",
                }
            ]
        }
    elif kind == "AllergyIntolerance":
        marked.pop("clinicalStatus", None)
        marked["verificationStatus"] = {
            "coding": [
                {
                    "system": ALLERGY_VERIFICATION_SYSTEM,
                    "code": ENTERED_IN_ERROR,
                    "display": "Entered in Error",
                }
            ]
        }
    else:
        marked["status"] = ENTERED_IN_ERROR
    marked["extension"] = [
        e
        for e in resource.get("extension") or []
        if not (isinstance(e, dict) and e.get("url") == ENTERED_IN_ERROR_REASON_URL)
    ]
    marked["extension"].append({"url": ENTERED_IN_ERROR_REASON_URL, "valueString": reason})
    return marked


def profile_for(facts: EntryFacts, resource: dict[str, Any]) -> str:
    """The UK Core profile an entry is stored under (vital signs have their own)."""
    if facts.resource_type == "Observation":
        if facts.measure == "blood-pressure":
            return obs.BLOOD_PRESSURE_PROFILE
        measure = obs.measure_of(resource.get("code"))
        if measure is not None:
            return measure.profile
    return PROFILES[facts.resource_type]
