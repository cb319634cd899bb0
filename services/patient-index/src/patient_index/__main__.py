"""`python -m patient_index api|relay|consumer|migrate|seed-demo --file F`."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

SERVICE_DIR = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="patient_index")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("api", help="serve the FHIR API")
    sub.add_parser("relay", help="publish the outbox to Kafka")
    sub.add_parser("consumer", help="consume PDS death notifications")
    sub.add_parser("migrate", help="apply database migrations (owner role)")
    seed = sub.add_parser("seed-demo", help="load the demo dataset (idempotent)")
    seed.add_argument("--file", required=True, type=Path)
    args = parser.parse_args(argv)

    from gpsoc_kit import service

    from .adapters.tables import inbox, outbox
    from .config import Settings

    settings = Settings()
    if args.command == "api":
        from gpsoc_kit.runtime import serve_api

        from .entrypoints.api.app import create_app

        serve_api(create_app(settings), settings)
    elif args.command == "relay":
        service.run_relay(settings, outbox)
    elif args.command == "consumer":
        from .entrypoints.api.app import unit_of_work_factory
        from .entrypoints.consumer import HANDLERS, PDS_TOPIC

        service.run_consumer(
            settings,
            group=f"{settings.service_name}.pds",
            topics=(PDS_TOPIC,),
            inbox=inbox,
            handlers=HANDLERS,
            unit_of_work=lambda engine: unit_of_work_factory(engine, settings),
        )
    elif args.command == "migrate":
        service.migrate(SERVICE_DIR, settings)
    elif args.command == "seed-demo":
        counts = asyncio.run(_seed(settings, json.loads(args.file.read_text())))
        print(json.dumps({"seeded": counts}))


async def _seed(settings, dataset):  # noqa: ANN001, ANN202
    from gpsoc_kit.db import create_engine

    from .entrypoints.api.app import unit_of_work_factory
    from .service_layer.seed import seed_demo

    engine = create_engine(settings.database_url, pool_size=2, max_overflow=0)
    try:
        return await seed_demo(dataset, unit_of_work_factory(engine, settings))
    finally:
        await engine.dispose()


if __name__ == "__main__":
    main()
