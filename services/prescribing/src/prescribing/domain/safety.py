"""Prescribing safety checks: allergy, interactions, duplicate therapy, controlled drugs, dose.

Pure functions over a `ClinicalKnowledge` snapshot (loaded by an adapter from
whatever knowledge base is installed: the shipped SAMPLE tables or a licensed
product) and the patient's context. They never pass silently: a knowledge base
that is missing, empty or out of date raises `KnowledgeBaseUnavailable`, and a
check that cannot be done (an allergy coded in a way the knowledge base does not
know, a dose with no limit on record) is reported, not skipped.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from .errors import KnowledgeBaseUnavailable, SafetyCheckRefused
from .formulary import Product
from .quantity import number_in_words

CD_MAX_SUPPLY_DAYS = 30
CD_SCHEDULES_NEEDING_WORDS = frozenset({2, 3})
MIN_OVERRIDE_REASON_LENGTH = 5
KNOWLEDGE_COMPONENTS = ("substance classes", "allergen concepts", "interactions", "dose limits")


class Severity(enum.StrEnum):
    HIGH = "high"
    MODERATE = "moderate"
    LOW = "low"


_RANK = {Severity.HIGH: 0, Severity.MODERATE: 1, Severity.LOW: 2}


@dataclass(frozen=True)
class Finding:
    """One thing a prescriber must see. `key` names it stably, so an override can refer to it."""

    kind: str  # allergy | interaction | duplicate-therapy | controlled-drug | dose
    severity: Severity
    message: str
    key: str
    overridable: bool = True
    expression: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "severity": self.severity.value, "message": self.message,
                "key": self.key, "overridable": self.overridable}


# ---- the knowledge the checks use -------------------------------------------------------
@dataclass(frozen=True)
class KnowledgeRelease:
    source: str
    version: str
    published_on: dt.date
    valid_until: dt.date


@dataclass(frozen=True)
class Interaction:
    """An interacting pair; each side is `substance:<substance id>` or `class:<class code>`."""

    left: str
    right: str
    severity: Severity
    description: str


@dataclass(frozen=True)
class AllergenConcept:
    """What a SNOMED CT allergy or substance code means for prescribing: a substance, a class, or both."""

    code: str
    display: str
    substance_id: str | None = None
    class_code: str | None = None


@dataclass(frozen=True)
class DoseLimit:
    substance_id: str
    max_single_mg: Decimal | None
    max_daily_mg: Decimal | None


@dataclass(frozen=True)
class ClinicalKnowledge:
    """The part of a knowledge base one request needs, with the release it came from."""

    release: KnowledgeRelease | None
    # Which components hold any rows at all (an empty component means the base is broken).
    components_present: Mapping[str, bool]
    # class code -> (display, {substance id: cross-sensitivity severity of that member})
    classes: Mapping[str, tuple[str, Mapping[str, Severity]]] = field(default_factory=dict)
    allergens: Mapping[str, AllergenConcept] = field(default_factory=dict)
    interactions: tuple[Interaction, ...] = ()
    dose_limits: Mapping[str, DoseLimit] = field(default_factory=dict)

    def classes_of(self, substance_id: str | None) -> dict[str, Severity]:
        if substance_id is None:
            return {}
        return {code: members[substance_id] for code, (_, members) in self.classes.items()
                if substance_id in members}

    def keys_of(self, substance_id: str | None) -> set[str]:
        if substance_id is None:
            return set()
        return ({f"substance:{substance_id}"}
                | {f"class:{code}" for code in self.classes_of(substance_id)})

    def class_name(self, code: str) -> str:
        return self.classes.get(code, (code, {}))[0]


def ensure_usable(knowledge: ClinicalKnowledge, today: dt.date) -> KnowledgeRelease:
    """The release to check against, or KnowledgeBaseUnavailable saying exactly why not."""
    release = knowledge.release
    if release is None:
        raise KnowledgeBaseUnavailable(
            "No clinical knowledge base is loaded, so allergy, interaction and dose checks "
            "cannot run; prescribing is refused until one is installed")
    empty = [c for c in KNOWLEDGE_COMPONENTS if not knowledge.components_present.get(c)]
    if empty:
        raise KnowledgeBaseUnavailable(
            f"The clinical knowledge base {release.source} {release.version} has no "
            f"{', '.join(empty)}; prescribing is refused until a complete release is loaded")
    if release.valid_until < today:
        raise KnowledgeBaseUnavailable(
            f"The clinical knowledge base {release.source} {release.version} is out of date "
            f"(valid until {release.valid_until.isoformat()}); prescribing is refused until "
            "a current release is loaded")
    return release


# ---- what is being prescribed, for whom --------------------------------------------------
@dataclass(frozen=True)
class StructuredDose:
    value: Decimal
    unit: str  # "mg", "g", "microgram", or the product's unit dose form ("tablet")
    per_day: Decimal | None  # administrations per day, from the timing


@dataclass(frozen=True)
class Prescribing:
    """The prescription under check."""

    product: Product
    quantity: Decimal
    quantity_unit: str
    quantity_words: str | None
    supply_days: int | None
    dose: StructuredDose | None


@dataclass(frozen=True)
class RecordedAllergy:
    id: str
    code: str
    display: str


@dataclass(frozen=True)
class CurrentMedication:
    request_id: str
    substance_id: str | None
    name: str


def run_checks(rx: Prescribing, *, allergies: Iterable[RecordedAllergy],
               current: Iterable[CurrentMedication],
               knowledge: ClinicalKnowledge) -> list[Finding]:
    """Every finding, most severe first. The caller has already called ensure_usable()."""
    findings = (
        allergy_findings(rx.product, allergies, knowledge)
        + interaction_findings(rx.product, current, knowledge)
        + duplicate_findings(rx.product, current)
        + controlled_drug_findings(rx)
        + dose_findings(rx, knowledge)
    )
    return sorted(findings, key=lambda f: _RANK[f.severity])


def allergy_findings(product: Product, allergies: Iterable[RecordedAllergy],
                     knowledge: ClinicalKnowledge) -> list[Finding]:
    findings: list[Finding] = []
    drug_classes = knowledge.classes_of(product.substance_id)
    for allergy in allergies:
        concept = knowledge.allergens.get(allergy.code)
        key = f"allergy:{allergy.code}:{product.substance_id}"
        if concept is None:
            findings.append(Finding(
                "allergy", Severity.MODERATE,
                f"Recorded allergy '{allergy.display}' ({allergy.code}) is not coded in a way "
                f"the knowledge base understands; check it against {product.name} yourself",
                key))
            continue
        severity, why = _allergy_match(product, concept, drug_classes, knowledge)
        if severity is not None:
            findings.append(Finding(
                "allergy", severity,
                f"Allergy: the patient has a recorded allergy '{allergy.display}'; "
                f"{product.name} {why}", key, expression="MedicationRequest.medication"))
    return findings


def _allergy_match(product: Product, concept: AllergenConcept, drug_classes: dict[str, Severity],
                   knowledge: ClinicalKnowledge) -> tuple[Severity | None, str]:
    if concept.substance_id is not None and concept.substance_id == product.substance_id:
        return Severity.HIGH, "contains that substance"
    if concept.class_code is not None and concept.class_code in drug_classes:
        return (drug_classes[concept.class_code],
                f"belongs to the {knowledge.class_name(concept.class_code)} group")
    # A substance allergy extends to the groups in which that substance is a core member.
    for code, allergen_severity in knowledge.classes_of(concept.substance_id).items():
        if allergen_severity is Severity.HIGH and code in drug_classes:
            return (drug_classes[code],
                    f"is cross-sensitive with it ({knowledge.class_name(code)} group)")
    return None, ""


def interaction_findings(product: Product, current: Iterable[CurrentMedication],
                         knowledge: ClinicalKnowledge) -> list[Finding]:
    findings: list[Finding] = []
    new_keys = knowledge.keys_of(product.substance_id)
    for medication in current:
        other_keys = knowledge.keys_of(medication.substance_id)
        for pair in knowledge.interactions:
            if ((pair.left in new_keys and pair.right in other_keys)
                    or (pair.right in new_keys and pair.left in other_keys)):
                key = "interaction:" + "+".join(sorted((str(product.substance_id),
                                                       str(medication.substance_id))))
                findings.append(Finding(
                    "interaction", pair.severity,
                    f"Interaction ({pair.severity.value}) between {product.name} and "
                    f"{medication.name}: {pair.description}", key,
                    expression="MedicationRequest.medication"))
                break
    return findings


def duplicate_findings(product: Product, current: Iterable[CurrentMedication]) -> list[Finding]:
    return [
        Finding("duplicate-therapy", Severity.HIGH,
                f"Duplicate therapy: {medication.name} (same substance as {product.name}) "
                "is already current", f"duplicate:{product.substance_id}",
                expression="MedicationRequest.medication")
        for medication in current
        if product.substance_id is not None and medication.substance_id == product.substance_id
    ][:1]


def controlled_drug_findings(rx: Prescribing) -> list[Finding]:
    schedule = rx.product.cd_schedule
    if schedule not in CD_SCHEDULES_NEEDING_WORDS:
        return []
    findings: list[Finding] = []
    quantity_path = "MedicationRequest.dispenseRequest.quantity"
    if not rx.quantity_words:
        findings.append(Finding(
            "controlled-drug", Severity.HIGH,
            f"{rx.product.name} is a Schedule {schedule} controlled drug: the total quantity "
            "must be given in words as well as figures", "cd-quantity-words",
            overridable=False, expression=quantity_path))
    elif number_in_words(rx.quantity_words) != rx.quantity:
        findings.append(Finding(
            "controlled-drug", Severity.HIGH,
            f"Schedule {schedule} controlled drug: the quantity in words "
            f"('{rx.quantity_words}') does not match the figures ({rx.quantity})",
            "cd-quantity-words", overridable=False, expression=quantity_path))
    if rx.supply_days is None or rx.supply_days > CD_MAX_SUPPLY_DAYS:
        findings.append(Finding(
            "controlled-drug", Severity.HIGH,
            f"Schedule {schedule} controlled drug: supply should be at most "
            f"{CD_MAX_SUPPLY_DAYS} days (asked: "
            f"{rx.supply_days if rx.supply_days is not None else 'not stated'})",
            "cd-supply-days",
            expression="MedicationRequest.dispenseRequest.expectedSupplyDuration"))
    return findings


_MG_PER_UNIT = {"mg": Decimal(1), "g": Decimal(1000), "microgram": Decimal("0.001"),
                "mcg": Decimal("0.001"), "ug": Decimal("0.001")}


def dose_in_mg(dose: StructuredDose, product: Product) -> Decimal | None:
    unit = dose.unit.lower()
    if unit in _MG_PER_UNIT:
        return dose.value * _MG_PER_UNIT[unit]
    if (product.unit_dose_form and unit.rstrip("s") == product.unit_dose_form.lower()
            and product.strength_value is not None
            and (product.strength_unit or "").lower() in _MG_PER_UNIT):
        return dose.value * product.strength_value * _MG_PER_UNIT[product.strength_unit.lower()]
    return None


def dose_findings(rx: Prescribing, knowledge: ClinicalKnowledge) -> list[Finding]:
    if rx.dose is None:
        return []
    path = "MedicationRequest.dosageInstruction[0].doseAndRate[0].doseQuantity"
    single = dose_in_mg(rx.dose, rx.product)
    if single is None:
        return [Finding("dose", Severity.LOW,
                        f"The dose unit '{rx.dose.unit}' cannot be converted to mg for "
                        f"{rx.product.name}; the dose was not checked", "dose-unchecked",
                        expression=path)]
    limit = knowledge.dose_limits.get(rx.product.substance_id or "")
    if limit is None:
        return [Finding("dose", Severity.LOW,
                        f"The knowledge base has no dose limits for {rx.product.name}; "
                        "the dose was not checked", "dose-unchecked", expression=path)]
    findings = []
    if limit.max_single_mg is not None and single > limit.max_single_mg:
        findings.append(Finding(
            "dose", Severity.HIGH,
            f"Dose: {_mg(single)} mg in one dose exceeds the maximum single dose of "
            f"{_mg(limit.max_single_mg)} mg for {rx.product.name}", "dose-single", expression=path))
    if rx.dose.per_day is not None and limit.max_daily_mg is not None:
        daily = single * rx.dose.per_day
        if daily > limit.max_daily_mg:
            findings.append(Finding(
                "dose", Severity.HIGH,
                f"Dose: {_mg(daily)} mg a day exceeds the maximum daily dose of "
                f"{_mg(limit.max_daily_mg)} mg for {rx.product.name}", "dose-daily",
                expression=path))
    return findings


def _mg(value: Decimal) -> str:
    return format(value.normalize(), "f")


# ---- deciding -------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckOutcome:
    """What was found and what the prescriber accepted; stored with the request."""

    release: KnowledgeRelease
    findings: tuple[Finding, ...]
    overridden: tuple[Finding, ...]
    override_reason: str | None

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f not in self.overridden)


def decide(findings: list[Finding], release: KnowledgeRelease, *, override_reason: str | None,
           previously_overridden: frozenset[str] = frozenset()) -> CheckOutcome:
    """Refuse on any high finding unless overridden with a reason; everything else is a warning.

    `previously_overridden` holds the keys a prescriber already overrode on the plan
    being issued, so the same interaction is not re-argued at every repeat.
    """
    reason = (override_reason or "").strip() or None
    blocking = [f for f in findings
                if f.severity is Severity.HIGH and f.key not in previously_overridden]
    if blocking:
        fixed = [f for f in blocking if not f.overridable]
        if fixed:
            raise SafetyCheckRefused(findings, reason=(
                "Refused by safety checks; these findings cannot be overridden: "
                + "; ".join(f.message for f in fixed)))
        if reason is None:
            raise SafetyCheckRefused(findings, reason=(
                "Refused by safety checks (high severity). A prescriber may override with a "
                "recorded reason (extension Extension-SafetyCheckOverride)"))
        if len(reason) < MIN_OVERRIDE_REASON_LENGTH:
            raise SafetyCheckRefused(findings, reason=(
                f"An override reason must say why, in at least {MIN_OVERRIDE_REASON_LENGTH} "
                "characters"))
    return CheckOutcome(release, tuple(findings), tuple(blocking),
                        reason if blocking else None)
