"""Fixtures of the patient index's tests: a migrated database and the app in-process."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from gpsoc_kit.testing.plugin import run_sync

SERVICE_DIR = Path(__file__).resolve().parents[1]
# Not "patient_index": the end-to-end platform owns that database name in the test profile.
TEST_DB = "patient_index_t"


@pytest.fixture(scope="session")
async def database(service_database: Any) -> Any:
    return await run_sync(service_database, TEST_DB, SERVICE_DIR)


@pytest.fixture(scope="session")
def settings(database: Any, test_stack: Any) -> Any:
    from patient_index.config import Settings

    return Settings(
        database_url=database.app_url,
        kafka_bootstrap_servers=test_stack.kafka_bootstrap,
        jwt_jwks_file=str(test_stack.keys.jwks_file),
        public_base_url="http://testserver/fhir/R4",
    )


@pytest.fixture(scope="session")
async def app(settings: Any) -> AsyncIterator[Any]:
    from patient_index.entrypoints.api.app import create_app

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
    """A practice of this test's own, so tests never see each other's patients."""
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
