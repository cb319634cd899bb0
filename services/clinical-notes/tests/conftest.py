"""Fixtures of clinical-notes' tests: a migrated database, the app in-process, patients."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gpsoc_kit.testing.plugin import run_sync

SERVICE_DIR = Path(__file__).resolve().parents[1]
# Not "clinical_notes": the end-to-end platform owns that database name in the test profile.
TEST_DB = "clinical_notes_t"


@pytest.fixture(scope="session")
async def database(service_database: Any) -> Any:
    return await run_sync(service_database, TEST_DB, SERVICE_DIR)


@pytest.fixture(scope="session")
def settings(database: Any, test_stack: Any) -> Any:
    from clinical_notes.config import Settings

    return Settings(
        database_url=database.app_url,
        kafka_bootstrap_servers=test_stack.kafka_bootstrap,
        jwt_jwks_file=str(test_stack.keys.jwks_file),
        public_base_url="http://testserver/fhir/R4",
    )


@pytest.fixture(scope="session")
async def app(settings: Any) -> AsyncIterator[Any]:
    from clinical_notes.entrypoints.api.app import create_app

    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture(scope="session")
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
def practice() -> str:
    """A practice of this test's own, so tests never see each other's records."""
    return "T" + uuid.uuid4().hex[:5].upper()


@pytest.fixture
def auth(test_stack: Any, practice: str):  # noqa: ANN201
    """`auth(role)` -> headers with a token for a user of this test's practice."""

    def headers(
        role: str = "gp", *, practice_code: str | None = None, **claims: Any
    ) -> dict[str, str]:
        base = test_stack.keys.claims_for(role, "A81001")
        base.update(practice=practice_code or practice, sub=str(uuid.uuid4()), **claims)
        return {
            "Authorization": f"Bearer {test_stack.keys.mint(base)}",
            "Content-Type": "application/fhir+json",
        }

    return headers


@pytest.fixture
def register(app: Any, practice: str):  # noqa: ANN201
    """`await register()` -> the id of a patient registered at this test's practice, as the
    patient index's patient.registered.v1 event would have made it known here."""
    from clinical_notes.service_layer.projections import apply_patient_event

    async def add(practice_code: str | None = None) -> str:
        patient_id = str(uuid.uuid4())
        async with app.state.uow_factory(practice_code or practice) as uow:
            await apply_patient_event(
                uow,
                {"patient": {"id": patient_id, "active": True, "deceased": False}, "versionId": 1},
            )
            await uow.commit()
        return patient_id

    return add
