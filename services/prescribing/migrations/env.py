from gpsoc_kit.migrations import run_migrations
from prescribing.adapters.tables import metadata

run_migrations(metadata)
