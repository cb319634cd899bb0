"""Benchmark support for the appointments service (wired into `make bench` by the bench harness).

- `load_bench_slots(url, ...)`: bulk-loads staff, schedules and free slots for many practices
  (default 300 practices x 6 clinicians x 28 days x 24 slots = 1,209,600 slots) with one
  INSERT ... SELECT generate_series per practice, in that practice's transaction (so it works
  as the owner role under FORCE row-level security, and as a superuser too). Idempotent: ids
  are derived from the practice and clinician, and existing slots are left alone.
- `double_bookings_query()`: SQL counting slots held by more than one live appointment.
  Run it as a role that sees every practice (the cluster superuser); under the app role
  row-level security would show one practice only.

No rota sessions are loaded, so the housekeeper never regenerates these slots. Every slot
is released when loaded (routine slots' 28-day embargo, but never later than the load):
with exactly 28 days loaded from tomorrow, the last day's slots would otherwise still be
embargoed until their time of day, so a run before midday would book some of them (422).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from gpsoc_kit.db import asyncpg_url
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

EVERY_BOOKER = ["gp", "nurse", "pharmacist", "receptionist", "practice-manager"]

_STATEMENTS = [
    "SELECT set_config('app.practice', :practice, true)",
    "INSERT INTO practices (practice_code) VALUES (:practice) ON CONFLICT DO NOTHING",
    """
    INSERT INTO staff (id, practice_code, role, display, last_updated, resource)
    SELECT md5(p.code || ':clinician:' || n)::uuid, p.code, 'gp', 'Dr Bench ' || n, now(),
           jsonb_build_object('resourceType', 'Practitioner',
                              'id', md5(p.code || ':clinician:' || n)::uuid::text,
                              'name', jsonb_build_array(jsonb_build_object(
                                  'family', 'Bench ' || n, 'prefix', jsonb_build_array('Dr'))))
    FROM (SELECT CAST(:practice AS text) AS code) AS p, generate_series(1, :clinicians) AS n
    ON CONFLICT DO NOTHING
    """,
    """
    INSERT INTO schedules (id, practice_code, practitioner_id, practitioner_display, location,
                           active, version_id, last_updated)
    SELECT md5(p.code || ':schedule:' || n)::uuid, p.code, md5(p.code || ':clinician:' || n)::uuid,
           'Dr Bench ' || n, 'Main surgery', true, 1, now()
    FROM (SELECT CAST(:practice AS text) AS code) AS p, generate_series(1, :clinicians) AS n
    ON CONFLICT DO NOTHING
    """,
    """
    INSERT INTO slots (id, practice_code, schedule_id, practitioner_id, start_at, end_at, status,
                       slot_type, delivery_channel, national_category, bookable_from,
                       bookable_by, version_id, last_updated)
    SELECT gen_random_uuid(), p.code, md5(p.code || ':schedule:' || c)::uuid,
           md5(p.code || ':clinician:' || c)::uuid, starts.start_at,
           starts.start_at + make_interval(mins => :slot_minutes), 'free', 'routine',
           'In-person', 'general-consultation-routine',
           LEAST(starts.start_at - interval '28 days', now()),
           CAST(:bookable_by AS text[]), 1, now()
    FROM (SELECT CAST(:practice AS text) AS code) AS p,
         generate_series(1, :clinicians) AS c,
         generate_series(0, :days - 1) AS d,
         generate_series(0, :slots_per_day - 1) AS k,
         LATERAL (SELECT ((CAST(:first_day AS date) + d) + time '08:30'
                          + make_interval(mins => k * :slot_minutes))
                         AT TIME ZONE 'Europe/London' AS start_at) AS starts
    ON CONFLICT ON CONSTRAINT uq_slots_schedule_start DO NOTHING
    """,
]


@dataclass(frozen=True)
class LoadedSlots:
    practices: tuple[str, ...]
    slots_inserted: int
    seconds: float


def bench_practices(count: int, prefix: str = "B") -> tuple[str, ...]:
    """ODS-code-shaped practice codes for the bench: B00001, B00002, ..."""
    return tuple(f"{prefix}{n:05d}" for n in range(1, count + 1))


async def load_bench_slots(database_url: str, *, practices: Sequence[str] | None = None,
                           clinicians: int = 6, days: int = 28, slots_per_day: int = 24,
                           slot_minutes: int = 10, first_day: dt.date | None = None,
                           concurrency: int = 2) -> LoadedSlots:
    """Load free slots from 08:30 each day (London time) from `first_day` (default tomorrow)."""
    codes = tuple(practices) if practices is not None else bench_practices(300)
    start_day = first_day or dt.date.today() + dt.timedelta(days=1)
    engine = create_async_engine(asyncpg_url(database_url), pool_size=concurrency,
                                 max_overflow=0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    queue: asyncio.Queue[str] = asyncio.Queue()
    for code in codes:
        queue.put_nowait(code)
    inserted = 0

    async def worker() -> None:
        nonlocal inserted
        while not queue.empty():
            code = queue.get_nowait()
            # Awaited first, then added: `inserted += await ...` reads `inserted` before the
            # await, and the other workers' additions in between would be lost.
            loaded = await _load_practice(engine, code, clinicians=clinicians, days=days,
                                          slots_per_day=slots_per_day,
                                          slot_minutes=slot_minutes, first_day=start_day)
            inserted += loaded

    try:
        await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    finally:
        await engine.dispose()
    return LoadedSlots(codes, inserted, loop.time() - started)


async def _load_practice(engine: AsyncEngine, practice: str, *, clinicians: int, days: int,
                         slots_per_day: int, slot_minutes: int, first_day: dt.date) -> int:
    params = {"practice": practice, "clinicians": clinicians, "days": days,
              "slots_per_day": slots_per_day, "slot_minutes": slot_minutes,
              "first_day": first_day, "bookable_by": EVERY_BOOKER}
    async with engine.begin() as conn:
        for statement in _STATEMENTS[:-1]:
            await conn.execute(text(statement), params)
        result = await conn.execute(text(_STATEMENTS[-1]), params)
        return result.rowcount


def double_bookings_query() -> str:
    """SQL: how many slots are held by more than one live (not cancelled) appointment. Must be 0."""
    return """
        SELECT count(*) AS double_booked_slots FROM (
            SELECT held.slot_id
            FROM appointment_slots AS held
            JOIN appointments AS a ON a.id = held.appointment_id
            WHERE a.status <> 'cancelled'
            GROUP BY held.slot_id
            HAVING count(*) > 1
        ) AS doubly_booked
    """
