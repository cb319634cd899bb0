"""The bench's suites: what each loads, which requests it sends, and what it must reach.

- patients (issue 2): the patient index (dataset.py, loader.py, targets.py);
- appointments (issue 3): free-slot search and booking over ~1.2 million slots, and a
  contention scenario counting double bookings in the database afterwards;
- prescribing (issue 5): authorisation with every safety check, and issues;
- clinical (issue 4): the patient summary over 100,000 patients of ~100 entries each.

Each suite loads its data with the owning service's bench_support.py (loaded by file path:
it is not in a package) or the service's own handlers, and writes vegeta target files. The
run (run.py) drives every suite the same way: sanity request, then saturation and fixed
rate, via the service directly and through the gateway.
"""

from __future__ import annotations

import abc
import asyncio
import datetime as dt
import importlib.util
import math
import random
import sys
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx

from .dataset import PRACTICES, NhsNumbers, generate
from .loader import superuser_connect
from .settings import BenchSettings
from .targets import EXPECTED_STATUS, FHIR_JSON, System, TargetFactory, new_patients, request_for
from .vegeta import Target, write_targets

# Distinct targets written per second of a saturation attack, for operations that use
# something up (a free slot, a patient not yet on paracetamol, an issue of a plan): the
# most any run here could reach. Beyond it vegeta repeats targets (the scenario says so).
SATURATION_BUDGET = {"register": 3000, "book": 1500, "authorise": 500, "issue": 1000}
ISSUES_PER_PLAN = 50  # plan_for_issues_body allows 52 issues; keep a margin


def load_by_path(repo_root: Path, relative: str, name: str) -> ModuleType:
    """A service's bench_support.py (not in a package: loaded by file path)."""
    path = repo_root / relative
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module


@dataclass
class Context:
    settings: BenchSettings
    repo_root: Path
    handle: Any  # devstack PlatformHandle
    keys: Any  # devstack TestKeys
    work: Path
    say: Callable[[str], None]
    has_gateway: bool


def per_second(op: str, rate: int | None) -> int:
    """Distinct targets to write per second of attack."""
    if rate is not None:
        return int(rate * 1.5) + 50
    return SATURATION_BUDGET.get(op, 3000)


def attack_need(op: str, rate: int | None, settings: BenchSettings) -> int:
    """Targets of one scenario's warm-up and measured attack together."""
    seconds = settings.warmup + settings.duration
    return int(per_second(op, rate) * seconds) + 200


class Suite(abc.ABC):
    name = ""
    title = ""
    service = ""  # devstack service name
    operations: tuple[str, ...] = ()
    # per operation: the modes it runs in by default (intersected with BENCH_MODES)
    op_modes: dict[str, tuple[str, ...]] = {}
    system_order: tuple[str, ...] = ("direct", "gateway")

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.rng = random.Random(f"{ctx.settings.seed}:{self.name}")
        self.section: dict[str, Any] = {"scenarios": []}
        self.systems: dict[str, System] = {}
        self.missing: dict[str, str] = {}
        self._counter = 0

    # ----- set-up ----------------------------------------------------------------
    @property
    @abc.abstractmethod
    def rate(self) -> int:
        """The suite's fixed rate (req/s) for its p95 scenarios."""

    @abc.abstractmethod
    def prepare(self) -> dict[str, Any]:
        """Load the suite's data; returns what to record under the suite's "load"."""

    @abc.abstractmethod
    def tokens(self) -> dict[str, dict[str, str]]:
        """Authorization headers by name, for the suite's requests."""

    def make_systems(self) -> None:
        s, handle = self.settings, self.ctx.handle
        tokens = self.tokens()
        if "gateway" in s.systems:
            if self.ctx.has_gateway:
                self.systems["gateway"] = System("gateway", handle.fhir_base, tokens)
            else:
                self.missing["gateway"] = (
                    "the gateway is not there (python -m gpsoc_gateway missing)"
                )
        if "direct" in s.systems:
            self.systems["direct"] = System("direct", handle.service_urls[self.service], tokens)
        self.section["stack"] = {n: sys_.base_url for n, sys_ in self.systems.items()}

    def system_names(self) -> list[str]:
        return [n for n in self.system_order if n in self.settings.systems]

    def ops_for(self, system: str) -> list[str]:
        return list(self.operations)

    def modes_for(self, op: str) -> list[str]:
        return [
            m for m in self.op_modes.get(op, ("saturation", "rate")) if m in self.settings.modes
        ]

    def expected(self, op: str) -> int:
        return EXPECTED_STATUS[op]

    def consumes(self, op: str) -> bool:
        return op in SATURATION_BUDGET

    # ----- requests --------------------------------------------------------------
    @abc.abstractmethod
    def requests(self, op: str, system: System, count: int) -> Iterable[Target]:
        """`count` distinct requests for one operation against one system."""

    def write(self, op: str, system: System, *, max_requests: int) -> tuple[Path, int]:
        directory = self.ctx.work / "targets"
        directory.mkdir(parents=True, exist_ok=True)
        self._counter += 1
        path = directory / f"{self.name}-{self._counter:02d}-{system.name}-{op}.jsonl"
        return path, write_targets(path, self.requests(op, system, max_requests))

    def sanity(self, system: System, op: str) -> str | None:
        """One request by hand; None if it answered as it should."""
        target = next(iter(self.requests(op, system, 1)))
        try:
            response = httpx.request(
                target.method,
                target.url,
                headers=dict(target.headers),
                content=target.body,
                timeout=30,
            )
        except httpx.HTTPError as error:
            return f"{target.method} {target.url}: {error!r}"
        if response.status_code != self.expected(op):
            return (
                f"{target.method} {target.url.split('?')[0]} answered {response.status_code}, "
                f"expected {self.expected(op)}: {response.text[:300]}"
            )
        return self.check(op, response)

    def check(self, op: str, response: httpx.Response) -> str | None:
        return None

    def after(self) -> None:  # noqa: B027 - an optional hook, a no-op unless overridden
        """Anything the suite measures outside vegeta (the contention scenario)."""

    def targets(self, find: Callable[..., dict[str, Any] | None]) -> list[dict[str, Any]]:
        return []


# ----- verdicts ---------------------------------------------------------------------------
MIN_SUCCESS = 0.999


def verdict(
    suite: str, name: str, measured: float | None, goal: str, ok: bool | None, note: str = ""
) -> dict[str, Any]:
    if ok is None:
        status = "NOT RUN"
    elif goal == "reported":  # a figure the issue asks for without a target
        status = "INFO" if ok else "ERRORS"
    else:
        status = "PASS" if ok else "MISS"
    return {
        "suite": suite,
        "target": name,
        "measured": measured,
        "goal": goal,
        "status": status,
        "note": note,
    }


def _clean(s: dict[str, Any]) -> tuple[bool, str]:
    ratio = s["result"]["success_ratio"]
    return ratio >= MIN_SUCCESS, ("" if ratio >= MIN_SUCCESS else f"success ratio {ratio:.4f}")


def throughput_target(
    suite: str, find, system: str, op: str, title: str, goal: float
) -> dict[str, Any]:
    name = f"{title} via {system}, saturation throughput"
    sat = find(system, op, "saturation")
    if not sat:
        return verdict(suite, name, None, f">= {goal:g} req/s", None)
    ok, note = _clean(sat)
    tput = sat["result"]["throughput"]
    return verdict(suite, name, round(tput, 1), f">= {goal:g} req/s", ok and tput >= goal, note)


def p95_target(
    suite: str, find, system: str, op: str, title: str, rate: int, goal: float
) -> dict[str, Any]:
    name = f"{title} via {system}, p95 at {rate} req/s"
    fixed = find(system, op, "rate")
    if fixed:
        ok, note = _clean(fixed)
        p95 = fixed["result"]["latency_ms"]["p95"]
        return verdict(suite, name, round(p95, 2), f"<= {goal:g} ms", ok and p95 <= goal, note)
    sat = find(system, op, "saturation")
    if sat and sat["result"]["throughput"] < rate:
        return verdict(
            suite,
            name,
            None,
            f"<= {goal:g} ms",
            False,
            f"not run: saturation throughput {sat['result']['throughput']:.1f} < {rate} req/s",
        )
    return verdict(suite, name, None, f"<= {goal:g} ms", None)


# ----- patients (issue 2) ----------------------------------------------------------------
class PatientsSuite(Suite):
    name = "patients"
    title = "patient index (issue 2)"
    service = "patient-index"
    operations = ("read", "nhs", "phonetic", "register")
    system_order = ("floor", "direct", "gateway")

    def __init__(self, ctx: Context, floor_url: str | None) -> None:
        super().__init__(ctx)
        self.floor_url = floor_url
        self.operations = ctx.settings.operations
        self.factory: TargetFactory | None = None
        self.patients: list = []

    @property
    def rate(self) -> int:
        return self.settings.rate

    def prepare(self) -> dict[str, Any]:
        from .loader import load

        s, say = self.settings, self.ctx.say
        database = self.ctx.handle.databases["patient-index"]
        say(f"bench: generating {s.patients:,} patients")
        numbers = NhsNumbers()
        self.patients = list(generate(s.patients, numbers, seed=s.seed))
        say(f"bench: loading them ({s.loader})")
        stats = asyncio.run(
            load(
                self.patients,
                app_url=database.app_url,
                superuser_url=database.superuser_url,
                method=s.loader,
                say=say,
            )
        )
        say(
            f"bench: loaded {stats.patients:,} patients in {stats.seconds:.1f}s "
            f"(+{stats.vacuum_seconds:.1f}s VACUUM ANALYZE)"
        )
        self.factory = TargetFactory(
            self.ctx.work / "targets", self.patients, numbers, seed=s.seed + 1
        )
        return stats.as_dict()

    def tokens(self) -> dict[str, dict[str, str]]:
        keys = self.ctx.keys
        return {
            role: {p: keys.mint_token(role, p) for p in PRACTICES}
            for role in ("gp", "receptionist")
        }

    def make_systems(self) -> None:
        super().make_systems()
        if "floor" in self.settings.systems and self.floor_url:
            self.systems["floor"] = System("floor", self.floor_url, {})
            self.section["stack"]["floor"] = self.floor_url

    def ops_for(self, system: str) -> list[str]:
        from .settings import FLOOR_OPERATIONS

        return [op for op in self.operations if system != "floor" or op in FLOOR_OPERATIONS]

    def requests(self, op: str, system: System, count: int) -> Iterable[Target]:
        """`count` requests of `op`: loaded patients sampled, or fresh ones to register."""
        assert self.factory is not None
        factory = self.factory
        if op == "register":
            patients: Iterable = new_patients(count, factory.numbers, factory.rng, PRACTICES, 10**9)
        else:
            patients = factory.rng.sample(list(factory.loaded), min(count, len(factory.loaded)))
        for patient in patients:
            yield request_for(op, system, patient, factory.rng)

    def write(self, op: str, system: System, *, max_requests: int) -> tuple[Path, int]:
        # The factory writes the attacks' targets (fresh NHS numbers it tracks across runs).
        assert self.factory is not None
        return self.factory.write(op, system, max_requests=max_requests)

    def sanity(self, system: System, op: str) -> str | None:
        assert self.factory is not None
        factory = self.factory
        if op == "register":
            patient = next(new_patients(1, factory.numbers, factory.rng, PRACTICES, 10**9))
        else:
            patient = factory.loaded[len(factory.loaded) // 2]
        target = request_for(op, system, patient, factory.rng)
        try:
            response = httpx.request(
                target.method,
                target.url,
                headers=dict(target.headers),
                content=target.body,
                timeout=10,
            )
        except httpx.HTTPError as error:
            return f"{target.method} {target.url}: {error!r}"
        if response.status_code != EXPECTED_STATUS[op]:
            return (
                f"{target.method} {target.url.split('?')[0]} answered "
                f"{response.status_code}, expected {EXPECTED_STATUS[op]}: "
                f"{response.text[:300]}"
            )
        if op in ("nhs", "read"):
            body = response.json()
            found = (
                body.get("id")
                if op == "read"
                else ((body.get("entry") or [{}])[0].get("resource", {}).get("id"))
            )
            if found != patient.id:
                return f"{op}: expected patient {patient.id}, got {found}"
        return None

    def targets(self, find) -> list[dict[str, Any]]:
        out = [
            throughput_target(self.name, find, "gateway", "nhs", "NHS-number search", 800),
            p95_target(self.name, find, "gateway", "nhs", "NHS-number search", self.rate, 15),
        ]
        sat, floor = find("gateway", "nhs", "saturation"), find("floor", "nhs", "saturation")
        name = "NHS-number search via gateway / floor throughput"
        if sat and floor:
            ok, note = _clean(sat)
            ratio = (
                sat["result"]["throughput"] / floor["result"]["throughput"]
                if floor["result"]["throughput"]
                else 0
            )
            out.append(
                verdict(self.name, name, round(ratio, 3), ">= 0.5", ok and ratio >= 0.5, note)
            )
        else:
            out.append(verdict(self.name, name, None, ">= 0.5", None))
        return out


# ----- appointments (issue 3) ------------------------------------------------------------
@dataclass(frozen=True)
class FreeSlot:
    id: str
    practice: str
    start: str  # FHIR instant, UTC
    end: str


def _instant(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


class AppointmentsSuite(Suite):
    name = "appointments"
    title = "appointments (issue 3)"
    service = "appointments"
    operations = ("slot-search", "book")
    DAYS = 28
    CLINICIANS = 6
    SLOTS_PER_DAY = 24
    ROLE = "receptionist"  # who books at a GP practice's front desk

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.support = load_by_path(
            ctx.repo_root, "services/appointments/bench_support.py", "appointments_bench_support"
        )
        self.practices: tuple[str, ...] = ()
        self.patients: dict[str, list[str]] = {}  # practice -> patient ids in the projection
        self.pool: list[FreeSlot] = []  # free slots not yet handed out, in random order
        self.first_day = dt.date.today() + dt.timedelta(days=1)
        self.contention_pool: list[FreeSlot] = []

    @property
    def rate(self) -> int:
        return self.settings.appointments_rate

    @property
    def database(self):  # noqa: ANN201
        return self.ctx.handle.databases[self.service]

    def booking_need(self) -> int:
        s = self.settings
        total = 0
        for _ in self.system_names():
            for mode in self.modes_for("book"):
                total += attack_need("book", None if mode == "saturation" else self.rate, s) + 1
        return total

    def prepare(self) -> dict[str, Any]:
        s, say = self.settings, self.ctx.say
        self.practices = self.support.bench_practices(s.appointment_practices)
        expected = len(self.practices) * self.CLINICIANS * self.DAYS * self.SLOTS_PER_DAY
        say(
            f"bench: appointments: loading {len(self.practices)} practices x {self.CLINICIANS} "
            f"clinicians x {self.DAYS} days x {self.SLOTS_PER_DAY} slots ({expected:,} slots)"
        )
        loaded = asyncio.run(
            self.support.load_bench_slots(
                self.database.owner_url,
                practices=self.practices,
                clinicians=self.CLINICIANS,
                days=self.DAYS,
                slots_per_day=self.SLOTS_PER_DAY,
                first_day=self.first_day,
                concurrency=2,
            )
        )
        # Counted in the database: LoadedSlots.slots_inserted under-counts with concurrency > 1
        # (`inserted += await ...` in load_bench_slots loses updates between its workers).
        slots = asyncio.run(self._count_slots())
        say(f"bench: appointments: {slots:,} slots in {loaded.seconds:.1f}s")
        started = time.monotonic()
        projected = asyncio.run(self._project_patients())
        projection_seconds = time.monotonic() - started
        say(
            f"bench: appointments: {projected:,} patients projected through "
            f"handlers.record_patient in {projection_seconds:.1f}s"
        )
        vacuum = time.monotonic()
        asyncio.run(self._vacuum())
        need = self.booking_need() + s.contention_slots
        self.pool = asyncio.run(self._free_slots(need))
        self.contention_pool = [
            self.pool.pop() for _ in range(min(s.contention_slots, len(self.pool)))
        ]
        if len(self.pool) < need - s.contention_slots:
            say(
                f"bench: !! appointments: only {len(self.pool):,} free slots for bookings, "
                f"{need - s.contention_slots:,} wanted: booking attacks will repeat slots "
                "(409s); load more practices (BENCH_APPOINTMENT_PRACTICES)"
            )
        return {
            "practices": len(self.practices),
            "clinicians": self.CLINICIANS,
            "days": self.DAYS,
            "slots_per_day": self.SLOTS_PER_DAY,
            "slots": slots,
            "slots_reported_by_loader": loaded.slots_inserted,
            "slots_seconds": round(loaded.seconds, 1),
            "patients_projected": projected,
            "projection_seconds": round(projection_seconds, 1),
            "projection_method": "appointments.service_layer.handlers.record_patient "
            "(app role, per-practice unit of work)",
            "vacuum_seconds": round(time.monotonic() - vacuum, 1),
            "booking_slots_reserved": len(self.pool),
        }

    async def _project_patients(self) -> int:
        """Patients into the appointments service's projection, as patient.events.v1 would
        put them there: through its own handler, as the app role, under row-level security."""
        from appointments.config import Settings
        from appointments.entrypoints.api.app import unit_of_work_factory
        from appointments.service_layer import handlers
        from gpsoc_kit.db import create_engine

        app_url = self.database.app_url
        engine = create_engine(app_url, pool_size=2, max_overflow=0)
        factory = unit_of_work_factory(engine, Settings(database_url=app_url))
        per = self.settings.appointment_patients_per_practice
        count = 0
        queue = list(self.practices)

        async def worker() -> None:
            nonlocal count
            while queue:
                practice = queue.pop()
                ids = [
                    str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench:appt:{practice}:{n}"))
                    for n in range(per)
                ]
                async with factory(practice) as uow:
                    for n, patient_id in enumerate(ids):
                        await handlers.record_patient(
                            uow,
                            patient_id=patient_id,
                            nhs_number=None,
                            display=f"Bench Patient {practice}-{n}",
                            active=True,
                            deceased=False,
                            version_id=1,
                            cancellation_reason=None,
                        )
                    await uow.commit()
                self.patients[practice] = ids
                count += len(ids)

        try:
            await asyncio.gather(worker(), worker())
        finally:
            await engine.dispose()
        return count

    async def _count_slots(self) -> int:
        conn = await superuser_connect(self.database.superuser_url)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM slots"))
        finally:
            await conn.close()

    async def _vacuum(self) -> None:
        conn = await superuser_connect(self.database.superuser_url)
        try:
            for table in ("slots", "schedules", "staff", "patients"):
                await conn.execute(f"VACUUM (ANALYZE) {table}")
        finally:
            await conn.close()

    async def _free_slots(self, count: int) -> list[FreeSlot]:
        conn = await superuser_connect(self.database.superuser_url)
        try:
            rows = await conn.fetch(
                "SELECT id::text, practice_code, start_at, end_at FROM slots "
                "WHERE status = 'free' AND start_at > now() + interval '2 hours' "
                "AND bookable_from <= now() "
                "AND practice_code = ANY($1::text[]) ORDER BY random() LIMIT $2",
                list(self.practices),
                count,
            )
        finally:
            await conn.close()
        return [FreeSlot(r[0], r[1], _instant(r[2]), _instant(r[3])) for r in rows]

    def tokens(self) -> dict[str, dict[str, str]]:
        keys = self.ctx.keys
        tokens: dict[str, str] = {}
        for practice in self.practices:
            claims = keys.claims_for(self.ROLE, "A81001")
            claims.update(practice=practice, sub=str(uuid.uuid4()))
            tokens[practice] = keys.mint(claims)
        return {self.ROLE: tokens}

    def booking(self, system: System, slot: FreeSlot, patient_id: str) -> Target:
        body = {
            "resourceType": "Appointment",
            "status": "booked",
            "slot": [{"reference": f"Slot/{slot.id}"}],
            "start": slot.start,
            "end": slot.end,
            "participant": [
                {"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"}
            ],
            "description": "Bench booking",
        }
        headers = system.headers(self.ROLE, slot.practice) | {"Content-Type": FHIR_JSON}
        return Target("POST", f"{system.base_url}/Appointment", headers, _json(body))

    def requests(self, op: str, system: System, count: int) -> Iterable[Target]:
        if op == "slot-search":
            for _ in range(min(count, 50_000)):
                practice = self.rng.choice(self.practices)
                # GP Connect: at most 14 days; "le <date>" reaches the end of that day, so
                # ge D & le D+13 is a 14-day window (le D+14 would be 15 days: 422).
                days = self.rng.randint(1, 14) - 1
                first = self.first_day + dt.timedelta(days=self.rng.randrange(0, self.DAYS - days))
                query = urllib.parse.urlencode(
                    [
                        ("start", f"ge{first.isoformat()}"),
                        ("start", f"le{(first + dt.timedelta(days=days)).isoformat()}"),
                        ("status", "free"),
                    ]
                )
                yield Target(
                    "GET", f"{system.base_url}/Slot?{query}", system.headers(self.ROLE, practice)
                )
        elif op == "book":
            take = min(count, len(self.pool))
            chosen, self.pool = self.pool[:take], self.pool[take:]
            for slot in chosen:
                patients = self.patients[slot.practice]
                yield self.booking(system, slot, self.rng.choice(patients))
        else:
            raise ValueError(op)

    def check(self, op: str, response: httpx.Response) -> str | None:
        if op == "slot-search":
            body = response.json()
            if not body.get("entry"):
                return f"slot search found no free slots: {response.text[:200]}"
        return None

    def after(self) -> None:  # noqa: B027 - an optional hook, a no-op unless overridden
        """Many clients racing for a few popular slots; then the database is asked how many
        slots are held by more than one live appointment (must be 0)."""
        s, say = self.settings, self.ctx.say
        system = self.systems.get("gateway") or self.systems.get("direct")
        if system is None or not self.contention_pool:
            self.section["contention"] = {"error": "no system to drive or no free slots"}
            return
        say(
            f"bench: appointments: contention, {s.contention_clients} clients x "
            f"{len(self.contention_pool)} popular slots via {system.name}"
        )
        started = time.monotonic()
        statuses, codes = asyncio.run(self._contend(system))
        seconds = time.monotonic() - started
        double, held = asyncio.run(self._double_bookings())
        result = {
            "via": system.name,
            "clients": s.contention_clients,
            "slots": len(self.contention_pool),
            "requests": sum(statuses.values()),
            "status_codes": {str(k): v for k, v in sorted(statuses.items())},
            "created_201": statuses.get(201, 0),
            "conflict_409": statuses.get(409, 0),
            "conflict_codes": sorted(codes),
            "popular_slots_booked": held,
            "double_bookings": double,
            "seconds": round(seconds, 2),
        }
        self.section["contention"] = result
        say(
            f"bench:   {result['created_201']} x 201, {result['conflict_409']} x 409 "
            f"({', '.join(result['conflict_codes']) or '-'}), all {result['status_codes']}; "
            f"double bookings in the database: {double}"
        )

    async def _contend(self, system: System) -> tuple[dict[int, int], set[str]]:
        statuses: dict[int, int] = {}
        codes: set[str] = set()
        gate = asyncio.Event()
        slots = self.contention_pool

        async def client(c: int, http: httpx.AsyncClient) -> None:
            order = list(slots)
            random.Random(c).shuffle(order)
            await gate.wait()
            for slot in order:
                patients = self.patients[slot.practice]
                target = self.booking(system, slot, patients[c % len(patients)])
                try:
                    response = await http.post(
                        target.url, headers=dict(target.headers), content=target.body
                    )
                    status = response.status_code
                    if status == 409:
                        try:
                            issue = response.json()["issue"][0]
                            codes.add(issue["details"]["coding"][0]["code"])
                        except (ValueError, KeyError, IndexError, TypeError):
                            codes.add("?")
                except httpx.HTTPError:
                    status = 0
                statuses[status] = statuses.get(status, 0) + 1

        limits = httpx.Limits(max_connections=self.settings.contention_clients + 4)
        async with httpx.AsyncClient(timeout=60, limits=limits) as http:
            tasks = [
                asyncio.create_task(client(c, http))
                for c in range(self.settings.contention_clients)
            ]
            await asyncio.sleep(0.2)
            gate.set()
            await asyncio.gather(*tasks)
        return statuses, codes

    async def _double_bookings(self) -> tuple[int, int]:
        conn = await superuser_connect(self.database.superuser_url)
        try:
            double = int(await conn.fetchval(self.support.double_bookings_query()))
            held = int(
                await conn.fetchval(
                    "SELECT count(DISTINCT held.slot_id) FROM appointment_slots AS held "
                    "JOIN appointments AS a ON a.id = held.appointment_id "
                    "WHERE a.status <> 'cancelled' AND held.slot_id::text = ANY($1::text[])",
                    [slot.id for slot in self.contention_pool],
                )
            )
        finally:
            await conn.close()
        return double, held

    def final_double_bookings(self) -> int | None:
        try:
            return asyncio.run(self._double_bookings())[0]
        except Exception:  # noqa: BLE001 - reported as unknown
            return None

    def targets(self, find) -> list[dict[str, Any]]:
        out = [
            throughput_target(self.name, find, "gateway", "slot-search", "free-slot search", 600),
            throughput_target(self.name, find, "gateway", "book", "booking", 300),
            p95_target(
                self.name, find, "gateway", "slot-search", "free-slot search", self.rate, 25
            ),
            p95_target(self.name, find, "gateway", "book", "booking", self.rate, 25),
        ]
        contention = self.section.get("contention")
        name = "double bookings after every booking scenario and the contention run"
        if contention and "double_bookings" in contention:
            # Counted after the contention run, i.e. after every booking scenario too.
            double = contention["double_bookings"]
            winners_ok = contention["created_201"] == contention["slots"]
            others = {
                k: v for k, v in contention["status_codes"].items() if k not in ("201", "409")
            }
            note = (
                ""
                if winners_ok and not others
                else (
                    f"{contention['created_201']} x 201 for {contention['slots']} slots; "
                    f"other statuses {others}"
                )
            )
            out.append(
                verdict(
                    self.name, name, double, "== 0", double == 0 and winners_ok and not others, note
                )
            )
        else:
            out.append(verdict(self.name, name, None, "== 0", None))
        return out


def _json(body: dict[str, Any]) -> bytes:
    import json

    return json.dumps(body, separators=(",", ":")).encode()


# ----- prescribing (issue 5) -------------------------------------------------------------
class PrescribingSuite(Suite):
    name = "prescribing"
    title = "prescribing (issue 5)"
    service = "prescribing"
    operations = ("authorise", "issue")
    op_modes = {"authorise": ("saturation", "rate"), "issue": ("saturation",)}

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.support = load_by_path(
            ctx.repo_root, "services/prescribing/bench_support.py", "prescribing_bench_support"
        )
        self.fresh: list[tuple[str, str]] = []  # (practice, patient id) not yet authorised
        self.plans: list[tuple[str, str]] = []  # (practice, plan id) for issues
        self.issue_queue: list[tuple[str, str]] = []  # plans, round robin, ISSUES_PER_PLAN each

    @property
    def rate(self) -> int:
        return self.settings.prescribing_rate

    @property
    def database(self):  # noqa: ANN201
        return self.ctx.handle.databases[self.service]

    def _need(self, op: str) -> int:
        total = 0
        for _ in self.system_names():
            for mode in self.modes_for(op):
                total += (
                    attack_need(op, None if mode == "saturation" else self.rate, self.settings) + 1
                )
        return total

    def prepare(self) -> dict[str, Any]:
        say = self.ctx.say
        started = time.monotonic()
        seeded = asyncio.run(self._seed())
        say(f"bench: prescribing: formulary and SAMPLE knowledge base loaded ({seeded})")
        authorisations = self._need("authorise") if "authorise" in self.operations else 0
        issues = self._need("issue") if "issue" in self.operations else 0
        plans = math.ceil(issues / ISSUES_PER_PLAN) if issues else 0
        numbers = NhsNumbers(start_stem=999_600_000)
        patients = list(generate(authorisations + plans, numbers, seed=self.settings.seed + 5))
        entries = [
            {
                "practice": p.practice,
                "resource": {
                    **p.resource,
                    "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench:rx:{p.index}")),
                },
            }
            for p in patients
        ]
        projection = time.monotonic()
        applied = asyncio.run(self._project(entries))
        projection_seconds = time.monotonic() - projection
        say(
            f"bench: prescribing: {applied:,} patients projected through "
            f"bench_support.load_patient_projection in {projection_seconds:.1f}s"
        )
        ids = [(e["practice"], e["resource"]["id"]) for e in entries]
        plan_patients, self.fresh = ids[:plans], ids[plans:]
        plan_started = time.monotonic()
        if plans:
            say(
                f"bench: prescribing: authorising {plans} repeat plans for the issue scenarios "
                f"({ISSUES_PER_PLAN} issues each)"
            )
            self.plans = asyncio.run(self._make_plans(plan_patients))
            self.issue_queue = [plan for _ in range(ISSUES_PER_PLAN) for plan in self.plans]
        return {
            "knowledge_base": seeded,
            "patients_projected": applied,
            "projection_seconds": round(projection_seconds, 1),
            "projection_method": "prescribing bench_support.load_patient_projection "
            "(projections.apply_patient, app role)",
            "authorisation_patients": len(self.fresh),
            "issue_plans": len(self.plans),
            "plans_seconds": round(time.monotonic() - plan_started, 1),
            "seconds": round(time.monotonic() - started, 1),
        }

    async def _seed(self) -> Any:
        from gpsoc_kit.db import create_engine
        from prescribing.service_layer.seed import seed_demo

        engine = create_engine(self.database.app_url, pool_size=2, max_overflow=0)
        try:
            return await seed_demo(engine)
        finally:
            await engine.dispose()

    async def _project(self, entries: list[dict[str, Any]]) -> int:
        from gpsoc_kit.db import create_engine
        from prescribing.config import Settings
        from prescribing.entrypoints.api.app import unit_of_work_factory

        app_url = self.database.app_url
        engine = create_engine(app_url, pool_size=2, max_overflow=0)
        factory = unit_of_work_factory(engine, Settings(database_url=app_url))
        try:
            applied = 0
            for start in range(0, len(entries), 2000):  # one transaction per chunk
                applied += await self.support.load_patient_projection(
                    factory, entries[start : start + 2000]
                )
            return applied
        finally:
            await engine.dispose()

    async def _make_plans(self, patients: list[tuple[str, str]]) -> list[tuple[str, str]]:
        base = self.ctx.handle.service_urls[self.service]
        tokens = self.tokens()["gp"]
        plans: list[tuple[str, str]] = []
        failures: list[str] = []
        queue = list(patients)

        async def worker(http: httpx.AsyncClient) -> None:
            while queue:
                practice, patient_id = queue.pop()
                response = await http.post(
                    f"{base}/MedicationRequest",
                    content=_json(self.support.plan_for_issues_body(patient_id)),
                    headers={
                        "Authorization": f"Bearer {tokens[practice]}",
                        "Content-Type": FHIR_JSON,
                        "Accept": FHIR_JSON,
                    },
                )
                if response.status_code == 201:
                    plans.append((practice, response.json()["id"]))
                else:
                    failures.append(f"{response.status_code}: {response.text[:300]}")

        async with httpx.AsyncClient(timeout=60) as http:
            await asyncio.gather(*(worker(http) for _ in range(8)))
        if failures:
            raise RuntimeError(
                f"{len(failures)} plan(s) for the issue scenarios were refused; "
                f"first: {failures[0]}"
            )
        self.rng.shuffle(plans)
        return plans

    def tokens(self) -> dict[str, dict[str, str]]:
        keys = self.ctx.keys
        return {"gp": {p: keys.mint_token("gp", p) for p in PRACTICES}}

    def requests(self, op: str, system: System, count: int) -> Iterable[Target]:
        url = f"{system.base_url}/MedicationRequest"
        if op == "authorise":
            take = min(count, len(self.fresh))
            chosen, self.fresh = self.fresh[:take], self.fresh[take:]
            bodies = ((p, self.support.authorisation_body(patient)) for p, patient in chosen)
        elif op == "issue":
            take = min(count, len(self.issue_queue))
            chosen, self.issue_queue = self.issue_queue[:take], self.issue_queue[take:]
            bodies = ((p, self.support.issue_body(plan)) for p, plan in chosen)
        else:
            raise ValueError(op)
        for practice, body in bodies:
            headers = system.headers("gp", practice) | {"Content-Type": FHIR_JSON}
            yield Target("POST", url, headers, _json(body))

    def check(self, op: str, response: httpx.Response) -> str | None:
        body = response.json()
        want = "plan" if op == "authorise" else "order"
        if body.get("intent") != want:
            return f"{op}: expected a MedicationRequest intent={want}: {response.text[:200]}"
        return None

    def targets(self, find) -> list[dict[str, Any]]:
        out = [
            p95_target(
                self.name, find, "gateway", "authorise", "authorisation (all checks)", self.rate, 30
            )
        ]
        sat = find("gateway", "issue", "saturation")
        # The issue gives no figure for issue throughput: reported, not judged.
        name = "issue via gateway, saturation throughput (no figure in the issue)"
        if sat:
            ok, note = _clean(sat)
            out.append(
                verdict(
                    self.name,
                    name,
                    round(sat["result"]["throughput"], 1),
                    "reported",
                    ok,
                    note or "",
                )
            )
        else:
            out.append(verdict(self.name, name, None, "reported", None))
        return out


# ----- clinical-notes (issue 4) ----------------------------------------------------------
class ClinicalSuite(Suite):
    name = "clinical"
    title = "clinical-notes (issue 4)"
    service = "clinical-notes"
    operations = ("summary",)

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.support = load_by_path(
            ctx.repo_root,
            "services/clinical-notes/bench_support.py",
            "clinical_notes_bench_support",
        )

    @property
    def rate(self) -> int:
        return self.settings.clinical_rate

    def prepare(self) -> dict[str, Any]:
        s, say = self.settings, self.ctx.say
        database = self.ctx.handle.databases[self.service]
        say(
            f"bench: clinical: loading {s.clinical_patients:,} patients x "
            f"{s.clinical_entries} entries ({s.clinical_patients * s.clinical_entries:,} rows; "
            "about 5 minutes for the full size)"
        )
        stats = asyncio.run(
            self.support.load_records(
                database.owner_url,
                patients=s.clinical_patients,
                entries_per_patient=s.clinical_entries,
                practices=PRACTICES,
            )
        )
        say(f"bench: clinical: {stats['entries']:,} entries in {stats['seconds']}s")
        return stats

    def tokens(self) -> dict[str, dict[str, str]]:
        keys = self.ctx.keys
        return {"gp": {p: keys.mint_token("gp", p) for p in PRACTICES}}

    def requests(self, op: str, system: System, count: int) -> Iterable[Target]:
        if op != "summary":
            raise ValueError(op)
        n_patients = self.settings.clinical_patients
        for _ in range(min(count, 50_000)):
            n = self.rng.randint(1, n_patients)
            patient = self.support.bench_patient_id(n)
            practice = self.support.bench_practice(n, PRACTICES)
            yield Target(
                "GET",
                f"{system.base_url}/Encounter/$patient-summary?patient={patient}",
                system.headers("gp", practice),
            )

    def check(self, op: str, response: httpx.Response) -> str | None:
        kinds = {
            e.get("resource", {}).get("resourceType") for e in response.json().get("entry", [])
        }
        if not {"Condition", "Observation"} <= kinds:
            return f"patient summary without problems or observations: {response.text[:200]}"
        return None

    def targets(self, find) -> list[dict[str, Any]]:
        return [p95_target(self.name, find, "gateway", "summary", "patient summary", self.rate, 25)]


SUITE_CLASSES = {
    "appointments": AppointmentsSuite,
    "prescribing": PrescribingSuite,
    "clinical": ClinicalSuite,
}

__all__ = ["SUITE_CLASSES", "Context", "PatientsSuite", "Suite", "attack_need", "per_second"]
