"""Bulk loading of synthetic clinical records for the patient-summary benchmark (`make bench`).

`await load_records(owner_url)` fills clinical-notes' database with 100,000 patients of
about 100 entries each (10 million rows) with INSERT ... SELECT over generate_series,
as the owner role, one practice per connection: the rows are built by PostgreSQL,
nothing crosses the wire. The main index is dropped during the load and rebuilt
once at the end, which is several times faster than maintaining it row by row.

Each patient's record has what the summary reads: 3 active and 2 resolved problems,
2 allergies, 12 finished consultations and the rest observations in 5 series
(weight, height, blood pressure, HbA1c, heart rate) on distinct dates. The rows have
the columns and resource shape the service writes (UK Core profiles in meta); the
bench does not read history, so no version rows are written, and no events.

Ids are deterministic: `bench_patient_id(n)` for n in 1..patients, and patient n
belongs to `practices[n % len(practices)]`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import asyncpg
from clinical_notes.domain.entries import PROFILES
from clinical_notes.domain.observations import (
    BLOOD_PRESSURE_PROFILE,
    BODY_HEIGHT_PROFILE,
    BODY_WEIGHT_PROFILE,
    HEART_RATE_PROFILE,
    LAB_PROFILE,
)
from gpsoc_kit.db import plain_url

CHUNK_PATIENTS = 10_000
_PATIENT_PREFIX = "00000000-0000-4000-a000-"
_ENTRY_PREFIX = "00000000-0000-4000-8000-"
MAIN_INDEX = "ix_clinical_entries_patient_type_effective"
CONDITIONS = 5  # entries 0-4: three active problems, two resolved
ALLERGIES = 2  # entries 5-6


def bench_patient_id(n: int) -> str:
    return _PATIENT_PREFIX + f"{n:012x}"


def bench_practice(n: int, practices: Sequence[str]) -> str:
    return practices[n % len(practices)]


# Shared SQL pieces: $1 practice, $2 first patient, $3 last patient, $4 practice count,
# $5 practice index, $6 entries per patient.
_PATIENTS = "generate_series($2::int, $3::int) AS n"
_MINE = "n % $4::int = $5::int"
_PATIENT_ID = f"('{_PATIENT_PREFIX}' || lpad(to_hex(n), 12, '0'))::uuid"
_ENTRY_ID = f"('{_ENTRY_PREFIX}' || lpad(to_hex(n::bigint * 1024 + j), 12, '0'))::uuid"
_WHEN = (
    "(timestamptz '2026-01-01T09:00:00Z' - j * interval '9 days' - (n % 480) * interval '1 minute')"
)
_META = (
    "jsonb_build_object('versionId', '1', 'lastUpdated', '2026-01-01T09:00:00Z', "
    "'profile', jsonb_build_array({profile}))"
)
_SUBJECT = "jsonb_build_object('reference', 'Patient/' || {patient})"
_COLUMNS = (
    "id, practice_code, resource_type, patient_id, code_system, code, code_tokens, category, "
    "status, clinical_status, effective_at, entered_in_error, version_id, last_updated, resource"
)
_SNOMED = "http://snomed.info/sct"
_UCUM = "http://unitsofmeasure.org"


def _coding(code: str, display: str) -> str:
    return (
        f"jsonb_build_object('coding', jsonb_build_array(jsonb_build_object('system', "
        f"'{_SNOMED}', 'code', {code}, 'display', {display})))"
    )


CONDITION_SQL = f"""
INSERT INTO clinical_entries ({_COLUMNS})
SELECT {_ENTRY_ID}, $1, 'Condition', {_PATIENT_ID}, '{_SNOMED}', c.code,
       ARRAY['{_SNOMED}|' || c.code, c.code], ARRAY['problem-list-item'], 'confirmed',
       c.status, {_WHEN}, false, 1, now(),
       jsonb_build_object(
         'resourceType', 'Condition', 'id', {_ENTRY_ID}, 'meta', {_META.format(profile=repr(PROFILES["Condition"]))},
         'clinicalStatus', jsonb_build_object('coding', jsonb_build_array(jsonb_build_object(
            'system', 'http://terminology.hl7.org/CodeSystem/condition-clinical', 'code', c.status))),
         'verificationStatus', jsonb_build_object('coding', jsonb_build_array(jsonb_build_object(
            'system', 'http://terminology.hl7.org/CodeSystem/condition-ver-status', 'code', 'confirmed'))),
         'category', jsonb_build_array(jsonb_build_object('coding', jsonb_build_array(jsonb_build_object(
            'system', 'http://terminology.hl7.org/CodeSystem/condition-category',
            'code', 'problem-list-item')))),
         'code', {_coding("c.code", "c.display")},
         'subject', {_SUBJECT.format(patient=_PATIENT_ID)},
         'onsetDateTime', to_char({_WHEN} AT TIME ZONE 'UTC', 'YYYY-MM-DD'))
FROM {_PATIENTS},
     (VALUES (0, '38341003', 'Hypertensive disorder, systemic arterial', 'active'),
             (1, '44054006', 'Diabetes mellitus type 2', 'active'),
             (2, '195967001', 'Asthma', 'active'),
             (3, '6142004', 'Influenza', 'resolved'),
             (4, '10509002', 'Acute bronchitis', 'resolved')) AS c(j, code, display, status)
WHERE {_MINE}
"""

ALLERGY_SQL = f"""
INSERT INTO clinical_entries ({_COLUMNS})
SELECT {_ENTRY_ID}, $1, 'AllergyIntolerance', {_PATIENT_ID}, '{_SNOMED}', a.code,
       ARRAY['{_SNOMED}|' || a.code, a.code], ARRAY[a.category], 'confirmed', 'active', {_WHEN},
       false, 1, now(),
       jsonb_build_object(
         'resourceType', 'AllergyIntolerance', 'id', {_ENTRY_ID},
         'meta', {_META.format(profile=repr(PROFILES["AllergyIntolerance"]))},
         'clinicalStatus', jsonb_build_object('coding', jsonb_build_array(jsonb_build_object(
            'system', 'http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical',
            'code', 'active'))),
         'verificationStatus', jsonb_build_object('coding', jsonb_build_array(jsonb_build_object(
            'system', 'http://terminology.hl7.org/CodeSystem/allergyintolerance-verification',
            'code', 'confirmed'))),
         'category', jsonb_build_array(a.category), 'criticality', 'high',
         'code', {_coding("a.code", "a.display")},
         'patient', {_SUBJECT.format(patient=_PATIENT_ID)},
         'recordedDate', to_char({_WHEN} AT TIME ZONE 'UTC', 'YYYY-MM-DD'))
FROM {_PATIENTS},
     (VALUES (5, '764146007', 'Penicillin', 'medication'),
             (6, '256349002', 'Peanut', 'food')) AS a(j, code, display, category)
WHERE {_MINE}
"""

ENCOUNTER_SQL = f"""
INSERT INTO clinical_entries ({_COLUMNS})
SELECT {_ENTRY_ID}, $1, 'Encounter', {_PATIENT_ID}, '{_SNOMED}', '11429006',
       ARRAY['{_SNOMED}|11429006', '11429006'], ARRAY['AMB'], 'finished', NULL, {_WHEN},
       false, 1, now(),
       jsonb_build_object(
         'resourceType', 'Encounter', 'id', {_ENTRY_ID},
         'meta', {_META.format(profile=repr(PROFILES["Encounter"]))}, 'status', 'finished',
         'class', jsonb_build_object('system', 'http://terminology.hl7.org/CodeSystem/v3-ActCode',
                                     'code', 'AMB'),
         'type', jsonb_build_array({_coding("'11429006'", "'Consultation'")}),
         'subject', {_SUBJECT.format(patient=_PATIENT_ID)},
         'period', jsonb_build_object('start', to_char({_WHEN} AT TIME ZONE 'UTC',
                                                       'YYYY-MM-DD"T"HH24:MI:SS"Z"')))
FROM {_PATIENTS}, generate_series({CONDITIONS + ALLERGIES}, {CONDITIONS + ALLERGIES} + $6::int / 8 - 1) AS j
WHERE {_MINE}
"""

# Observation series: (code, display, profile, UCUM unit, value expression in n and j).
_SERIES = [
    ("27113001", "Body weight", BODY_WEIGHT_PROFILE, "kg", "60 + (n + j) % 40"),
    ("50373000", "Body height measure", BODY_HEIGHT_PROFILE, "m", "1.5 + (n % 40) / 100.0"),
    ("75367002", "Blood pressure", BLOOD_PRESSURE_PROFILE, None, None),
    ("999791000000106", "HbA1c level", LAB_PROFILE, "mmol/mol", "38 + (n + j) % 40"),
    ("364075005", "Heart rate", HEART_RATE_PROFILE, "/min", "55 + (n + j) % 40"),
]


def _series_case(index: int) -> str:
    return " ".join(
        f"WHEN {i} THEN {expr}"
        for i, expr in enumerate(
            [f"'{s[index]}'" if s[index] is not None else "NULL" for s in _SERIES]
        )
    )


_BP_COMPONENTS = (
    "jsonb_build_array("
    + ", ".join(
        f"jsonb_build_object('code', {_coding(repr(code), repr(display))}, 'valueQuantity', "
        f"jsonb_build_object('value', {value}, 'unit', 'mmHg', 'system', '{_UCUM}', 'code', 'mm[Hg]'))"
        for code, display, value in (
            ("72313002", "Systolic arterial pressure", "110 + (n + j) % 50"),
            ("1091811000000102", "Diastolic arterial pressure", "65 + (n + j) % 25"),
        )
    )
    + ")"
)
_VALUE_CASE = " ".join(f"WHEN {i} THEN {s[4]}" for i, s in enumerate(_SERIES) if s[4] is not None)

OBSERVATION_SQL = f"""
INSERT INTO clinical_entries ({_COLUMNS})
SELECT {_ENTRY_ID}, $1, 'Observation', {_PATIENT_ID}, '{_SNOMED}', o.code,
       ARRAY['{_SNOMED}|' || o.code, o.code], ARRAY[o.category], 'final', NULL, {_WHEN},
       false, 1, now(),
       jsonb_strip_nulls(jsonb_build_object(
         'resourceType', 'Observation', 'id', {_ENTRY_ID},
         'meta', jsonb_build_object('versionId', '1', 'lastUpdated', '2026-01-01T09:00:00Z',
                                    'profile', jsonb_build_array(o.profile)),
         'status', 'final',
         'category', jsonb_build_array(jsonb_build_object('coding', jsonb_build_array(
            jsonb_build_object('system', 'http://terminology.hl7.org/CodeSystem/observation-category',
                               'code', o.category)))),
         'code', {_coding("o.code", "o.display")},
         'subject', {_SUBJECT.format(patient=_PATIENT_ID)},
         'effectiveDateTime', to_char({_WHEN} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
         'valueQuantity', CASE WHEN o.unit IS NULL THEN NULL ELSE jsonb_build_object(
            'value', CASE o.series {_VALUE_CASE} END, 'unit', o.unit, 'system', '{_UCUM}',
            'code', o.unit) END,
         'component', CASE WHEN o.unit IS NULL THEN {_BP_COMPONENTS} END))
FROM {_PATIENTS},
     generate_series({CONDITIONS + ALLERGIES} + $6::int / 8, $6::int - 1) AS j,
     LATERAL (SELECT j % {len(_SERIES)} AS series) AS s,
     LATERAL (SELECT s.series,
                     CASE s.series {_series_case(0)} END AS code,
                     CASE s.series {_series_case(1)} END AS display,
                     CASE s.series {_series_case(2)} END AS profile,
                     CASE s.series {_series_case(3)} END AS unit,
                     CASE s.series WHEN 3 THEN 'laboratory' ELSE 'vital-signs' END AS category) AS o
WHERE {_MINE}
"""

PATIENTS_SQL = f"""
INSERT INTO patients (id, practice_code, active, deceased, version_id, updated_at)
SELECT {_PATIENT_ID}, $1, true, false, 1, now() FROM {_PATIENTS} WHERE {_MINE}
ON CONFLICT (id) DO NOTHING
"""


async def _load_practice(
    owner_url: str,
    practice: str,
    index: int,
    practices: int,
    patients: int,
    entries_per_patient: int,
) -> int:
    """Load one practice's patients in chunks; returns the number of entries written."""
    written = 0
    conn = await asyncpg.connect(plain_url(owner_url))
    try:
        await conn.execute("SET synchronous_commit = off")
        for first in range(1, patients + 1, CHUNK_PATIENTS):
            last = min(first + CHUNK_PATIENTS - 1, patients)
            async with conn.transaction():
                # Row-level security is forced on the owner too: rows go in as their practice.
                await conn.execute("SELECT set_config('app.practice', $1, true)", practice)
                args: list[Any] = [practice, first, last, practices, index]
                await conn.execute(PATIENTS_SQL, *args)
                for statement, extra in (
                    (CONDITION_SQL, ()),
                    (ALLERGY_SQL, ()),
                    (ENCOUNTER_SQL, (entries_per_patient,)),
                    (OBSERVATION_SQL, (entries_per_patient,)),
                ):
                    status = await conn.execute(statement, *args, *extra)
                    written += int(status.rsplit(" ", 1)[1])
    finally:
        await conn.close()
    return written


async def load_records(
    owner_url: str,
    *,
    patients: int = 100_000,
    entries_per_patient: int = 100,
    practices: Sequence[str] = ("A81001", "A81002"),
) -> dict[str, Any]:
    """Load the benchmark's records into an empty, migrated clinical-notes database."""
    if not 16 <= entries_per_patient <= 1000:
        raise ValueError("entries_per_patient must be between 16 and 1000")
    started = time.monotonic()
    admin = await asyncpg.connect(plain_url(owner_url))
    try:
        await admin.execute(f"DROP INDEX IF EXISTS {MAIN_INDEX}")
        try:
            written = await asyncio.gather(
                *(
                    _load_practice(
                        owner_url, practice, index, len(practices), patients, entries_per_patient
                    )
                    for index, practice in enumerate(practices)
                )
            )
        finally:
            # Rebuilt even if the load failed: the service must never run without it.
            await admin.execute("SET maintenance_work_mem = '512MB'")
            await admin.execute(
                f"CREATE INDEX IF NOT EXISTS {MAIN_INDEX} ON clinical_entries "
                "(practice_code, patient_id, resource_type, effective_at DESC)"
            )
        await admin.execute("ANALYZE clinical_entries")
        await admin.execute("ANALYZE patients")
    finally:
        await admin.close()
    return {
        "patients": patients,
        "entries": sum(written),
        "seconds": round(time.monotonic() - started, 1),
        "sample_patient": bench_patient_id(1),
        "sample_practice": bench_practice(1, practices),
    }


__all__ = ["bench_patient_id", "bench_practice", "load_records"]
