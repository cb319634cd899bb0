from gpsoc_kit.migrations import run_migrations
from patient_index.adapters.tables import metadata

run_migrations(metadata)
