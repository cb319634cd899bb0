"""Reading the SNOMED CT RF2 release format (tab-separated snapshot files).

sct2_Concept_Snapshot: id, effectiveTime, active, moduleId, definitionStatusId.
sct2_Description_Snapshot: id, effectiveTime, active, moduleId, conceptId,
languageCode, typeId, term, caseSignificanceId. The first line is the header.
Lines are parsed one at a time, so a full UK edition streams in bounded memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

CONCEPT_HEADER = ("id", "effectiveTime", "active", "moduleId", "definitionStatusId")
DESCRIPTION_HEADER = (
    "id",
    "effectiveTime",
    "active",
    "moduleId",
    "conceptId",
    "languageCode",
    "typeId",
    "term",
    "caseSignificanceId",
)
FSN_TYPE = "900000000000003001"
SYNONYM_TYPE = "900000000000013009"


class Rf2FormatError(ValueError):
    """The file is not the RF2 snapshot it claims to be (wrong header or a malformed row)."""


@dataclass(frozen=True)
class Rf2Concept:
    id: str
    effective_time: str
    active: bool
    module_id: str


@dataclass(frozen=True)
class Rf2Description:
    id: str
    effective_time: str
    active: bool
    concept_id: str
    language_code: str
    type_id: str
    term: str


def _rows(
    lines: Iterable[str], header: tuple[str, ...], name: str
) -> Iterator[tuple[int, list[str]]]:
    iterator = iter(lines)
    first = next(iterator, None)
    if first is None or tuple(first.rstrip("\r\n").split("\t")) != header:
        raise Rf2FormatError(f"{name}: the header is not the RF2 header ({', '.join(header)})")
    for number, line in enumerate(iterator, start=2):
        line = line.rstrip("\r\n")
        if not line:
            continue
        fields = line.split("\t")
        if len(fields) != len(header) or fields[2] not in ("0", "1") or not fields[0].isdigit():
            raise Rf2FormatError(f"{name}: line {number} is not a valid row")
        yield number, fields


def read_concepts(lines: Iterable[str], name: str = "concepts") -> Iterator[Rf2Concept]:
    for _, f in _rows(lines, CONCEPT_HEADER, name):
        yield Rf2Concept(id=f[0], effective_time=f[1], active=f[2] == "1", module_id=f[3])


def read_descriptions(lines: Iterable[str], name: str = "descriptions") -> Iterator[Rf2Description]:
    for _, f in _rows(lines, DESCRIPTION_HEADER, name):
        yield Rf2Description(
            id=f[0],
            effective_time=f[1],
            active=f[2] == "1",
            concept_id=f[4],
            language_code=f[5],
            type_id=f[6],
            term=f[7],
        )
