"""The fixtures every service's own tests start from, built once: a migrated database of
the service's own, its settings, its app in-process (lifespan run), an HTTP client on it,
a practice per test and tokens for that practice.

A service's tests/conftest.py declares what differs and binds the fixtures by name:

    database, settings, app, client, practice, auth = service_fixtures(ServiceUnderTest(
        test_db="clinical_notes_t", service_dir=SERVICE_DIR, settings=Settings,
        create_app=create_app))
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from .plugin import run_sync


@dataclass(frozen=True)
class ServiceUnderTest:
    # Not the service's own database name: the end-to-end platform owns that in the test
    # profile, so a service's tests use `<name>_t`.
    test_db: str
    service_dir: Path
    settings: Callable[..., Any]  # the service's Settings class
    create_app: Callable[[Any], Any]
    # More settings from the migrated database (e.g. the owner URL for a verifier).
    extra_settings: Callable[[Any], dict[str, Any]] = field(default=lambda database: {})
    # Run once the app's lifespan has started (e.g. seeding reference data).
    on_start: Callable[[Any], Awaitable[None]] | None = None
    default_role: str = "gp"
    client_timeout: float = 5.0


def service_fixtures(spec: ServiceUnderTest) -> tuple[Any, ...]:
    """(database, settings, app, client, practice, auth) fixtures for `spec`."""

    @pytest.fixture(scope="session")
    async def database(service_database: Any) -> Any:
        return await run_sync(service_database, spec.test_db, spec.service_dir)

    @pytest.fixture(scope="session")
    def settings(database: Any, test_stack: Any) -> Any:
        return spec.settings(
            database_url=database.app_url,
            kafka_bootstrap_servers=test_stack.kafka_bootstrap,
            jwt_jwks_file=str(test_stack.keys.jwks_file),
            public_base_url="http://testserver/fhir/R4",
            **spec.extra_settings(database),
        )

    @pytest.fixture(scope="session")
    async def app(settings: Any) -> AsyncIterator[Any]:
        application = spec.create_app(settings)
        async with application.router.lifespan_context(application):
            if spec.on_start is not None:
                await spec.on_start(application)
            yield application

    @pytest.fixture(scope="session")
    async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver",
                                     timeout=spec.client_timeout) as c:
            yield c

    @pytest.fixture
    def practice() -> str:
        """A practice of this test's own (an ODS-like code), so tests never see each other's
        records."""
        return "T" + uuid.uuid4().hex[:5].upper()

    @pytest.fixture
    def auth(test_stack: Any, practice: str):  # noqa: ANN202
        """`auth(role)` -> headers with a token for a fresh user of this test's practice."""

        def headers(role: str = spec.default_role, *, practice_code: str | None = None,
                    **claims: Any) -> dict[str, str]:
            try:
                base = test_stack.keys.claims_for(role, "A81001")
            except ValueError:  # a role no demo user holds (an unknown role)
                base = test_stack.keys.claims_for("gp", "A81001")
                base.update(roles=[role], prescriber=False)
            base.update(practice=practice_code or practice, sub=str(uuid.uuid4()), **claims)
            return {
                "Authorization": f"Bearer {test_stack.keys.mint(base)}",
                "Content-Type": "application/fhir+json",
            }

        return headers

    return database, settings, app, client, practice, auth
