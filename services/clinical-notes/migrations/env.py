from clinical_notes.adapters.tables import metadata
from gpsoc_kit.migrations import run_migrations

run_migrations(metadata)
