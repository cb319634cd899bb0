"""Fixtures of clinical-notes' tests: a migrated database, the app in-process, patients."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from clinical_notes.config import Settings
from clinical_notes.entrypoints.api.app import create_app
from gpsoc_kit.testing.service_fixtures import ServiceUnderTest, service_fixtures

SERVICE_DIR = Path(__file__).resolve().parents[1]
# Not "clinical_notes": the end-to-end platform owns that database name in the test profile.
TEST_DB = "clinical_notes_t"


database, settings, app, client, practice, auth = service_fixtures(
    ServiceUnderTest(
        test_db=TEST_DB, service_dir=SERVICE_DIR, settings=Settings, create_app=create_app
    )
)


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
