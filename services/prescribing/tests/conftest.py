"""Fixtures of prescribing's tests: a migrated database with the demo formulary and SAMPLE
knowledge base, the app in-process, and patients projected as patient-index's events would."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from gpsoc_kit.testing.fhir_factories import valid_nhs_number
from gpsoc_kit.testing.service_fixtures import ServiceUnderTest, service_fixtures
from prescribing.config import Settings
from prescribing.entrypoints.api.app import create_app
from prescribing.service_layer.seed import seed_demo

SERVICE_DIR = Path(__file__).resolve().parents[1]
# Not "prescribing": the end-to-end platform owns that database name in the test profile.
TEST_DB = "prescribing_t"


async def _seed_formulary(app: Any) -> None:
    await seed_demo(app.state.engine)


database, settings, app, client, practice, auth = service_fixtures(
    ServiceUnderTest(
        test_db=TEST_DB, service_dir=SERVICE_DIR, settings=Settings, create_app=create_app,
        on_start=_seed_formulary,
    )
)


@pytest.fixture
def add_patient(app: Any, practice: str):  # noqa: ANN201
    """`await add_patient()` -> the id of a patient projected into this test's practice."""
    from prescribing import examples
    from prescribing.service_layer import projections

    async def add(practice_code: str | None = None) -> str:
        patient_id = str(uuid.uuid4())
        code = practice_code or practice
        event = examples.patient_event("patient.registered.v1", patient_id=patient_id,
                                       practice=code, nhs_number=valid_nhs_number())
        async with app.state.uow_factory(code) as uow:
            await projections.apply_patient(uow, event.data, ends_prescribing=None)
            await uow.commit()
        return patient_id

    return add


@pytest.fixture
def add_allergy(app: Any, practice: str):  # noqa: ANN201
    """`await add_allergy(patient_id, code)`: an allergy projected as clinical-notes' event would."""
    from prescribing import examples
    from prescribing.service_layer import projections

    async def add(patient_id: str, code: tuple[str, str] = examples.ALLERGY_TO_PENICILLIN) -> str:
        allergy_id = str(uuid.uuid4())
        event = examples.allergy_event(allergy_id=allergy_id, patient_id=patient_id,
                                       practice=practice, code=code)
        async with app.state.uow_factory(practice) as uow:
            await projections.apply_allergy(uow, event.data)
            await uow.commit()
        return allergy_id

    return add
