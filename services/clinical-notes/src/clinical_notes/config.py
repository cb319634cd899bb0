"""Settings of the clinical-notes service, read once at start-up."""

from gpsoc_kit.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "clinical-notes"
    default_page_size: int = 20
    max_page_size: int = 100
    summary_consultations: int = 5
    summary_medications: int = 10
