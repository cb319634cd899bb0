"""Measurements as UK Core vital-sign profiles: what each measure is, in which UCUM units,
which values are plausible, and the BMI derived from a weight and a height.

Plausibility ranges are wide on purpose: they refuse keying errors (a systolic of
900, a height typed in centimetres as metres), never a real but unusual patient.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from gpsoc_kit.errors import Problem

from .snomed import SNOMED_SYSTEM

LOINC_SYSTEM = "http://loinc.org"
UCUM_SYSTEM = "http://unitsofmeasure.org"
OBSERVATION_CATEGORY_SYSTEM = "http://terminology.hl7.org/CodeSystem/observation-category"
_PROFILE = "https://fhir.hl7.org.uk/StructureDefinition/"
UK_CORE_OBSERVATION_PROFILE = _PROFILE + "UKCore-Observation"
BLOOD_PRESSURE_PROFILE = _PROFILE + "UKCore-Observation-VitalSigns-BloodPressure"
BODY_WEIGHT_PROFILE = _PROFILE + "UKCore-Observation-VitalSigns-BodyWeight"
BODY_HEIGHT_PROFILE = _PROFILE + "UKCore-Observation-VitalSigns-BodyHeight"
BMI_PROFILE = _PROFILE + "UKCore-Observation-VitalSigns-BMI"
HEART_RATE_PROFILE = _PROFILE + "UKCore-Observation-VitalSigns-HeartRate"
BODY_TEMPERATURE_PROFILE = _PROFILE + "UKCore-Observation-VitalSigns-BodyTemperature"
LAB_PROFILE = _PROFILE + "UKCore-Observation-Lab"

# A BMI is derived from a weight and a height measured near each other: an adult's
# height stands for two years, a weight for a month.
BMI_HEIGHT_WINDOW = dt.timedelta(days=365 * 2)
BMI_WEIGHT_WINDOW = dt.timedelta(days=31)


@dataclass(frozen=True)
class Measure:
    """A measurement the record knows: its codes, units (with plausible ranges) and profile."""

    name: str
    loinc: str
    snomed: str
    display: str
    plausible: dict[str, tuple[float, float]]  # UCUM unit -> (lowest, highest)
    unit_display: dict[str, str]
    profile: str
    category: str = "vital-signs"

    def coding(self) -> list[dict[str, str]]:
        return [
            {"system": SNOMED_SYSTEM, "code": self.snomed, "display": self.display},
            {"system": LOINC_SYSTEM, "code": self.loinc, "display": self.display},
        ]


WEIGHT = Measure(
    "weight",
    "29463-7",
    "27113001",
    "Body weight",
    {"kg": (0.2, 400.0)},
    {"kg": "kilogram"},
    BODY_WEIGHT_PROFILE,
)
HEIGHT = Measure(
    "height",
    "8302-2",
    "50373000",
    "Body height",
    {"m": (0.2, 2.75), "cm": (20.0, 275.0)},
    {"m": "meter", "cm": "centimeter"},
    BODY_HEIGHT_PROFILE,
)
BMI = Measure(
    "bmi",
    "39156-5",
    "60621009",
    "Body mass index",
    {"kg/m2": (8.0, 100.0)},
    {"kg/m2": "kilogram / (meter ^ 2)"},
    BMI_PROFILE,
)
HBA1C = Measure(
    "hba1c",
    "59261-8",
    "999791000000106",
    "Haemoglobin A1c level (IFCC)",
    {"mmol/mol": (15.0, 200.0)},
    {"mmol/mol": "millimole per mole"},
    LAB_PROFILE,
    category="laboratory",
)
HEART_RATE = Measure(
    "heart-rate",
    "8867-4",
    "364075005",
    "Heart rate",
    {"/min": (20.0, 300.0)},
    {"/min": "beats/minute"},
    HEART_RATE_PROFILE,
)
TEMPERATURE = Measure(
    "temperature",
    "8310-5",
    "276885007",
    "Body temperature",
    {"Cel": (25.0, 45.0)},
    {"Cel": "degree Celsius"},
    BODY_TEMPERATURE_PROFILE,
)
MEASURES = (WEIGHT, HEIGHT, BMI, HBA1C, HEART_RATE, TEMPERATURE)

BP_PANEL = ("85354-9", "75367002")
SYSTOLIC = Measure(
    "systolic",
    "8480-6",
    "72313002",
    "Systolic blood pressure",
    {"mm[Hg]": (40.0, 300.0)},
    {"mm[Hg]": "millimeter of mercury"},
    BLOOD_PRESSURE_PROFILE,
)
DIASTOLIC = Measure(
    "diastolic",
    "8462-4",
    "1091811000000102",
    "Diastolic blood pressure",
    {"mm[Hg]": (20.0, 200.0)},
    {"mm[Hg]": "millimeter of mercury"},
    BLOOD_PRESSURE_PROFILE,
)
_SYSTOLIC_SNOMED = {"72313002", "271649006"}
_DIASTOLIC_SNOMED = {"1091811000000102", "271650006"}


def _codes(concept: Any) -> set[tuple[str, str]]:
    codings = concept.get("coding") if isinstance(concept, dict) else None
    return {(c.get("system"), c.get("code")) for c in codings or [] if isinstance(c, dict)}


def measure_of(code: Any) -> Measure | None:
    codes = _codes(code)
    for measure in MEASURES:
        if (LOINC_SYSTEM, measure.loinc) in codes or (SNOMED_SYSTEM, measure.snomed) in codes:
            return measure
    return None


def is_blood_pressure(code: Any) -> bool:
    codes = _codes(code)
    return (LOINC_SYSTEM, BP_PANEL[0]) in codes or (SNOMED_SYSTEM, BP_PANEL[1]) in codes


def _component_measure(code: Any) -> Measure | None:
    codes = _codes(code)
    if (LOINC_SYSTEM, SYSTOLIC.loinc) in codes or codes & {
        (SNOMED_SYSTEM, c) for c in _SYSTOLIC_SNOMED
    }:
        return SYSTOLIC
    if (LOINC_SYSTEM, DIASTOLIC.loinc) in codes or codes & {
        (SNOMED_SYSTEM, c) for c in _DIASTOLIC_SNOMED
    }:
        return DIASTOLIC
    return None


def check_quantity(
    measure: Measure, quantity: Any, where: str, problems: list[Problem]
) -> float | None:
    """The value of a plausible quantity in its unit, or None with the reason in `problems`."""
    if not isinstance(quantity, dict):
        problems.append(Problem(f"{measure.display} needs a valueQuantity", where))
        return None
    value, unit, system = quantity.get("value"), quantity.get("code"), quantity.get("system")
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.append(Problem(f"{measure.display} needs a numeric value", f"{where}.value"))
        return None
    if system != UCUM_SYSTEM or unit not in measure.plausible:
        problems.append(
            Problem(
                f"{measure.display} must be in UCUM units ({', '.join(measure.plausible)})",
                f"{where}.code",
            )
        )
        return None
    low, high = measure.plausible[unit]
    if not low <= value <= high:
        problems.append(
            Problem(
                f"{measure.display} of {value} {unit} is implausible (expected {low:g} to {high:g} {unit})",
                f"{where}.value",
            )
        )
        return None
    return float(value)


def check_blood_pressure(resource: dict[str, Any], problems: list[Problem]) -> dict[str, float]:
    """Systolic and diastolic components, both present and plausible, systolic above diastolic."""
    found: dict[str, float] = {}
    seen: set[str] = set()
    components = resource.get("component")
    if not isinstance(components, list):
        components = []
    for index, component in enumerate(components):
        if not isinstance(component, dict):
            continue
        measure = _component_measure(component.get("code"))
        if measure is None:
            continue
        seen.add(measure.name)
        value = check_quantity(
            measure,
            component.get("valueQuantity"),
            f"Observation.component[{index}].valueQuantity",
            problems,
        )
        if value is not None:
            found[measure.name] = value
    for measure in (SYSTOLIC, DIASTOLIC):
        if measure.name not in seen:
            problems.append(
                Problem(
                    f"A blood pressure needs a {measure.display.lower()} component "
                    f"(LOINC {measure.loinc})",
                    "Observation.component",
                )
            )
    if len(found) == 2 and found["systolic"] <= found["diastolic"]:
        problems.append(
            Problem(
                "Systolic pressure must be higher than diastolic pressure", "Observation.component"
            )
        )
    return found


def in_metres(value: float, unit: str) -> float:
    return value / 100 if unit == "cm" else value


def body_mass_index(weight_kg: float, height_m: float) -> float:
    """BMI in kg/m2, to one decimal place as GP systems record it."""
    return round(weight_kg / (height_m * height_m), 1)


def bmi_problem(bmi: float) -> Problem | None:
    low, high = BMI.plausible["kg/m2"]
    if low <= bmi <= high:
        return None
    return Problem(
        f"The weight and height give a BMI of {bmi}, which is implausible "
        f"(expected {low:g} to {high:g}); check the units of the height and weight",
        "Observation.valueQuantity",
    )


def bmi_observation(
    *,
    patient_id: str,
    bmi: float,
    effective: str,
    weight_id: str,
    height_id: str,
    encounter_id: str | None,
) -> dict[str, Any]:
    """The BMI Observation derived from a weight and a height (both referenced)."""
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "meta": {"profile": [BMI_PROFILE]},
        "status": "final",
        "category": [
            {
                "coding": [
                    {
                        "system": OBSERVATION_CATEGORY_SYSTEM,
                        "code": "vital-signs",
                        "display": "Vital Signs",
                    }
                ]
            }
        ],
        "code": {"coding": BMI.coding()},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": effective,
        "valueQuantity": {
            "value": bmi,
            "unit": BMI.unit_display["kg/m2"],
            "system": UCUM_SYSTEM,
            "code": "kg/m2",
        },
        "derivedFrom": [
            {"reference": f"Observation/{weight_id}"},
            {"reference": f"Observation/{height_id}"},
        ],
    }
    if encounter_id:
        resource["encounter"] = {"reference": f"Encounter/{encounter_id}"}
    return resource


def with_profile_units(resource: dict[str, Any]) -> None:
    """Gives a measurement's value the unit text its UK Core profile fixes (e.g. 'kilogram')."""
    measure = measure_of(resource.get("code"))
    quantity = resource.get("valueQuantity")
    if measure is None or not isinstance(quantity, dict):
        return
    display = measure.unit_display.get(str(quantity.get("code")))
    if display and quantity.get("system") == UCUM_SYSTEM:
        quantity["unit"] = display
