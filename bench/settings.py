"""What one bench run does: read once from the environment (BENCH_*)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

OPERATIONS = ("read", "nhs", "phonetic", "register")
OPERATION_TITLES = {
    # patients (issue 2)
    "read": "read by id",
    "nhs": "search by NHS number",
    "phonetic": "fuzzy name search",
    "register": "registration",
    # appointments (issue 3)
    "slot-search": "free-slot search",
    "book": "booking",
    # prescribing (issue 5)
    "authorise": "authorise (checks)",
    "issue": "issue",
    # clinical-notes (issue 4)
    "summary": "patient summary",
}
SUITES = ("patients", "appointments", "prescribing", "clinical")
# What each suite needs started (devstack.platform.SERVICES names).
SUITE_SERVICES = {
    "patients": ("patient-index",),
    "appointments": ("appointments",),
    "prescribing": ("prescribing",),
    "clinical": ("clinical-notes",),
}
SYSTEMS = ("gateway", "direct", "floor")
SYSTEM_TITLES = {"gateway": "gateway", "direct": "service", "floor": "floor"}
# The floor only does the indexed NHS-number query.
FLOOR_OPERATIONS = ("nhs",)
MODES = ("saturation", "rate")


def parse_seconds(raw: str) -> float:
    """'15', '15s', '1m', '500ms' -> seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*", raw)
    if not match:
        raise ValueError(f"not a duration: {raw!r} (use e.g. 15, 15s, 1m)")
    value, unit = float(match.group(1)), match.group(2) or "s"
    return value / 1000 if unit == "ms" else value * 60 if unit == "m" else value


def _csv(raw: str | None, allowed: tuple[str, ...], name: str) -> tuple[str, ...]:
    if not raw:
        return allowed
    chosen = tuple(part.strip() for part in raw.split(",") if part.strip())
    unknown = [c for c in chosen if c not in allowed]
    if unknown:
        raise ValueError(f"{name}: unknown {unknown}; choose from {', '.join(allowed)}")
    return chosen


@dataclass(frozen=True)
class BenchSettings:
    duration: float = 15.0  # seconds per measured scenario
    warmup: float = 3.0  # seconds of warm-up before each scenario
    patients: int = 100_000
    concurrency: int = 32  # saturation: closed loop with this many clients
    rate: int = 200  # fixed-rate scenarios: requests per second
    operations: tuple[str, ...] = OPERATIONS
    systems: tuple[str, ...] = SYSTEMS
    modes: tuple[str, ...] = MODES
    loader: str = "copy"  # copy | handlers
    suites: tuple[str, ...] = SUITES
    # appointments (issue 3)
    appointment_practices: int = 300  # x 6 clinicians x 28 days x 24 slots
    appointment_patients_per_practice: int = 10
    appointments_rate: int = 100
    contention_clients: int = 64
    contention_slots: int = 10
    # prescribing (issue 5)
    prescribing_rate: int = 50
    # clinical-notes (issue 4)
    clinical_patients: int = 100_000
    clinical_entries: int = 100
    clinical_rate: int = 100
    settle_max: float = 60.0  # seconds to wait for the relay to drain the outbox between scenarios
    request_timeout: float = 10.0
    seed: int = 20261123
    results_dir: Path = field(default_factory=lambda: Path(__file__).resolve().parent / "results")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> BenchSettings:
        env = dict(os.environ if env is None else env)
        loader = env.get("BENCH_LOADER", "copy")
        if loader not in ("copy", "handlers"):
            raise ValueError("BENCH_LOADER must be copy or handlers")
        entries = int(env.get("BENCH_CLINICAL_ENTRIES", "100"))
        if not 16 <= entries <= 1000:
            raise ValueError("BENCH_CLINICAL_ENTRIES must be between 16 and 1000")
        return cls(
            duration=parse_seconds(env.get("BENCH_DURATION", "15")),
            warmup=parse_seconds(env.get("BENCH_WARMUP", "3")),
            patients=int(env.get("BENCH_PATIENTS", "100000")),
            concurrency=int(env.get("BENCH_CONCURRENCY", "32")),
            rate=int(env.get("BENCH_RATE", "200")),
            operations=_csv(env.get("BENCH_OPS"), OPERATIONS, "BENCH_OPS"),
            systems=_csv(env.get("BENCH_SYSTEMS"), SYSTEMS, "BENCH_SYSTEMS"),
            modes=_csv(env.get("BENCH_MODES"), MODES, "BENCH_MODES"),
            loader=loader,
            suites=_csv(env.get("BENCH_SUITES"), SUITES, "BENCH_SUITES"),
            appointment_practices=int(env.get("BENCH_APPOINTMENT_PRACTICES", "300")),
            appointment_patients_per_practice=int(
                env.get("BENCH_APPOINTMENT_PATIENTS_PER_PRACTICE", "10")
            ),
            appointments_rate=int(env.get("BENCH_APPOINTMENTS_RATE", "100")),
            contention_clients=int(env.get("BENCH_CONTENTION_CLIENTS", "64")),
            contention_slots=int(env.get("BENCH_CONTENTION_SLOTS", "10")),
            prescribing_rate=int(env.get("BENCH_PRESCRIBING_RATE", "50")),
            clinical_patients=int(env.get("BENCH_CLINICAL_PATIENTS", "100000")),
            clinical_entries=int(env.get("BENCH_CLINICAL_ENTRIES", "100")),
            clinical_rate=int(env.get("BENCH_CLINICAL_RATE", "100")),
            settle_max=parse_seconds(env.get("BENCH_SETTLE_MAX", "60")),
            seed=int(env.get("BENCH_SEED", "20261123")),
        )
