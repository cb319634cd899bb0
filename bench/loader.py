"""Loading the bench's patients into the patient index's database.

Two ways, both storing exactly what a registration stores:
- "copy" (default, ~100k patients in well under a minute): each row is built with the
  service's own code (read_details for the derived columns, the handlers' _stamp for the
  stored resource with its meta) and written with COPY into patients and
  patient_versions. Bulk loading is not a registration, so no events are emitted.
  Before the bulk load, one patient is registered through register_patient and loaded
  again through COPY, and the two rows are compared column by column: the loader refuses
  to run if they differ, so it cannot drift from the service silently.
- "handlers": every patient goes through patient_index's register_patient in a unit of
  work, as the API would (events and all); honest but slower, and the relay then has
  two events per patient to publish before the bench starts.

COPY runs as the cluster superuser (COPY FROM does not work under row-level security);
the handlers path uses the app role, under RLS, like the service.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from .dataset import SyntheticPatient

RECORDED_BY = "bench-loader"
# Columns that legitimately differ between two loads of the same patient.
VOLATILE_COLUMNS = {"created_at", "last_updated", "recorded_at", "recorded_by"}


class LoaderError(RuntimeError):
    pass


async def superuser_connect(url: str) -> asyncpg.Connection:
    """asyncpg connection from devstack's superuser URL (unix socket in ?host=...&port=...)."""
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query))
    return await asyncpg.connect(
        host=query.get("host") or parts.hostname,
        port=int(query.get("port") or parts.port or 5432),
        user=parts.username or "postgres",
        database=parts.path.lstrip("/") or "postgres",
        timeout=10,
    )


def _stored_row(
    patient: SyntheticPatient, now: dt.datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(patients row, patient_versions row) exactly as register_patient writes them."""
    from patient_index.adapters.repository import _columns
    from patient_index.domain.patient import UK_CORE_PATIENT_PROFILE, read_details
    from patient_index.service_layer.handlers import _stamp

    details = read_details(patient.resource)
    stored = _stamp(
        patient.resource,
        resource_id=patient.id,
        version_id=1,
        at=now,
        profile=UK_CORE_PATIENT_PROFILE,
    )
    resource = json.dumps(stored)
    row = {
        "id": patient.id,
        "practice_code": patient.practice,
        "version_id": 1,
        "created_at": now,
        "last_updated": now,
        "resource": resource,
        **_columns(details),
    }
    version = {
        "patient_id": patient.id,
        "version_id": 1,
        "practice_code": patient.practice,
        "recorded_at": now,
        "recorded_by": RECORDED_BY,
        "resource": resource,
    }
    return row, version


def _copy_columns(table, row: dict[str, Any]) -> list[str]:  # noqa: ANN001
    """The table's columns we fill; any other column must be optional, else refuse."""
    names = []
    for column in table.columns:
        if column.name in row:
            names.append(column.name)
        elif not (column.nullable or column.server_default is not None):
            raise LoaderError(
                f"{table.name}.{column.name} is required and the bench loader does "
                "not know it: update bench/loader.py to match register_patient"
            )
    return names


@dataclass
class LoadStats:
    patients: int
    seconds: float
    method: str
    parity_checked: bool
    vacuum_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "patients": self.patients,
            "seconds": round(self.seconds, 2),
            "method": self.method,
            "parity_checked": self.parity_checked,
            "vacuum_seconds": round(self.vacuum_seconds, 2),
        }


async def _fetch_rows(conn: asyncpg.Connection, patient_id: str) -> dict[str, dict[str, Any]]:
    patient = await conn.fetchrow("SELECT * FROM patients WHERE id = $1", patient_id)
    version = await conn.fetchrow(
        "SELECT * FROM patient_versions WHERE patient_id = $1", patient_id
    )
    if patient is None or version is None:
        raise LoaderError(f"patient {patient_id} was not stored")
    return {"patients": dict(patient), "patient_versions": dict(version)}


def _comparable(rows: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for table, row in rows.items():
        row = {k: v for k, v in row.items() if k not in VOLATILE_COLUMNS}
        resource = json.loads(row["resource"])
        resource.get("meta", {}).pop("lastUpdated", None)
        row["resource"] = resource
        out[table] = row
    return out


async def _register_via_handlers(
    app_url: str,
    patients: Sequence[SyntheticPatient],
    *,
    batch: int = 200,
    parallel: int = 3,
    progress: Callable[[int], None] | None = None,
) -> None:
    from gpsoc_kit.auth import Principal
    from gpsoc_kit.db import create_engine
    from patient_index.config import Settings
    from patient_index.entrypoints.api.app import unit_of_work_factory
    from patient_index.service_layer.handlers import register_patient

    engine = create_engine(app_url, pool_size=parallel, max_overflow=0)
    factory = unit_of_work_factory(engine, Settings(database_url=app_url))
    queue: asyncio.Queue[list[SyntheticPatient]] = asyncio.Queue()
    by_practice: dict[str, list[SyntheticPatient]] = {}
    for patient in patients:
        by_practice.setdefault(patient.practice, []).append(patient)
    for group in by_practice.values():
        for start in range(0, len(group), batch):
            queue.put_nowait(group[start : start + batch])
    done = 0

    async def worker() -> None:
        nonlocal done
        while not queue.empty():
            chunk = queue.get_nowait()
            practice = chunk[0].practice
            principal = Principal(
                user_id=RECORDED_BY,
                practice=practice,
                roles=frozenset({"system"}),
                name="Bench loader",
            )
            async with factory(practice) as uow:
                for patient in chunk:
                    await register_patient(uow, principal, patient.resource, patient_id=patient.id)
                await uow.commit()
            done += len(chunk)
            if progress:
                progress(done)

    try:
        await asyncio.gather(*(worker() for _ in range(parallel)))
    finally:
        await engine.dispose()


async def _copy(
    conn: asyncpg.Connection,
    patients: Sequence[SyntheticPatient],
    *,
    chunk: int = 10_000,
    progress: Callable[[int], None] | None = None,
) -> None:
    from patient_index.adapters.tables import patient_versions
    from patient_index.adapters.tables import patients as patients_table

    now = dt.datetime.now(dt.UTC)
    columns = None
    for start in range(0, len(patients), chunk):
        rows, versions = zip(
            *(_stored_row(p, now) for p in patients[start : start + chunk]), strict=True
        )
        if columns is None:
            columns = (
                _copy_columns(patients_table, rows[0]),
                _copy_columns(patient_versions, versions[0]),
            )
        async with conn.transaction():
            await conn.copy_records_to_table(
                "patients",
                columns=columns[0],
                records=[tuple(r[c] for c in columns[0]) for r in rows],
            )
            await conn.copy_records_to_table(
                "patient_versions",
                columns=columns[1],
                records=[tuple(v[c] for c in columns[1]) for v in versions],
            )
        if progress:
            progress(min(start + chunk, len(patients)))


async def load(
    patients: Sequence[SyntheticPatient],
    *,
    app_url: str,
    superuser_url: str,
    method: str = "copy",
    say: Callable[[str], None] = print,
) -> LoadStats:
    started = time.monotonic()
    last = [started]

    def progress(done: int) -> None:
        if time.monotonic() - last[0] > 10 or done == len(patients):
            last[0] = time.monotonic()
            say(f"bench:   {done:,}/{len(patients):,} patients ({time.monotonic() - started:.0f}s)")

    conn = await superuser_connect(superuser_url)
    try:
        existing = await conn.fetchval("SELECT count(*) FROM patients")
        if existing:
            raise LoaderError(
                f"the patients table already has {existing} rows; the bench needs a fresh database"
            )
        parity = False
        if method == "copy":
            # Parity: the first patient through register_patient, then again through COPY.
            first = patients[0]
            await _register_via_handlers(app_url, [first])
            via_handlers = _comparable(await _fetch_rows(conn, first.id))
            await conn.execute("DELETE FROM patient_versions WHERE patient_id = $1", first.id)
            await conn.execute("DELETE FROM patients WHERE id = $1", first.id)
            await _copy(conn, [first])
            via_copy = _comparable(await _fetch_rows(conn, first.id))
            if via_copy != via_handlers:
                diffs = {
                    t: {
                        k: (via_handlers[t].get(k), via_copy[t].get(k))
                        for k in via_handlers[t]
                        if via_handlers[t].get(k) != via_copy[t].get(k)
                    }
                    for t in via_handlers
                }
                raise LoaderError(f"COPY rows differ from register_patient's: {diffs}")
            parity = True
            await _copy(conn, patients[1:], progress=progress)
        else:
            await _register_via_handlers(app_url, patients, progress=progress)
        loaded = await conn.fetchval("SELECT count(*) FROM patients")
        if loaded != len(patients):
            raise LoaderError(f"loaded {loaded} patients, expected {len(patients)}")
        seconds = time.monotonic() - started
        vacuum_started = time.monotonic()
        await conn.execute("VACUUM (ANALYZE) patients")
        await conn.execute("VACUUM (ANALYZE) patient_versions")
        return LoadStats(len(patients), seconds, method, parity, time.monotonic() - vacuum_started)
    finally:
        await conn.close()
