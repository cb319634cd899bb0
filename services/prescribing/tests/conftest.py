"""Fixtures of prescribing's tests: a migrated database with the demo formulary and SAMPLE
knowledge base, the app in-process, and patients projected as patient-index's events would."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gpsoc_kit.testing.fhir_factories import valid_nhs_number
from gpsoc_kit.testing.plugin import run_sync

SERVICE_DIR = Path(__file__).resolve().parents[1]
# Not "prescribing": the end-to-end platform owns that database name in the test profile.
TEST_DB = "prescribing_t"


@pytest.fixture(scope="session")
async def database(service_database: Any) -> Any:
    return await run_sync(service_database, TEST_DB, SERVICE_DIR)


@pytest.fixture(scope="session")
def settings(database: Any, test_stack: Any) -> Any:
    from prescribing.config import Settings

    return Settings(
        database_url=database.app_url,
        kafka_bootstrap_servers=test_stack.kafka_bootstrap,
        jwt_jwks_file=str(test_stack.keys.jwks_file),
        public_base_url="http://testserver/fhir/R4",
    )


@pytest.fixture(scope="session")
async def app(settings: Any) -> AsyncIterator[Any]:
    from prescribing.entrypoints.api.app import create_app
    from prescribing.service_layer.seed import seed_demo

    application = create_app(settings)
    async with application.router.lifespan_context(application):
        await seed_demo(application.state.engine)
        yield application


@pytest.fixture(scope="session")
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def practice() -> str:
    """A practice of this test's own (6 characters, like an ODS code)."""
    return "T" + uuid.uuid4().hex[:5].upper()


@pytest.fixture
def auth(test_stack: Any, practice: str):  # noqa: ANN201
    """`auth(role)` -> headers with a token for a user of this test's practice."""

    def headers(role: str = "gp", *, practice_code: str | None = None, **claims: Any) -> dict[str, str]:
        base = test_stack.keys.claims_for(role, "A81001")
        base.update(practice=practice_code or practice, sub=str(uuid.uuid4()), **claims)
        return {"Authorization": f"Bearer {test_stack.keys.mint(base)}",
                "Content-Type": "application/fhir+json"}

    return headers


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
