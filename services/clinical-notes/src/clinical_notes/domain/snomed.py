"""SNOMED CT identifiers and concepts: what a well-formed concept id is, and how to find one by text.

A SNOMED CT id is 6 to 18 digits: an item identifier, a partition identifier (two
digits: `00` or `10` for concepts) and a Verhoeff check digit. The check digit
catches a mistyped code before any look-up does.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

SNOMED_SYSTEM = "http://snomed.info/sct"
CONCEPT_PARTITIONS = frozenset({"00", "10"})  # international core, extension
_SEMANTIC_TAG = re.compile(r"\s\(([^()]+)\)$")

# Verhoeff's dihedral-group multiplication and position permutation tables.
_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 2, 3, 4, 0, 6, 7, 8, 9, 5),
    (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7),
    (4, 0, 1, 2, 3, 9, 5, 6, 7, 8),
    (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2),
    (7, 6, 5, 9, 8, 2, 1, 0, 4, 3),
    (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
    (1, 5, 7, 6, 2, 8, 3, 0, 9, 4),
    (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7),
    (9, 4, 5, 3, 1, 2, 6, 8, 7, 0),
    (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5),
    (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)


def verhoeff_valid(digits: str) -> bool:
    """True if the last digit is the Verhoeff check digit of the others."""
    check = 0
    for position, char in enumerate(reversed(digits)):
        check = _D[check][_P[position % 8][int(char)]]
    return check == 0


def is_concept_id(value: str) -> bool:
    """A well-formed SNOMED CT concept id (not a description or relationship id)."""
    return (
        6 <= len(value) <= 18
        and value.isascii()
        and value.isdigit()
        and value[0] != "0"
        and value[-3:-1] in CONCEPT_PARTITIONS
        and verhoeff_valid(value)
    )


@dataclass(frozen=True)
class Concept:
    """One SNOMED CT concept as a clinician sees it: id, preferred term, semantic tag."""

    id: str
    term: str
    semantic_tag: str
    synonyms: tuple[str, ...] = ()

    @property
    def fully_specified_name(self) -> str:
        return f"{self.term} ({self.semantic_tag})"

    def coding(self) -> dict[str, str]:
        return {"system": SNOMED_SYSTEM, "code": self.id, "display": self.term}


def split_semantic_tag(fsn: str) -> tuple[str, str]:
    """'Asthma (disorder)' -> ('Asthma', 'disorder'); no tag -> (fsn, '')."""
    match = _SEMANTIC_TAG.search(fsn)
    if not match:
        return fsn, ""
    return fsn[: match.start()], match.group(1)


def text_matches(query: str, concept: Concept) -> int | None:
    """How well `query` finds `concept` (lower is better), or None if it does not.

    Every word typed must start a word of the term or of a synonym, so "diab typ 2"
    finds "Diabetes mellitus type 2" as a clinician would expect.
    """
    words = query.lower().split()
    if not words:
        return None
    for rank, text in enumerate((concept.term, *concept.synonyms)):
        term_words = re.split(r"[\s,()/-]+", text.lower())
        if all(any(t.startswith(w) for t in term_words) for w in words):
            return rank * 1000 + len(text)
    return None


def search(concepts: Iterable[Concept], query: str, *, limit: int) -> list[Concept]:
    ranked = [(score, c.id, c) for c in concepts if (score := text_matches(query, c)) is not None]
    ranked.sort(key=lambda item: (item[0], item[1]))
    return [c for _, _, c in ranked[:limit]]
