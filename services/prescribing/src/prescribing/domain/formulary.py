"""The formulary, shaped on dm+d: VTM (the substance), VMP (generic product), AMP (branded product).

Medication resources are reference data shared by every practice; this module
turns a formulary row into a UKCore-Medication resource and says which
products may be prescribed.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

DMD_SYSTEM = "https://dmd.nhs.uk"
SNOMED_SYSTEM = "http://snomed.info/sct"
UK_CORE_MEDICATION_PROFILE = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Medication"
CONTROLLED_DRUG_EXTENSION = (
    "https://opengpsoc.org/fhir/StructureDefinition/Extension-ControlledDrugSchedule"
)
DMD_CONCEPT_CLASS_EXTENSION = (
    "https://opengpsoc.org/fhir/StructureDefinition/Extension-DmdConceptClass"
)

VTM, VMP, AMP = "VTM", "VMP", "AMP"
PRESCRIBABLE_CLASSES = frozenset({VMP, AMP})


@dataclass(frozen=True)
class Product:
    """One formulary entry, as the safety checks and prescriptions need it."""

    dmd_id: str
    concept_class: str
    name: str
    vtm_id: str | None = None
    vmp_id: str | None = None
    form: str | None = None
    route: str | None = None
    strength: str | None = None
    # Strength of one unit dose in `strength_unit` (e.g. 500 mg per capsule), for dose checks.
    strength_value: Decimal | None = None
    strength_unit: str | None = None
    unit_dose_form: str | None = None  # "tablet", "capsule", "ml"
    cd_schedule: int | None = None
    cd_category: str | None = None
    available: bool = True
    availability: str | None = None
    supplier: str | None = None
    invalid: bool = False
    # The formulary row's provenance: the dm+d release it was imported from, and when.
    release: str | None = None
    imported_at: dt.datetime | None = None

    @property
    def substance_id(self) -> str:
        """What the safety checks compare: the VTM, or the product itself when dm+d gives no VTM."""
        return self.vtm_id or self.vmp_id or self.dmd_id

    @property
    def controlled(self) -> bool:
        return self.cd_schedule is not None

    def why_not_prescribable(self) -> str | None:
        if self.concept_class not in PRESCRIBABLE_CLASSES:
            return (f"{self.name} is a dm+d {self.concept_class}; prescribe a VMP (generic) "
                    "or AMP (branded) product")
        if self.invalid:
            return f"{self.name} is marked invalid in dm+d"
        if not self.available:
            return f"{self.name} is not available ({self.availability or 'no products available'})"
        return None


def normalise_name(value: str) -> str:
    """Lower case, accents and punctuation folded to spaces: what name search compares."""
    folded = unicodedata.normalize("NFKD", value).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9.%/]+", " ", folded.lower()).strip()


def schedule_from_category(description: str | None) -> int | None:
    """dm+d's controlled drug category description ("Schedule 2 (CD)") -> 2; none -> None."""
    if not description:
        return None
    match = re.search(r"schedule\s*([1-5])", description, re.IGNORECASE)
    return int(match.group(1)) if match else None


def medication_resource(product: Product) -> dict[str, Any]:
    """The UKCore-Medication resource for a formulary entry (id = the dm+d id)."""
    resource: dict[str, Any] = {
        "resourceType": "Medication",
        "id": product.dmd_id,
        "meta": _meta(product),
        "code": {"coding": [{"system": DMD_SYSTEM, "code": product.dmd_id,
                             "display": product.name}]},
        "status": "inactive" if product.invalid or not product.available else "active",
        "extension": [{"url": DMD_CONCEPT_CLASS_EXTENSION, "valueCode": product.concept_class}],
    }
    if product.form:
        resource["form"] = {"text": product.form}
    if product.strength and product.concept_class != VTM:
        resource["ingredient"] = [{
            "itemCodeableConcept": _vtm_concept(product),
            "isActive": True,
            **({"strength": _ratio(product)} if product.strength_value is not None else {}),
        }]
    elif product.vtm_id:
        resource["ingredient"] = [{"itemCodeableConcept": _vtm_concept(product), "isActive": True}]
    if product.cd_schedule is not None:
        resource["extension"].append({
            "url": CONTROLLED_DRUG_EXTENSION,
            "valueCodeableConcept": {"text": product.cd_category
                                     or f"Schedule {product.cd_schedule}"},
        })
    return resource


def _meta(product: Product) -> dict[str, Any]:
    """meta.versionId is the dm+d release the entry was imported from, lastUpdated its import."""
    meta: dict[str, Any] = {}
    if product.release:
        meta["versionId"] = re.sub(r"[^A-Za-z0-9.\-]", "-", product.release)[:64]
    if product.imported_at is not None:
        meta["lastUpdated"] = (product.imported_at.astimezone(dt.UTC).isoformat()
                               .replace("+00:00", "Z"))
    meta["profile"] = [UK_CORE_MEDICATION_PROFILE]
    return meta


def _vtm_concept(product: Product) -> dict[str, Any]:
    if product.vtm_id:
        return {"coding": [{"system": DMD_SYSTEM, "code": product.vtm_id}],
                "text": product.strength or product.name}
    return {"text": product.strength or product.name}


def _ratio(product: Product) -> dict[str, Any]:
    return {
        "numerator": {"value": float(product.strength_value or 0),
                      "unit": product.strength_unit or ""},
        "denominator": {"value": 1, "unit": product.unit_dose_form or "unit"},
    }
