"""Name normalisation and phonetic keys for finding patients despite a typo.

The database does trigram similarity; these keys catch what trigrams miss on
short names (Smith / Smyth / Smiht all share Soundex S530).
"""

from __future__ import annotations

import unicodedata

_SOUNDEX_CODES = {
    **dict.fromkeys("BFPV", "1"),
    **dict.fromkeys("CGJKQSXZ", "2"),
    **dict.fromkeys("DT", "3"),
    "L": "4",
    **dict.fromkeys("MN", "5"),
    "R": "6",
}


def normalise(name: str) -> str:
    """Lower case, accents removed, only letters, spaces and hyphens kept."""
    decomposed = unicodedata.normalize("NFKD", name)
    ascii_only = "".join(c for c in decomposed if not unicodedata.combining(c))
    kept = "".join(c for c in ascii_only.lower() if c.isalpha() or c in " -'")
    return " ".join(kept.replace("'", "").split())


def soundex(name: str) -> str:
    """American Soundex of a name (the first letter and three digits); '' for no letters."""
    letters = [c for c in normalise(name).upper() if c.isalpha()]
    if not letters:
        return ""
    first = letters[0]
    digits: list[str] = []
    previous = _SOUNDEX_CODES.get(first, "")
    for char in letters[1:]:
        code = _SOUNDEX_CODES.get(char, "")
        if code and code != previous:
            digits.append(code)
        # H and W do not separate letters with the same code; vowels do.
        if char not in "HW":
            previous = code
    return (first + "".join(digits) + "000")[:4]


def edit_distance(a: str, b: str) -> int:
    """Damerau-Levenshtein (optimal string alignment): a transposition counts once."""
    a, b = normalise(a), normalise(b)
    rows = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        rows[i][0] = i
    for j in range(len(b) + 1):
        rows[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            rows[i][j] = min(rows[i - 1][j] + 1, rows[i][j - 1] + 1, rows[i - 1][j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                rows[i][j] = min(rows[i][j], rows[i - 2][j - 2] + 1)
    return rows[len(a)][len(b)]


def names_match(query: str, candidate: str) -> bool:
    """Would a receptionist accept `candidate` for what they typed? One typo per five letters."""
    q, c = normalise(query), normalise(candidate)
    if not q or not c:
        return False
    if c.startswith(q) or soundex(q) == soundex(c):
        return True
    return edit_distance(q, c) <= max(1, len(q) // 5)
