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
    audit_url: str | None = None
    upstream_timeout_seconds: float = 10.0
    upstream_connect_timeout_seconds: float = 2.0
    readiness_timeout_seconds: float = 2.0
    max_body_bytes: int = 1_000_000
    fhir_base_path: str = "/fhir/R4"
    max_count: int = 100
    # Requests per second (and burst) per user and per practice; 0 turns a limit off.
    rate_limit_user_per_second: float = 50.0
    rate_limit_user_burst: float = 100.0
    rate_limit_practice_per_second: float = 500.0
    rate_limit_practice_burst: float = 1000.0
    # Browser origins allowed to call the API (CORS); none by default.
    cors_allow_origins: tuple[str, ...] = ()
    everything_timeout_seconds: float = 3.0
    # Refused requests are audited straight to Kafka: how long to wait for the broker's ack,
    # and how long to stop trying after a failure (so refusals stay fast while it is down).
    gateway_audit_publish_timeout_seconds: float = 5.0
    gateway_audit_retry_seconds: float = 5.0
