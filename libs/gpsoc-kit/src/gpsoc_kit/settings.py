"""Settings read once from the environment; every service extends ServiceSettings."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """What every openGPSoC process needs to know about its surroundings."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    service_name: str = Field(
        default="gpsoc", validation_alias=AliasChoices("OTEL_SERVICE_NAME", "SERVICE_NAME")
    )
    host: str = "127.0.0.1"
    port: int = 8000
    health_port: int | None = None

    database_url: str = "postgresql://localhost/gpsoc"
    migration_database_url: str | None = None
    # Enough kept connections for a busy api, and no overflow: an overflow connection is
    # opened per burst and closed on return, and opening one (TLS negotiation, SCRAM, a
    # backend forked) costs far more than the query. Measured with 32 clients on NHS
    # search, 20 + 5 overflow churned connections all the time; 25 kept ones, where a
    # 26th request waits a moment for one, served 5-19% more through the gateway.
    # 5 apis x 25 plus the workers stay under the default max_connections (200).
    db_pool_size: int = 25
    db_max_overflow: int = 0

    kafka_bootstrap_servers: str = "127.0.0.1:9092"

    jwt_issuer: str = "https://dev-issuer.opengpsoc.local"
    jwt_audience: str = "opengpsoc"
    jwt_jwks_file: str | None = None
    jwt_jwks_url: str | None = None
    jwt_algorithms: tuple[str, ...] = ("RS256", "ES256", "PS256")
    jwt_leeway_seconds: int = 30

    log_level: str = "INFO"
    public_base_url: str = "http://127.0.0.1:8080/fhir/R4"
