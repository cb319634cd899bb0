"""Settings of the patient index, read once at start-up."""

from gpsoc_kit.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "patient-index"
    default_page_size: int = 20
    max_page_size: int = 100
    # How long a break-glass grant keeps a record open (BREAK_GLASS_MINUTES).
    break_glass_minutes: int = 30
