"""`python -m clinical_notes api|relay|consumer|migrate|import-snomed --release DIR`."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

SERVICE_DIR = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="clinical_notes")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("api", help="serve the FHIR API")
    sub.add_parser("relay", help="publish the outbox to Kafka")
    sub.add_parser("consumer", help="consume patient, appointment and prescription events")
    sub.add_parser("migrate", help="apply database migrations (owner role)")
    snomed = sub.add_parser("import-snomed", help="load a SNOMED CT RF2 snapshot release")
    snomed.add_argument(
        "--release",
        required=True,
        type=Path,
        help="directory holding sct2_Concept_Snapshot and sct2_Description_Snapshot",
    )
    args = parser.parse_args(argv)

    from .config import Settings

    settings = Settings()
    if args.command == "api":
        from gpsoc_kit.runtime import serve_api

        from .entrypoints.api.app import create_app

        serve_api(create_app(settings), settings)
    elif args.command == "relay":
        _run_relay(settings)
    elif args.command == "consumer":
        _run_consumer(settings)
    elif args.command == "migrate":
        from gpsoc_kit.service import migrate

        migrate(SERVICE_DIR, settings)
    elif args.command == "import-snomed":
        counts = asyncio.run(_import_snomed(settings, args.release))
        print(json.dumps({"imported": counts}))


def _run_relay(settings) -> None:  # noqa: ANN001
    from gpsoc_kit import service

    from .adapters.tables import outbox

    service.run_relay(settings, outbox)


def _run_consumer(settings) -> None:  # noqa: ANN001
    from gpsoc_kit.db import create_engine
    from gpsoc_kit.runtime import run_worker

    from .entrypoints.consumer import build_runner

    async def build():  # noqa: ANN202
        engine = create_engine(settings.database_url, pool_size=4, max_overflow=2)
        return build_runner(engine, settings), engine.dispose

    run_worker(settings, build)


async def _import_snomed(settings, release: Path) -> dict[str, int]:  # noqa: ANN001
    from gpsoc_kit.db import create_engine

    from .service_layer.terminology import import_release

    # Reference data shared by every practice: no tenant context, one transaction.
    engine = create_engine(settings.database_url, pool_size=1, max_overflow=0)
    try:
        async with engine.begin() as conn:
            return await import_release(conn, release)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    main()
