"""Loading the demo dataset (organisations, staff, patients) through the normal use cases.

Idempotent: a second run adds nothing. Patients are registered through
`register_patient`, so their events reach the other services as any registration's would.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from gpsoc_kit.auth import Principal
from gpsoc_kit.uow import UnitOfWork
from sqlalchemy import select

from ..adapters.tables import patients
from . import handlers


async def seed_demo(
    dataset: dict[str, Any], uow_factory: Callable[[str], UnitOfWork]
) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for org in dataset["organizations"]:
        ods = _ods(org)
        async with uow_factory(ods) as uow:
            counts["organizations"] += await handlers.add_organization(uow, org, org_id=org["id"])
            await uow.commit()
    by_practice: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for staff in dataset["practitioners"]:
        by_practice[staff["practice"]].append(staff)
    for practice, staff_list in by_practice.items():
        async with uow_factory(practice) as uow:
            for staff in staff_list:
                counts["practitioners"] += await handlers.add_practitioner(
                    uow,
                    staff["resource"],
                    practitioner_id=staff["resource"]["id"],
                    roles=[staff["role"]],
                    prescriber=bool(staff.get("prescriber")),
                )
            await uow.commit()
    patients_by_practice: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in dataset["patients"]:
        patients_by_practice[entry["practice"]].append(entry["resource"])
    for practice, resources in patients_by_practice.items():
        seeder = Principal(
            user_id="system-demo-seed",
            practice=practice,
            roles=frozenset({"system"}),
            name="Demo data loader",
        )
        async with uow_factory(practice) as uow:
            existing = set((await uow.conn.execute(select(patients.c.id))).scalars())
            for resource in resources:
                if resource["id"] in existing:
                    continue
                await handlers.register_patient(uow, seeder, resource, patient_id=resource["id"])
                counts["patients"] += 1
            await uow.commit()
    return dict(counts)


def _ods(org: dict[str, Any]) -> str:
    return next(
        i["value"]
        for i in org["identifier"]
        if i["system"] == "https://fhir.nhs.uk/Id/ods-organization-code"
    )
