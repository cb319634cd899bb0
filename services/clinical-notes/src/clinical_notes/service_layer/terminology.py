"""SNOMED CT look-up: a code's details ($lookup), concepts by text ($expand with a filter),
and the import of an RF2 release.

Codes are found first in the curated primary-care set, then in the imported
release, so look-up works the same before and after the licensed edition is loaded.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from gpsoc_kit.errors import InvalidSearch, NotFound, Problem
from sqlalchemy.ext.asyncio import AsyncConnection

from ..adapters.repository import TerminologyRepository
from ..domain import rf2
from ..domain.primary_care_refset import BY_ID as CURATED
from ..domain.primary_care_refset import CONCEPTS
from ..domain.snomed import SNOMED_SYSTEM, Concept, is_concept_id, search, split_semantic_tag

log = logging.getLogger("clinical_notes.terminology")
IMPORT_BATCH = 5000
MAX_MATCHES = 50


async def lookup(conn: AsyncConnection, system: str | None, code: str | None) -> dict[str, Any]:
    """The FHIR $lookup answer (a Parameters resource) for one SNOMED CT concept."""
    if system != SNOMED_SYSTEM:
        raise InvalidSearch([Problem(f"Only {SNOMED_SYSTEM} can be looked up here", "system")])
    if not code or not is_concept_id(code):
        raise InvalidSearch([Problem("code must be a SNOMED CT concept id", "code")])
    concept = CURATED.get(code)
    if concept is None:
        fsn = (await TerminologyRepository(conn).active_concepts([code])).get(code)
        if fsn is None:
            raise NotFound(f"CodeSystem/{code}")
        term, tag = split_semantic_tag(fsn)
        concept = Concept(code, term, tag)
    return {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "name", "valueString": "SNOMED CT"},
            {"name": "display", "valueString": concept.term},
            {
                "name": "designation",
                "part": [
                    {
                        "name": "use",
                        "valueCoding": {
                            "system": SNOMED_SYSTEM,
                            "code": "900000000000003001",
                            "display": "Fully specified name",
                        },
                    },
                    {"name": "value", "valueString": concept.fully_specified_name},
                ],
            },
            *(
                {
                    "name": "designation",
                    "part": [
                        {
                            "name": "use",
                            "valueCoding": {
                                "system": SNOMED_SYSTEM,
                                "code": "900000000000013009",
                                "display": "Synonym",
                            },
                        },
                        {"name": "value", "valueString": synonym},
                    ],
                }
                for synonym in concept.synonyms
            ),
        ],
    }


async def expand(conn: AsyncConnection, text: str | None, *, count: int) -> dict[str, Any]:
    """A ValueSet expansion of the concepts whose terms match `text` (every word a prefix)."""
    words = (text or "").split()
    if not words or len(" ".join(words)) < 3:
        raise InvalidSearch([Problem("filter needs at least 3 characters of text", "filter")])
    count = min(count, MAX_MATCHES)
    matches = [c.coding() for c in search(CONCEPTS, " ".join(words), limit=count)]
    seen = {m["code"] for m in matches}
    if len(matches) < count:
        for concept_id, term, _ in await TerminologyRepository(conn).search(words, limit=count * 2):
            if concept_id not in seen and len(matches) < count:
                seen.add(concept_id)
                matches.append({"system": SNOMED_SYSTEM, "code": concept_id, "display": term})
    return {
        "resourceType": "ValueSet",
        "status": "active",
        "url": f"{SNOMED_SYSTEM}?fhir_vs",
        "expansion": {
            "timestamp": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
            "total": len(matches),
            "parameter": [{"name": "filter", "valueString": text}],
            "contains": matches,
        },
    }


def _batches(items: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for item in items:
        batch.append(item)
        if len(batch) == IMPORT_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def release_files(directory: Path) -> tuple[Path, Path]:
    """The concept and description snapshot files of an RF2 release directory."""
    concepts = sorted(directory.rglob("sct2_Concept_Snapshot*.txt"))
    descriptions = sorted(directory.rglob("sct2_Description_Snapshot*.txt"))
    if len(concepts) != 1 or len(descriptions) != 1:
        raise rf2.Rf2FormatError(
            f"{directory} must hold one sct2_Concept_Snapshot and one "
            "sct2_Description_Snapshot file"
        )
    return concepts[0], descriptions[0]


async def import_release(conn: AsyncConnection, directory: Path) -> dict[str, int]:
    """Load an RF2 snapshot release into the terminology tables (re-importing is safe:
    a row is replaced only by one at least as recent)."""
    concept_file, description_file = release_files(directory)
    terminology = TerminologyRepository(conn)
    counts = {"concepts": 0, "descriptions": 0}
    with concept_file.open(encoding="utf-8", newline="") as lines:
        rows = (
            {
                "id": c.id,
                "effective_time": c.effective_time,
                "active": c.active,
                "module_id": c.module_id,
            }
            for c in rf2.read_concepts(lines, concept_file.name)
        )
        for batch in _batches(rows):
            await terminology.upsert_concepts(batch)
            counts["concepts"] += len(batch)
    with description_file.open(encoding="utf-8", newline="") as lines:
        rows = (
            {
                "id": d.id,
                "effective_time": d.effective_time,
                "active": d.active,
                "concept_id": d.concept_id,
                "language_code": d.language_code,
                "type_id": d.type_id,
                "term": d.term,
            }
            for d in rf2.read_descriptions(lines, description_file.name)
        )
        for batch in _batches(rows):
            await terminology.upsert_descriptions(batch)
            counts["descriptions"] += len(batch)
    await terminology.refresh_fully_specified_names(rf2.FSN_TYPE)
    log.info("SNOMED CT release imported", extra=counts)
    return counts
