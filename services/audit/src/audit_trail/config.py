"""Settings of the audit store, read once at start-up."""

from gpsoc_kit.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "audit"
    default_page_size: int = 20
    max_page_size: int = 100
