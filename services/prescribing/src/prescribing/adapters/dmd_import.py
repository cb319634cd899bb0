"""Importer for the NHSBSA dm+d XML release (the weekly "nhsbsa_dmd_*" download).

Reads the files this service needs from an unzipped release directory:
  f_lookup2_*.xml  code tables (forms, routes, units, controlled drug categories, availability)
  f_vtm2_*.xml     VIRTUAL_THERAPEUTIC_MOIETIES/VTM: VTMID, NM, INVALID
  f_vmp2_*.xml     VIRTUAL_MED_PRODUCTS: VMPS/VMP (VPID, VTMID, NM, INVALID, NON_AVAILCD,
                   UNIT_DOSE_UOMCD), VIRTUAL_PRODUCT_INGREDIENT/VPI (strength),
                   DRUG_FORM/DFORM, DRUG_ROUTE/DROUTE, CONTROL_DRUG_INFO/CONTROL_INFO (CATCD)
  f_amp2_*.xml     ACTUAL_MEDICINAL_PRODUCTS/AMPS/AMP: APID, VPID, NM, DESC, SUPPCD,
                   AVAIL_RESTRICTCD, INVALID
Packs (VMPP/AMPP) are not imported: prescriptions here name a VMP or an AMP, and the
quantity is given in the product's unit dose form.

The real AMP file is hundreds of megabytes, so files are streamed (iterparse) and
elements are released as soon as they are read. The lookup file is required: the
controlled drug schedules come from it, and guessing them would be unsafe.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from ..domain.formulary import AMP, VMP, VTM, Product, normalise_name, schedule_from_category
from .tables import medications

# AVAILABILITY_RESTRICTION code meaning "no restriction" (the product is generally available).
UNRESTRICTED = "0001"
BATCH_SIZE = 1000


class DmdReleaseError(ValueError):
    """The directory is not a usable dm+d release."""


@dataclass(frozen=True)
class DmdRelease:
    name: str
    products: list[Product]

    def count(self, concept_class: str) -> int:
        return sum(1 for p in self.products if p.concept_class == concept_class)


def _one_file(directory: Path, prefix: str) -> Path:
    matches = sorted(directory.glob(f"{prefix}_*.xml"))
    if not matches:
        raise DmdReleaseError(f"no {prefix}_*.xml in {directory}")
    return matches[-1]


def _records(path: Path, tag: str) -> Iterator[dict[str, str]]:
    """Each <tag> element as {child tag: text}, streamed."""
    for _, element in ET.iterparse(path, events=("end",)):
        if element.tag == tag:
            yield {child.tag: (child.text or "").strip() for child in element}
            element.clear()


def read_lookups(path: Path) -> dict[str, dict[str, str]]:
    """f_lookup2: {table name: {code: description}}."""
    tables: dict[str, dict[str, str]] = {}
    root = ET.parse(path).getroot()
    for table in root:
        tables[table.tag] = {(info.findtext("CD") or "").strip(): (info.findtext("DESC") or "").strip()
                             for info in table.iter("INFO")}
    return tables


def parse_release(directory: Path) -> DmdRelease:
    directory = Path(directory)
    lookups = read_lookups(_one_file(directory, "f_lookup2"))
    vmp_path = _one_file(directory, "f_vmp2")
    release = re.sub(r"\D", "", vmp_path.stem.rsplit("_", 1)[-1]) or vmp_path.stem
    units = lookups.get("UNIT_OF_MEASURE", {})
    forms = lookups.get("FORM", {})
    routes = lookups.get("ROUTE", {})
    cd_categories = lookups.get("CONTROL_DRUG_CATEGORY", {})
    if not cd_categories:
        raise DmdReleaseError("the lookup file has no CONTROL_DRUG_CATEGORY table")

    products: list[Product] = [
        Product(dmd_id=r["VTMID"], concept_class=VTM, name=r["NM"], vtm_id=r["VTMID"],
                invalid=r.get("INVALID") == "1")
        for r in _records(_one_file(directory, "f_vtm2"), "VTM")
    ]

    vmps: dict[str, Product] = {}
    ingredients: dict[str, list[dict[str, str]]] = {}
    form_of: dict[str, str] = {}
    route_of: dict[str, list[str]] = {}
    category_of: dict[str, str] = {}
    for _, element in ET.iterparse(vmp_path, events=("end",)):
        tag = element.tag
        if tag not in ("VMP", "VPI", "DFORM", "DROUTE", "CONTROL_INFO"):
            continue
        record = {child.tag: (child.text or "").strip() for child in element}
        element.clear()
        vpid = record.get("VPID", "")
        if tag == "VMP":
            non_available = record.get("NON_AVAILCD")
            vmps[vpid] = Product(
                dmd_id=vpid, concept_class=VMP, name=record["NM"],
                vtm_id=record.get("VTMID") or None, vmp_id=vpid,
                unit_dose_form=units.get(record.get("UNIT_DOSE_UOMCD", "")) or None,
                available=not non_available,
                availability=lookups.get("VIRTUAL_PRODUCT_NON_AVAIL", {}).get(non_available or "")
                or None,
                invalid=record.get("INVALID") == "1")
        elif tag == "VPI":
            ingredients.setdefault(vpid, []).append(record)
        elif tag == "DFORM":
            form_of[vpid] = forms.get(record.get("FORMCD", ""), record.get("FORMCD", ""))
        elif tag == "DROUTE":
            route_of.setdefault(vpid, []).append(routes.get(record.get("ROUTECD", ""),
                                                            record.get("ROUTECD", "")))
        elif tag == "CONTROL_INFO":
            category_of[vpid] = cd_categories.get(record.get("CATCD", ""), "")

    for vpid, vmp in vmps.items():
        strength, value, unit, per = _strength(ingredients.get(vpid, []), units)
        category = category_of.get(vpid)
        schedule = schedule_from_category(category)
        vmps[vpid] = replace(
            vmp, form=form_of.get(vpid), route=", ".join(route_of.get(vpid, [])) or None,
            strength=strength, strength_value=value, strength_unit=unit,
            unit_dose_form=per or vmp.unit_dose_form, cd_schedule=schedule,
            cd_category=category if schedule is not None else None)
    products.extend(vmps.values())

    suppliers = lookups.get("SUPPLIER", {})
    restrictions = lookups.get("AVAILABILITY_RESTRICTION", {})
    for record in _records(_one_file(directory, "f_amp2"), "AMP"):
        vmp = vmps.get(record.get("VPID", ""))
        if vmp is None:
            raise DmdReleaseError(f"AMP {record.get('APID')} names an unknown VMP")
        restriction = record.get("AVAIL_RESTRICTCD", UNRESTRICTED)
        products.append(replace(
            vmp, dmd_id=record["APID"], concept_class=AMP,
            name=record.get("DESC") or record["NM"],
            available=restriction == UNRESTRICTED and vmp.available,
            availability=restrictions.get(restriction) if restriction != UNRESTRICTED else None,
            supplier=suppliers.get(record.get("SUPPCD", "")) or None,
            invalid=record.get("INVALID") == "1"))
    return DmdRelease(release, products)


def _strength(parts: list[dict[str, str]], units: dict[str, str]
              ) -> tuple[str | None, Decimal | None, str | None, str | None]:
    """Strength text, and for a single ingredient its amount per unit dose (value, unit, per)."""
    if not parts:
        return None, None, None, None
    texts = []
    for part in parts:
        amount = _number(part.get("STRNT_NMRTR_VAL"))
        unit = units.get(part.get("STRNT_NMRTR_UOMCD", ""), "")
        if amount is None:
            continue
        text = f"{_plain(amount)}{unit}"
        per_amount = _number(part.get("STRNT_DNMTR_VAL"))
        if per_amount is not None:
            text += f"/{_plain(per_amount)}{units.get(part.get('STRNT_DNMTR_UOMCD', ''), '')}"
        texts.append(text)
    if len(parts) != 1:
        return " + ".join(texts) or None, None, None, None
    part = parts[0]
    amount = _number(part.get("STRNT_NMRTR_VAL"))
    unit = units.get(part.get("STRNT_NMRTR_UOMCD", "")) or None
    per_amount = _number(part.get("STRNT_DNMTR_VAL"))
    if amount is not None and per_amount:
        # A liquid: strength per one of the denominator's unit (10mg/5ml -> 2mg per ml).
        return (texts[0] if texts else None, amount / per_amount, unit,
                units.get(part.get("STRNT_DNMTR_UOMCD", "")) or None)
    return (texts[0] if texts else None), amount, unit, None


def _number(raw: str | None) -> Decimal | None:
    if not raw:
        return None
    try:
        return Decimal(raw)
    except InvalidOperation:
        return None


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _row(product: Product, release: str) -> dict[str, object]:
    return {
        "dmd_id": product.dmd_id, "concept_class": product.concept_class, "name": product.name,
        "name_normalised": normalise_name(product.name), "vtm_id": product.vtm_id,
        "vmp_id": product.vmp_id, "form": product.form, "route": product.route,
        "strength": product.strength, "strength_value": product.strength_value,
        "strength_unit": product.strength_unit, "unit_dose_form": product.unit_dose_form,
        "cd_schedule": product.cd_schedule, "cd_category": product.cd_category,
        "available": product.available, "availability": product.availability,
        "supplier": product.supplier, "invalid": product.invalid,
        "release": release,
    }


async def load_release(engine: AsyncEngine, release: DmdRelease) -> dict[str, int]:
    """Insert or update every product of the release (idempotent); returns counts by class."""
    rows = [_row(p, release.name) for p in release.products]
    async with engine.begin() as conn:
        for start in range(0, len(rows), BATCH_SIZE):
            statement = pg_insert(medications).values(rows[start:start + BATCH_SIZE])
            updatable = {c.name: statement.excluded[c.name] for c in medications.columns
                         if c.name not in ("dmd_id", "updated_at")}
            await conn.execute(statement.on_conflict_do_update(
                index_elements=[medications.c.dmd_id],
                set_={**updatable, "updated_at": statement.excluded.updated_at}))
    return {"VTM": release.count(VTM), "VMP": release.count(VMP), "AMP": release.count(AMP)}
