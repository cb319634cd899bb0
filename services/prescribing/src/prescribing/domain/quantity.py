"""Quantities written in words, as the law requires on Schedule 2 and 3 prescriptions.

The Misuse of Drugs Regulations 2001 (reg. 15) require the total quantity "in
both words and figures"; the figures are the quantity itself, the words come in
the UK Core MedicationQuantityText extension and must say the same number.
"""

from __future__ import annotations

import re

_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19,
}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
         "eighty": 80, "ninety": 90}


def number_in_words(text: str) -> int | None:
    """The number a phrase spells out ("one hundred and twelve (112) tablets" -> 112).

    None when the phrase spells no number. Figures in the text are ignored: the
    point is that the words alone carry the quantity.
    """
    words = re.findall(r"[a-z]+", text.lower().replace("-", " "))
    total = current = 0
    seen = False
    for word in words:
        if word in _UNITS:
            current += _UNITS[word]
        elif word in _TENS:
            current += _TENS[word]
        elif word == "hundred":
            current = max(current, 1) * 100
        elif word == "thousand":
            total += max(current, 1) * 1000
            current = 0
        elif word == "and" and seen:
            continue
        else:
            if seen:
                break  # the number has ended ("twenty eight tablets")
            continue
        seen = True
    return total + current if seen else None
