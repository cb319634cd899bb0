"""Settings of the appointments service, read once at start-up."""

from gpsoc_kit.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "appointments"
    default_page_size: int = 20
    max_page_size: int = 100
    # Slot searches return a clinic's worth of slots per page.
    slot_page_size: int = 100
    max_slot_page_size: int = 500
    # GP Connect: a free-slot search covers at most 14 days.
    max_search_days: int = 14
    # Sessions generate slots this many days ahead; the housekeeper keeps the window rolling.
    rolling_window_days: int = 28
    hold_seconds: int = 120
    housekeeping_interval_seconds: float = 5.0
