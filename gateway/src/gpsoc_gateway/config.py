"""Gateway settings: where each service lives, read once from the environment."""

from __future__ import annotations

from gpsoc_kit.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    service_name: str = "gateway"
    port: int = 8080
    patient_index_url: str | None = None
    appointments_url: str | None = None
    prescribing_url: str | None = None
    clinical_notes_url: str | None = None
    upstream_timeout_seconds: float = 10.0
    upstream_connect_timeout_seconds: float = 2.0
    readiness_timeout_seconds: float = 2.0
    max_body_bytes: int = 1_000_000
    fhir_base_path: str = "/fhir/R4"
