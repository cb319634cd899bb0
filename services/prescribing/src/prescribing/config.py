"""Settings of the prescribing service, read once at start-up."""

from gpsoc_kit.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "prescribing"
    default_page_size: int = 20
    max_page_size: int = 100
    # How often the simulated Spine transport looks for EPS messages to send.
    eps_transport_poll_seconds: float = 1.0
