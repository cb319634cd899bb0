"""The clinical knowledge base behind the safety checks, behind one interface.

`KnowledgeBase.snapshot()` returns the part of the knowledge a request needs, with
the release it came from, for the pure checks in domain.safety. The implementation
here reads tables loaded from the shipped SAMPLE file (reference/sample_knowledge_base.json);
a licensed product replaces it by implementing the same method, nothing else changes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import delete, insert, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..domain.safety import (
    AllergenConcept,
    ClinicalKnowledge,
    DoseLimit,
    Interaction,
    KnowledgeRelease,
    Severity,
)
from .tables import (
    kb_allergen_concepts,
    kb_dose_limits,
    kb_interactions,
    kb_substance_classes,
    knowledge_base_release,
)

# The release row and whether each component holds anything, in one round trip.
_RELEASE_AND_CONTENTS = text("""
SELECT r.source, r.version, r.published_on, r.valid_until,
       EXISTS (SELECT 1 FROM kb_substance_classes) AS classes,
       EXISTS (SELECT 1 FROM kb_allergen_concepts) AS allergens,
       EXISTS (SELECT 1 FROM kb_interactions) AS interactions,
       EXISTS (SELECT 1 FROM kb_dose_limits) AS doses
FROM (SELECT 1) AS one LEFT JOIN knowledge_base_release AS r ON true
""")


class KnowledgeBase(Protocol):
    async def snapshot(self, conn: AsyncConnection, *, substance_ids: Iterable[str],
                       allergen_codes: Iterable[str],
                       dose_substance_id: str | None) -> ClinicalKnowledge: ...


class TableKnowledgeBase:
    """Knowledge from this service's kb_* tables (the SAMPLE data, or any release loaded there)."""

    async def snapshot(self, conn: AsyncConnection, *, substance_ids: Iterable[str],
                       allergen_codes: Iterable[str],
                       dose_substance_id: str | None) -> ClinicalKnowledge:
        # Read on every request, so a release loaded (or withdrawn) takes effect at once.
        head = (await conn.execute(_RELEASE_AND_CONTENTS)).one()
        release = (KnowledgeRelease(head.source, head.version, head.published_on,
                                    head.valid_until) if head.source is not None else None)
        present = {"substance classes": head.classes, "allergen concepts": head.allergens,
                   "interactions": head.interactions, "dose limits": head.doses}
        if release is None or not all(present.values()):
            return ClinicalKnowledge(release, present)

        codes = sorted(set(allergen_codes))
        allergens = {}
        if codes:
            rows = await conn.execute(select(kb_allergen_concepts)
                                      .where(kb_allergen_concepts.c.snomed_code.in_(codes)))
            allergens = {r.snomed_code: AllergenConcept(r.snomed_code, r.display, r.substance_id,
                                                        r.class_code) for r in rows}
        substances = set(substance_ids) | {a.substance_id for a in allergens.values()
                                           if a.substance_id}
        classes: dict[str, tuple[str, dict[str, Severity]]] = {}
        if substances:
            rows = await conn.execute(select(kb_substance_classes).where(
                kb_substance_classes.c.substance_id.in_(sorted(substances))))
            for r in rows:
                display, members = classes.setdefault(r.class_code, (r.class_display, {}))
                members[r.substance_id] = Severity(r.cross_sensitivity)
        keys = ({f"substance:{s}" for s in substances} | {f"class:{c}" for c in classes})
        interactions: tuple[Interaction, ...] = ()
        if keys:
            rows = await conn.execute(select(kb_interactions).where(or_(
                kb_interactions.c.left_key.in_(sorted(keys)),
                kb_interactions.c.right_key.in_(sorted(keys)))))
            interactions = tuple(Interaction(r.left_key, r.right_key, Severity(r.severity),
                                             r.description) for r in rows)
        dose_limits = {}
        if dose_substance_id:
            row = (await conn.execute(select(kb_dose_limits).where(
                kb_dose_limits.c.substance_id == dose_substance_id))).first()
            if row is not None:
                dose_limits[row.substance_id] = DoseLimit(row.substance_id, row.max_single_mg,
                                                          row.max_daily_mg)
        return ClinicalKnowledge(release, present, classes, allergens, interactions, dose_limits)


async def load_knowledge_base(engine: AsyncEngine, path: Path) -> dict[str, int]:
    """Replace the knowledge base tables with the release in `path`, in one transaction."""
    document: dict[str, Any] = json.loads(await asyncio.to_thread(Path(path).read_text))
    classes = [{"class_code": c["code"], "class_display": c["display"], "substance_id": s,
                "cross_sensitivity": Severity(level).value}
               for c in document["substanceClasses"] for s, level in c["members"].items()]
    allergens = [{"snomed_code": a["code"], "display": a["display"],
                  "substance_id": a.get("substanceId"), "class_code": a.get("classCode")}
                 for a in document["allergenConcepts"]]
    interactions = [{"left_key": i["left"], "right_key": i["right"],
                     "severity": Severity(i["severity"]).value, "description": i["description"]}
                    for i in document["interactions"]]
    doses = [{"substance_id": d["substanceId"],
              "max_single_mg": _decimal(d.get("maxSingleMg")),
              "max_daily_mg": _decimal(d.get("maxDailyMg"))} for d in document["doseLimits"]]
    async with engine.begin() as conn:
        for table in (knowledge_base_release, kb_substance_classes, kb_allergen_concepts,
                      kb_interactions, kb_dose_limits):
            await conn.execute(delete(table))
        for table, rows in ((kb_substance_classes, classes), (kb_allergen_concepts, allergens),
                            (kb_interactions, interactions), (kb_dose_limits, doses)):
            if rows:
                await conn.execute(insert(table), rows)
        await conn.execute(insert(knowledge_base_release).values(
            id=1, source=document["source"], version=document["version"],
            published_on=dt.date.fromisoformat(document["publishedOn"]),
            valid_until=dt.date.fromisoformat(document["validUntil"])))
    return {"substanceClasses": len(classes), "allergenConcepts": len(allergens),
            "interactions": len(interactions), "doseLimits": len(doses)}


def _decimal(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))
