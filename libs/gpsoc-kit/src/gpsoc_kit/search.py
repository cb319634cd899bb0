"""Parsing FHIR search parameters the same way in every service.

An unknown parameter is an error (400), never silently ignored: a clinician who
mistypes `birthdate` must not get every patient back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from .fhir import FhirError

# Parameters every search accepts; result-shaping, not filtering.
COMMON_PARAMETERS = frozenset({"_count", "_offset", "_format", "_total"})
DATE_PREFIXES = ("eq", "ne", "ge", "le", "gt", "lt", "sa", "eb", "ap")
SUPPORTED_DATE_PREFIXES = frozenset({"eq", "ge", "le", "gt", "lt"})
# FHIR `_total`: whether the Bundle must carry an exact total. Most searches count anyway;
# a search whose count costs more than its page (free slots) counts only when asked.
TOTAL_MODES = ("none", "estimate", "accurate")


@dataclass(frozen=True)
class SearchRequest:
    """A validated search: filters (name -> values, in order) and paging."""

    filters: tuple[tuple[str, str], ...]
    count: int
    offset: int
    raw: tuple[tuple[str, str], ...]
    total: str | None = None  # `_total` as asked (one of TOTAL_MODES), None when not asked

    @property
    def total_required(self) -> bool:
        """An exact total was asked for: `_total=accurate`, or `_count=0` (the total only)."""
        return self.total == "accurate" or self.count == 0

    def values(self, name: str) -> list[str]:
        return [v for k, v in self.filters if k == name]

    def first(self, name: str) -> str | None:
        for k, v in self.filters:
            if k == name:
                return v
        return None


def parse_search(
    params: Iterable[tuple[str, str]],
    *,
    allowed: Iterable[str],
    default_count: int = 20,
    max_count: int = 100,
) -> SearchRequest:
    allowed_set = frozenset(allowed)
    raw = tuple(params)
    filters: list[tuple[str, str]] = []
    count, offset = default_count, 0
    total: str | None = None
    for name, value in raw:
        if name == "_count":
            count = _non_negative_int(name, value)
            if count > max_count:
                raise FhirError(400, f"_count may be at most {max_count}", expression="_count")
        elif name == "_offset":
            offset = _non_negative_int(name, value)
        elif name == "_total":
            if value not in TOTAL_MODES:
                raise FhirError(400, f"_total must be one of {', '.join(TOTAL_MODES)}",
                                expression="_total")
            total = value
        elif name in COMMON_PARAMETERS:
            continue
        elif name in allowed_set:
            if value == "":
                raise FhirError(400, f"Search parameter {name} has no value", expression=name)
            filters.append((name, value))
        else:
            raise FhirError(
                400,
                f"Unknown or unsupported search parameter '{name}'. "
                f"Supported: {', '.join(sorted(allowed_set))}",
                code="not-supported",
                expression=name,
                details_code="INVALID_PARAMETER",
            )
    return SearchRequest(tuple(filters), count, offset, raw, total)


def _non_negative_int(name: str, value: str) -> int:
    if not value.isdigit():
        raise FhirError(400, f"{name} must be a non-negative integer", expression=name)
    return int(value)


@dataclass(frozen=True)
class DateBound:
    """One date comparison from a search such as birthdate=ge1970-01-01."""

    prefix: str
    value: dt.date

    def sql_operator(self) -> str:
        return {"eq": "=", "ge": ">=", "le": "<=", "gt": ">", "lt": "<"}[self.prefix]


def _split_prefix(name: str, value: str) -> tuple[str, str]:
    """`ge1970-01-01` -> ("ge", "1970-01-01"); a bare value means eq."""
    prefix = "eq"
    if value[:2] in DATE_PREFIXES:
        prefix, value = value[:2], value[2:]
    if prefix not in SUPPORTED_DATE_PREFIXES:
        raise FhirError(
            400,
            f"Date prefix '{prefix}' is not supported for {name}",
            code="not-supported",
            expression=name,
        )
    return prefix, value


def parse_date_param(name: str, value: str) -> DateBound:
    prefix, value = _split_prefix(name, value)
    try:
        return DateBound(prefix, dt.date.fromisoformat(value[:10]))
    except ValueError:
        raise FhirError(
            400, f"{name} must be a date (YYYY-MM-DD), got {value!r}", expression=name
        ) from None


@dataclass(frozen=True)
class DateTimeBound:
    """One instant comparison from a search such as start=ge2026-01-01T09:00:00Z."""

    prefix: str
    value: dt.datetime

    def sql_operator(self) -> str:
        return {"eq": "=", "ge": ">=", "le": "<=", "gt": ">", "lt": "<"}[self.prefix]


def parse_datetime_param(name: str, value: str) -> DateTimeBound:
    prefix, value = _split_prefix(name, value)
    try:
        if len(value) == 10:
            moment = dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
        else:
            moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.UTC)
    except ValueError:
        raise FhirError(
            400, f"{name} must be a date or dateTime, got {value!r}", expression=name
        ) from None
    return DateTimeBound(prefix, moment)


def parse_token(value: str) -> tuple[str | None, str]:
    """`system|code` -> (system, code); a bare code has no system."""
    if "|" in value:
        system, code = value.split("|", 1)
        return (system or None), code
    return None, value


def parse_reference(value: str, resource_type: str) -> str:
    """`Practitioner/abc` or `abc` -> `abc`; a reference to another type is an error."""
    if "/" in value:
        kind, _, ident = value.rpartition("/")
        if kind.rsplit("/", 1)[-1] != resource_type:
            raise FhirError(400, f"Expected a reference to {resource_type}, got {value!r}")
        return ident
    return value
