"""Fixtures of the patient index's tests: a migrated database and the app in-process."""

from __future__ import annotations

from pathlib import Path

from gpsoc_kit.testing.service_fixtures import ServiceUnderTest, service_fixtures
from patient_index.config import Settings
from patient_index.entrypoints.api.app import create_app

SERVICE_DIR = Path(__file__).resolve().parents[1]
# Not "patient_index": the end-to-end platform owns that database name in the test profile.
TEST_DB = "patient_index_t"

database, settings, app, client, practice, auth = service_fixtures(
    ServiceUnderTest(
        test_db=TEST_DB, service_dir=SERVICE_DIR, settings=Settings, create_app=create_app
    )
)
