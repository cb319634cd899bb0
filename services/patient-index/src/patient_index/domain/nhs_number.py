"""NHS numbers: ten digits whose last is a Modulus 11 check digit."""

from __future__ import annotations

from dataclasses import dataclass

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"
_WEIGHTS = (10, 9, 8, 7, 6, 5, 4, 3, 2)


def check_digit(first_nine: str) -> int | None:
    """The Modulus 11 check digit for nine digits; None when the result is 10 (never issued)."""
    total = sum(int(d) * w for d, w in zip(first_nine, _WEIGHTS, strict=True))
    digit = 11 - (total % 11)
    if digit == 11:
        return 0
    if digit == 10:
        return None
    return digit


def is_valid_nhs_number(value: str) -> bool:
    if len(value) != 10 or not value.isascii() or not value.isdigit():
        return False
    return check_digit(value[:9]) == int(value[9])


@dataclass(frozen=True)
class NhsNumber:
    value: str

    def __post_init__(self) -> None:
        if not is_valid_nhs_number(self.value):
            raise ValueError("not a valid NHS number")

    @classmethod
    def parse(cls, raw: str) -> NhsNumber:
        """Accept the spaced display form (999 123 4567) as well as ten digits."""
        return cls(raw.replace(" ", ""))

    def formatted(self) -> str:
        return f"{self.value[:3]} {self.value[3:6]} {self.value[6:]}"

    def __str__(self) -> str:
        return self.value
